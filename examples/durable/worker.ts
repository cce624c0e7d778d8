// A worker: runs the stored tasks through a TaskManager, like any other
// background task, until SIGINT or SIGTERM; then it drains and hands back
// what it could not finish. Start as many as you like, on as many machines
// as share the backend.
//
//   deno run -A examples/durable/worker.ts
//   REDIS_URL=redis://127.0.0.1:6379 bun examples/durable/worker.ts

import process from "node:process";
import { TaskManager } from "@background/tasks";
import { openQueue } from "./tasks.ts";

const queue = await openQueue();
const tasks = new TaskManager({
  concurrency: 4,
  timeout: 30_000,
  onError: (error, task) =>
    console.error(`[${process.pid}] ${task.name} failed: ${error}`),
});
queue.consume(tasks, { concurrency: 4 });
console.log(`[${process.pid}] worker started; Ctrl-C to stop`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Running tasks get 5 s; what is still running then is cancelled, and the
  // queue hands it back to be run by another worker.
  const report = await tasks.shutdown({ timeout: 5000 });
  await queue.close();
  console.log(
    `[${process.pid}] stopped: ${report.completed} finished during shutdown, ` +
      `${report.cancelled} handed back`,
  );
  process.exit(0);
}

process.on("SIGINT", stop);
process.on("SIGTERM", stop);
