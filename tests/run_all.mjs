// The single gate: format, lint, doc lint, import cycles, type check, the
// suite on Deno, Bun and Node 22, and the JSR publish dry run. Run it with
// `npm test`, which installs the runtimes first. Before anything runs it
// makes sure the tools the suite drives are installed (Chromium, redis-server),
// installing them where it can (as root, with apt-get) and otherwise stopping
// with the command to run. It ends with a line `N passed, N failed` counting
// the tests of all three runtimes, and exits non-zero if any step failed.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
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
    "src/shutdown/mod.ts",
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
const selected = steps.filter(([name]) =>
  only.length === 0 || only.some((word) => name.includes(word))
);
if (selected.some(([, , , count]) => count !== undefined)) ensureTools();
let passed = 0;
let failed = 0;
const failures = [];
for (const [name, command, args, count] of selected) {
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

/**
 * The tools outside npm that the suite drives: Debian's Chromium (the demo
 * page's browser test) and redis-server (the Redis tests). Installs the
 * missing ones with apt-get when it runs as root; otherwise prints the
 * command and exits 1 before any test runs.
 */
function ensureTools() {
  const tools = [
    {
      name: "chromium",
      why: "the demo page's browser test",
      found: () => existsSync("/usr/bin/chromium"),
    },
    {
      name: "redis-server",
      why: "the Redis tests of the durable queue and the demo",
      found: () =>
        spawnSync("redis-server", ["--version"], { stdio: "ignore" })
          .status === 0,
    },
  ];
  let missing = tools.filter((tool) => !tool.found());
  if (missing.length === 0) return;
  const packages = missing.map((tool) => tool.name).join(" ");
  const list = missing.map((tool) => `${tool.name} (${tool.why})`).join(
    " and ",
  );
  const root = process.getuid?.() === 0;
  if (root && existsSync("/usr/bin/apt-get")) {
    console.log(`The suite needs ${list}: installing ${packages} with apt-get`);
    const apt = (args) =>
      spawnSync("apt-get", args, {
        stdio: "inherit",
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      }).status === 0;
    if (
      apt(["update", "-qq"]) &&
      apt(["install", "-y", "-qq", ...missing.map((tool) => tool.name)])
    ) {
      missing = missing.filter((tool) => !tool.found());
      if (missing.length === 0) return;
    }
  }
  console.error(
    [
      `The test suite needs ${list}, and ${packages} ${
        missing.length === 1 ? "is" : "are"
      } not installed${root ? " (apt-get could not install them)" : ""}.`,
      "Install, then run npm test again:",
      "",
      `  sudo apt-get update && sudo apt-get install -y ${packages}`,
      "",
      "On a system without apt-get: Chromium at /usr/bin/chromium, and redis-server on the PATH.",
    ].join("\n"),
  );
  console.log("0 passed, 1 failed");
  process.exit(1);
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
