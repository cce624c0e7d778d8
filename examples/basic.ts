// A tour of @background/tasks in one runnable script:
// run, runWithResult, cancel, a group, events, and a bounded shutdown.
//
//   deno run examples/basic.ts      bun examples/basic.ts
//
// It uses only web standards, so it runs unchanged on Deno, Bun and Node.

import { TaskManager } from "@background/tasks";

const tasks = new TaskManager({
  concurrency: 4,
  onError: (error, task) =>
    console.log(`  onError: ${task.name} failed: ${(error as Error).message}`),
});

tasks.addEventListener("start", (e) => console.log(`  start   ${e.task.name}`));
tasks.addEventListener(
  "cancel",
  (e) => console.log(`  cancel  ${e.task.name}`),
);
tasks.addEventListener(
  "settle",
  (e) => console.log(`  settle  ${e.task.name}: ${e.task.status}`),
);

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
function work(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

console.log("1. Fire and forget: the caller goes on at once");
tasks.run("send-confirmation", async ({ signal }) => {
  await work(50, signal);
});
tasks.run("update-search-index", () => {
  throw new Error("index is read-only");
});
console.log(
  `  queued: ${tasks.pendingCount} pending, ${tasks.activeCount} running`,
);
await tasks.idle();

console.log("\n2. A result you can await");
const report = tasks.runWithResult("generate-report", async ({ signal }) => {
  await work(30, signal);
  return "/reports/2026-11.pdf";
});
console.log(`  report ready at ${await report.value}`);

console.log("\n3. Cancel by id");
const poll = tasks.run("long-poll", ({ signal }) => work(60_000, signal));
await Promise.resolve(); // it starts in a microtask
console.log(
  `  running: ${
    tasks.activeTasks.map((t) => `${t.name} (${t.id})`).join(", ")
  }`,
);
tasks.cancel(poll.id, new Error("no longer needed"));
await tasks.idle();

console.log(
  "\n4. A group: three thumbnails, cancelled together on the first failure",
);
const group = tasks.group({ failFast: true });
for (const size of [150, 300, 600]) {
  group.add(`thumb-${size}`, async ({ signal }) => {
    await work(size / 10, signal);
    if (size === 300) throw new Error("corrupt image");
    return `photo-${size}.jpg`;
  });
}
for (const result of await group.awaitAll()) {
  console.log(`  ${result.name}: ${result.status}`);
}

console.log("\n5. Shutdown: wait up to 100 ms, then cancel what is left");
tasks.run("nightly-export", ({ signal }) => work(60_000, signal));
const summary = await tasks.shutdown({ timeout: 100, grace: 500 });
console.log(
  `  completed ${summary.completed}, cancelled ${summary.cancelled}, abandoned ${summary.abandoned.length}`,
);
