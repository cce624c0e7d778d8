// Runs every benchmark on this runtime, one process each, in sequence, then
// draws bench/results/chart.svg. `deno task bench` and `bun run bench` run it.
//
//   deno run -A bench/run.ts [cost events memory request server health]
//   bun bench/run.ts [cost events memory request server health]
//
// With names, runs only those benchmarks (and the chart). Each benchmark
// writes its results to bench/results/; a failed one stops the run with its
// exit code. About 3.5 minutes under Deno and under Bun, on 2 cores.

import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtime } from "./_runtime.ts";

const BENCHMARKS = ["cost", "events", "memory", "request", "server", "health"];

const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
const named = process.argv.slice(2);
const unknown = named.filter((name) => !BENCHMARKS.includes(name));
if (unknown.length > 0) {
  console.error(
    `Unknown benchmark ${JSON.stringify(unknown[0])}: choose from ${
      BENCHMARKS.join(", ")
    }`,
  );
  process.exit(2);
}

console.log(
  `# Benchmarks — ${runtime.name}, ${runtime.cores} cores\n`,
);
for (const name of [...(named.length > 0 ? named : BENCHMARKS), "chart"]) {
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  // The memory benchmark forces garbage collections: Deno needs the flag.
  const args = deno ? ["run", "-A", "--v8-flags=--expose-gc", file] : [file];
  const started = performance.now();
  const result = spawnSync(deno ? deno.execPath() : process.execPath, args, {
    stdio: "inherit",
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  if (result.status !== 0) {
    console.error(
      `\nbench/${name}.ts failed (${
        result.error ?? `exit ${result.status ?? result.signal}`
      }) after ${seconds} s`,
    );
    process.exit(result.status || 1);
  }
  console.log(`\n(bench/${name}.ts: ${seconds} s)\n`);
}
