// A consumer process for bench/durable_sqlite.ts:
//   durable_sqlite_consumer.ts <file> <concurrency>
// Opens the file, prints "ready", waits for a line on stdin, then consumes
// (empty handlers) until SIGTERM.

import process from "node:process";
import { createInterface } from "node:readline";
import { TaskManager } from "../mod.ts";
import { DurableQueue, SqliteBackend } from "../src/durable/mod.ts";

const [file, concurrency] = process.argv.slice(2);
const queue = new DurableQueue(await SqliteBackend.open(file));
queue.define("t", () => {});
const tasks = new TaskManager({ concurrency: Number(concurrency) });
process.on("SIGTERM", async () => {
  await tasks.shutdown({ timeout: 0 });
  await queue.close();
  process.exit(0);
});
const lines = createInterface({ input: process.stdin });
lines.once(
  "line",
  () => queue.consume(tasks, { concurrency: Number(concurrency) }),
);
console.log("ready");
