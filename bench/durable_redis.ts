// Tasks per second through RedisBackend (a DurableQueue consumed into a
// TaskManager) against plain BullMQ (a Queue and a Worker written by hand,
// with the same job options), on the same redis-server, in the same process
// and runtime, rounds interleaved.
//
//   deno run -A bench/durable_redis.ts    bun bench/durable_redis.ts
//   node bench/durable_redis.ts
//
// Needs redis-server (Debian's package); starts its own on 127.0.0.1.
// BENCH_ROUNDS=N (9), BENCH_TASKS=N (2000 per round), BENCH_CONCURRENCY=N (8).
// Prints a Markdown table and writes it to bench/results/durable-redis-<runtime>.md.

import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import process from "node:process";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { TaskManager } from "../mod.ts";
import { DurableQueue, RedisBackend } from "../src/durable/mod.ts";
import { startRedis } from "../tests/durable/fixtures/_redis.ts";
import { interleaved, median, runtime } from "./_runtime.ts";
import { medianInterval } from "./_stats.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const TASKS = Number(process.env.BENCH_TASKS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
/** Tasks in flight from the producer at once. */
const BATCH = 100;

const server = await startRedis();
const admin = new Redis(server.url);
let round = 0;

/** Enqueues TASKS in batches of BATCH, with `add`. */
async function produce(add: (n: number) => Promise<unknown>): Promise<void> {
  for (let n = 0; n < TASKS; n += BATCH) {
    const batch: Promise<unknown>[] = [];
    for (let i = n; i < Math.min(TASKS, n + BATCH); i++) batch.push(add(i));
    await Promise.all(batch);
  }
}

const variants: Record<string, () => Promise<number>> = {
  "RedisBackend (DurableQueue + TaskManager)": async () => {
    const name = `bench-${round++}`;
    const queue = new DurableQueue(
      await RedisBackend.open(server.url, { queue: name }),
      { attempts: 3, backoff: 1000 },
    );
    let done = 0;
    const all = Promise.withResolvers<void>();
    queue.define("t", () => {
      if (++done === TASKS) all.resolve();
    });
    const tasks = new TaskManager({ concurrency: CONCURRENCY });
    const started = performance.now();
    queue.consume(tasks, { concurrency: CONCURRENCY });
    await produce((n) => queue.enqueue("t", { n }));
    await all.promise;
    const elapsed = performance.now() - started;
    await tasks.shutdown();
    await queue.close();
    return TASKS / (elapsed / 1000);
  },
  "plain BullMQ (Queue + Worker)": async () => {
    const name = `bench-${round++}`;
    const connection = new Redis(server.url, { maxRetriesPerRequest: null });
    const queue = new Queue(name, { connection });
    let done = 0;
    const all = Promise.withResolvers<void>();
    const started = performance.now();
    const worker = new Worker(name, () => {
      if (++done === TASKS) all.resolve();
      return Promise.resolve();
    }, { connection, concurrency: CONCURRENCY });
    await produce((n) =>
      queue.add("t", { n }, {
        jobId: crypto.randomUUID(),
        attempts: 3,
        backoff: { type: "exponential", delay: 1000 },
        removeOnComplete: true,
        removeOnFail: false,
      })
    );
    await all.promise;
    const elapsed = performance.now() - started;
    await worker.close();
    await queue.close();
    await connection.quit();
    return TASKS / (elapsed / 1000);
  },
};

const names = Object.keys(variants);
const loadBefore = loadavg()[0];
let samples: Record<string, number[]>;
try {
  samples = await interleaved(names, ROUNDS, async (name) => {
    await admin.flushall();
    return await variants[name]();
  });
} finally {
  admin.disconnect();
  await server.stop();
}
const loadAfter = loadavg()[0];
const [ours, plain] = names;
const ratios = samples[ours].map((value, i) => value / samples[plain][i]);
const interval = medianInterval(ratios);
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const range = (values: number[], f: (n: number) => string) =>
  `${f(median(values))} (${f(Math.min(...values))}–${f(Math.max(...values))})`;
const two = (n: number) => n.toFixed(2);
const lines = [
  `### Redis backend against plain BullMQ — ${runtime.name}, ${runtime.cores} cores`,
  "",
  `${TASKS} tasks per round (an empty handler), enqueued in batches of ${BATCH} ` +
  `while one consumer of concurrency ${CONCURRENCY} runs them, in the same ` +
  `process, on one redis-server on 127.0.0.1 (no persistence, flushed before ` +
  `each round). Both sides use the same job options (3 attempts, exponential ` +
  `backoff, removed on completion). ${ROUNDS} rounds after one warm-up, the ` +
  `order alternating; median (min–max); the ratio is the median of the ` +
  `per-round ratios. Load average ${loadBefore.toFixed(2)} before, ` +
  `${loadAfter.toFixed(2)} after.`,
  "",
  "| variant | tasks/s |",
  "| --- | ---: |",
  ...names.map((name) => `| ${name} | ${range(samples[name], fmt)} |`),
  `| RedisBackend ÷ plain BullMQ | ${range(ratios, two)} |`,
  "",
  `Target ≥ 0.95. ${
    interval === null
      ? "Too few rounds for a confidence interval."
      : `${Math.round(interval.confidence * 100)} % interval of the median ` +
        `ratio: ${two(interval.low)}–${two(interval.high)}: ${
          interval.low >= 0.95
            ? "**met**"
            : interval.high < 0.95
            ? "**missed**"
            : "**not decided**"
        }.`
  } Per-round ratios: ${ratios.map(two).join(", ")}.`,
  "",
];
const text = lines.join("\n");
console.log(text);
const file = new URL(
  `results/durable-redis-${runtime.name.split(" ")[0]}.md`,
  import.meta.url,
);
writeFileSync(file, text);
process.exit(0);
