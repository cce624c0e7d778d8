// The single gate: format, lint, doc lint, type check, the suite on Deno, Bun
// and Node 22, and the JSR publish dry run. Run it with `npm test`, which
// installs the runtimes first. It ends with a line `N passed, N failed`
// counting the tests of all three runtimes, and exits non-zero if any step
// failed.

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
// Every `*_test.ts` under tests/, in its folders (core, hono, worker, ...).
const testFiles = readdirSync(join(root, "tests"), { recursive: true })
  .filter((file) => file.endsWith("_test.ts"))
  .map((file) => join("tests", file))
  .sort();
// Some tools colour their output anyway; the summaries are read without it.
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
const env = { ...process.env, NO_COLOR: "1" };
delete env.FORCE_COLOR;

const steps = [
  ["format", bin("deno"), ["fmt", "--check"]],
  ["lint", bin("deno"), ["lint"]],
  ["doc lint", bin("deno"), [
    "doc",
    "--lint",
    "mod.ts",
    "src/worker/mod.ts",
    "src/durable/mod.ts",
  ]],
  ["import cycles", process.execPath, ["tests/cycles.mjs", "src", "examples"]],
  ["type check", bin("deno"), [
    "check",
    "mod.ts",
    "src/",
    "tests/",
    "examples/",
  ]],
  ["deno test", bin("deno"), [
    "test",
    "-A",
    "--doc",
    "mod.ts",
    "src/",
    ...testFiles,
  ], deno],
  ["bun test", bin("bun"), [
    "test",
    "--timeout",
    "30000",
    ...testFiles.map((f) => `./${f}`),
  ], bun],
  ["node test", bin("node"), [
    "--disable-warning=ExperimentalWarning",
    "--test",
    "--test-concurrency=1",
    ...testFiles,
  ], node],
  ["publish dry run", bin("deno"), ["publish", "--dry-run", "--allow-dirty"]],
];

const only = process.argv.slice(2);
let passed = 0;
let failed = 0;
const failures = [];
for (const [name, command, args, count] of steps) {
  if (only.length > 0 && !only.some((word) => name.includes(word))) continue;
  console.log(
    `\n=== ${name}: ${[command.slice(root.length + 1), ...args].join(" ")}`,
  );
  const started = Date.now();
  const result = spawnSync(command, args, {
    cwd: root,
    env,
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.replace(
    ANSI,
    "",
  );
  process.stdout.write(output);
  let ok = result.status === 0;
  if (count) {
    const counted = count(output);
    if (counted == null) {
      ok = false;
      console.log(`--- ${name}: no test summary found`);
    } else {
      passed += counted.passed;
      failed += counted.failed;
      if (counted.failed > 0 || counted.passed === 0) ok = false;
      console.log(
        `--- ${name}: ${counted.passed} passed, ${counted.failed} failed`,
      );
    }
  }
  console.log(
    `--- ${name}: ${ok ? "ok" : "FAILED"} (${
      ((Date.now() - started) / 1000).toFixed(1)
    } s)`,
  );
  if (!ok) failures.push(name);
}

function deno(output) {
  const m = output.match(
    /(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/,
  );
  return m && { passed: +m[1], failed: +m[2] };
}
function bun(output) {
  const p = output.match(/^\s*(\d+) pass$/m);
  const f = output.match(/^\s*(\d+) fail$/m);
  return p && { passed: +p[1], failed: f ? +f[1] : 0 };
}
function node(output) {
  const p = output.match(/^# pass (\d+)$/m);
  const f = output.match(/^# fail (\d+)$/m);
  return p && { passed: +p[1], failed: f ? +f[1] : 0 };
}

console.log(
  failures.length
    ? `\nFailed steps: ${failures.join(", ")}`
    : "\nAll steps passed.",
);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failures.length > 0 ? 1 : 0);
