// Tasks per second through SqliteBackend: one file, consumed by one and by
// two consumer processes of the runtime that runs the bench (each a
// DurableQueue into a TaskManager of concurrency 8, empty handlers), rounds
// interleaved; and enqueues per second from one process.
//
//   deno run -A bench/durable_sqlite.ts    bun bench/durable_sqlite.ts
//   node bench/durable_sqlite.ts
//
// BENCH_ROUNDS=N (7), BENCH_TASKS=N (3000 per round).
// Prints a Markdown table and writes it to bench/results/durable-sqlite-<runtime>.md.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { DurableQueue, SqliteBackend } from "../src/durable/mod.ts";
import { openSqlite } from "../src/durable/_sqlite_driver.ts";
import { runtimeArgs } from "../tests/durable/fixtures/_process.ts";
import { interleaved, median, runtime } from "./_runtime.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const TASKS = Number(process.env.BENCH_TASKS ?? 3000);
const CONCURRENCY = 8;
const CONSUMER = fileURLToPath(
  new URL("durable_sqlite_consumer.ts", import.meta.url),
);

const enqueueRates: number[] = [];

/** Fills a fresh file with TASKS tasks; returns the file and its folder. */
async function fill(): Promise<{ file: string; folder: string }> {
  const folder = await mkdtemp(join(tmpdir(), "bench-sqlite-"));
  const file = join(folder, "queue.sqlite");
  const queue = new DurableQueue(await SqliteBackend.open(file));
  queue.define("t", () => {});
  const started = performance.now();
  for (let n = 0; n < TASKS; n++) await queue.enqueue("t", { n });
  enqueueRates.push(TASKS / ((performance.now() - started) / 1000));
  await queue.close();
  return { file, folder };
}

/** Runs `count` consumers over a full file; tasks/s from "go" to empty. */
async function consume(count: number): Promise<number> {
  const { file, folder } = await fill();
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, [
      ...runtimeArgs(CONSUMER),
      file,
      String(CONCURRENCY),
    ], { stdio: ["pipe", "pipe", "inherit"] }));
  try {
    await Promise.all(
      children.map((child) =>
        new Promise<void>((resolve, reject) => {
          createInterface({ input: child.stdout! }).on("line", (line) => {
            if (line === "ready") resolve();
          });
          child.on("exit", () => reject(new Error("a consumer exited")));
        })
      ),
    );
    const db = await openSqlite(file);
    const started = performance.now();
    for (const child of children) child.stdin!.write("go\n");
    const deadline = Date.now() + 120_000;
    while (
      (db.get("SELECT COUNT(*) AS n FROM background_tasks")!.n as number) > 0
    ) {
      if (Date.now() > deadline) throw new Error("not done in 120 s");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const elapsed = performance.now() - started;
    db.close();
    return TASKS / (elapsed / 1000);
  } finally {
    for (const child of children) {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await once(child, "exit");
      }
    }
    await rm(folder, { recursive: true, force: true });
  }
}

const variants: Record<string, () => Promise<number>> = {
  "one consumer process": () => consume(1),
  "two consumer processes": () => consume(2),
};
const names = Object.keys(variants);
const loadBefore = loadavg()[0];
const samples = await interleaved(names, ROUNDS, (name) => variants[name]());
const loadAfter = loadavg()[0];
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const two = (n: number) => n.toFixed(2);
const range = (values: number[], f: (n: number) => string) =>
  `${f(median(values))} (${f(Math.min(...values))}–${f(Math.max(...values))})`;
const ratios = samples[names[1]].map((value, i) =>
  value / samples[names[0]][i]
);
const lines = [
  `### SQLite backend — ${runtime.name}, ${runtime.cores} cores`,
  "",
  `${TASKS} tasks per round (an empty handler) stored in a fresh file (WAL, ` +
  `synchronous NORMAL), then consumed by one or two processes of the same ` +
  `runtime, each a TaskManager of concurrency ${CONCURRENCY}; timed from the ` +
  `signal to start (the processes are up and the file open) until the task ` +
  `table is empty. ${ROUNDS} rounds after one warm-up, the order alternating; ` +
  `median (min–max). Enqueue: one process, one awaited enqueue after another. ` +
  `Load average ${loadBefore.toFixed(2)} before, ${
    loadAfter.toFixed(2)
  } after.`,
  "",
  "| variant | tasks/s |",
  "| --- | ---: |",
  ...names.map((name) => `| ${name} | ${range(samples[name], fmt)} |`),
  `| two ÷ one | ${range(ratios, two)} |`,
  `| enqueue, one process | ${range(enqueueRates, fmt)} |`,
  "",
];
const text = lines.join("\n");
console.log(text);
writeFileSync(
  new URL(
    `results/durable-sqlite-${runtime.name.split(" ")[0]}.md`,
    import.meta.url,
  ),
  text,
);
