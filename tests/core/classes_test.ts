// V8 frees a hidden class once no object has it and throws away the
// optimized code that embedded it; src/core/_classes.ts keeps the classes of
// a task and of a manager. The check is V8's own account: with them kept,
// a full collection between runs of a dropped manager's tasks clears no
// embedded object of optimized code. (JavaScriptCore has no such trace: the
// test exists on Deno and Node, each running its own executable.)

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { test } from "../_harness.ts";

const FIXTURE = fileURLToPath(
  new URL("./fixtures/fresh_heap.ts", import.meta.url),
);
const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
const bun = (process.versions as Record<string, string | undefined>).bun;

/** The fixture's output under --trace-deopt, `runs` runs, on this runtime's executable. */
function traced(runs: number): Promise<string> {
  const [file, args] = deno
    ? [deno.execPath(), [
      "run",
      "--allow-read",
      "--v8-flags=--expose-gc,--trace-deopt",
      FIXTURE,
      String(runs),
    ]]
    : [process.execPath, [
      "--expose-gc",
      "--trace-deopt",
      "--disable-warning=ExperimentalWarning",
      FIXTURE,
      String(runs),
    ]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => output += chunk);
    child.stderr.on("data", (chunk) => output += chunk);
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0 && output.includes(`runs: ${runs}`)) resolve(output);
      else reject(new Error(`the fixture exited with ${code}:\n${output}`));
    });
  });
}

/**
 * The optimized code V8 threw away because an object it embedded was
 * collected: "embedded weak objects cleared" (Deno 2.9's V8), "weak objects"
 * (Node 22's).
 */
function cleared(output: string): string[] {
  return output.split("\n").filter((line) =>
    /reason: (embedded )?weak objects/.test(line)
  );
}

if (!bun) {
  test("full collections between managers' runs do not throw away their optimized code", async () => {
    const two = await traced(2);
    const eight = await traced(8);
    // The trace is on: the fixture's code was optimized and deoptimized.
    assert.match(eight, /\[bailout|\[marking dependent code/);
    // V8 may do it once (Node 22 does, once per process), but not again at
    // each collection: eight runs, no more than two.
    assert.deepEqual(
      { eight: cleared(eight).length },
      { eight: cleared(two).length },
      cleared(eight).join("\n"),
    );
  });
}
