// Memory per task: heap bytes per running task with 100,000 tasks held open,
// TaskManager beside the hand-written floor; the heap after they settle; what
// 100,000 settled tasks that had a long timeout leave behind; and a
// 1,000,000-task run through concurrency 1,000 sampled as it goes.
//
//   deno run -A --v8-flags=--expose-gc bench/memory.ts      bun bench/memory.ts
//
// Prints Markdown and writes it to bench/results/memory-<runtime>.md.

import { TaskManager } from "../mod.ts";
import { Floor } from "./_floor.ts";
import { median, runtime, settleHeap } from "./_runtime.ts";

const HELD = 100_000;
const ROUNDS = 3;

/**
 * Heap bytes per running task while HELD tasks wait on one shared gate. The
 * task function returns the shared promise, so the user's closure costs
 * nothing per task: everything measured belongs to the manager.
 */
async function held(
  make: () => { run(fn: () => unknown): unknown; idle(): Promise<void> },
): Promise<{ perTask: number; leak: number }> {
  const base = await settleHeap();
  const gate = Promise.withResolvers<void>();
  const wait = () => gate.promise;
  const manager = make();
  for (let i = 0; i < HELD; i++) manager.run(wait);
  await new Promise((resolve) => setTimeout(resolve, 0)); // all started
  const heap = await settleHeap();
  gate.resolve();
  await manager.idle();
  const after = await settleHeap();
  return { perTask: (heap - base) / HELD, leak: (after - base) / base };
}

const taskManager = () => {
  const tasks = new TaskManager();
  return {
    run: (fn: () => unknown) => tasks.run("held", fn),
    idle: () => tasks.idle(),
  };
};
const floor = () => new Floor(Infinity);

const lines: string[] = [];
const out = (line = "") => {
  console.log(line);
  lines.push(line);
};

if (!runtime.canGc) {
  console.log(
    "No forced GC: run Deno with --v8-flags=--expose-gc (Node: --expose-gc).",
  );
}

const managerBytes: number[] = [];
const floorBytes: number[] = [];
const leaks: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const m = await held(taskManager);
  managerBytes.push(m.perTask);
  leaks.push(m.leak);
  floorBytes.push((await held(floor)).perTask);
}

out(`## Memory per task — ${runtime.name}, ${runtime.cores} cores`);
out();
out(
  `${
    HELD.toLocaleString("en")
  } tasks held running on one shared gate (the user's closure costs nothing per task); ` +
    `heap after forced GC${
      runtime.canGc ? "" : " (not available: figures are rough)"
    }; median of ${ROUNDS} rounds (min–max).`,
);
out();
out("| implementation | bytes per running task (median) | min–max |");
out("| --- | ---: | ---: |");
const row = (name: string, s: number[]) =>
  out(
    `| ${name} | ${median(s).toFixed(0)} | ${Math.min(...s).toFixed(0)}–${
      Math.max(...s).toFixed(0)
    } |`,
  );
row("TaskManager", managerBytes);
row("floor (hand-written)", floorBytes);
out();
out(
  `Heap after the tasks settled vs. before they were made: ${
    (median(leaks) * 100).toFixed(2)
  } % (median of rounds).`,
);

// One million tasks through concurrency 1,000.
const TOTAL = 1_000_000;
const tasks = new TaskManager({ concurrency: 1000 });
const samples: { done: number; heap: number }[] = [];
const start = await settleHeap();
let done = 0;
const step = TOTAL / 10;
const fn = async () => {
  await null;
  done++;
};
for (let batch = 0; batch < 10; batch++) {
  for (let i = 0; i < step; i++) tasks.run("t", fn);
  await tasks.idle();
  samples.push({ done, heap: await settleHeap() });
}
out();
out(`### 1,000,000 tasks through concurrency 1,000`);
out();
out("| tasks done | heap (MB) | vs. start |");
out("| ---: | ---: | ---: |");
out(`| 0 | ${(start / 1e6).toFixed(2)} | — |`);
for (const s of samples) {
  out(
    `| ${s.done.toLocaleString("en")} | ${(s.heap / 1e6).toFixed(2)} | ${
      ((s.heap - start) / 1e6).toFixed(2)
    } MB |`,
  );
}

// Last, as the signals below stay on the heap for 10 minutes (with no
// listener left, they do not keep the process alive). What tasks
// with a long timeout leave once they settled: the manager clears
// each task's timer; an `AbortSignal.timeout` per task, which cannot be
// cleared, is what it used before.
const TIMED = 100_000;
const LONG = 600_000; // 10 minutes: nothing fires while this runs
async function leftBehind(run: () => Promise<void>): Promise<number> {
  const before = await settleHeap();
  await run();
  return (await settleHeap()) - before;
}
const timedTasks = await leftBehind(async () => {
  const tasks = new TaskManager({ timeout: LONG });
  for (let i = 0; i < TIMED; i++) tasks.run("timed", () => {});
  await tasks.idle();
});
const listener = () => {};
const timeoutSignals = await leftBehind(() => {
  for (let i = 0; i < TIMED; i++) {
    // Listened to while the task runs, then let go, as the manager did.
    const signal = AbortSignal.timeout(LONG);
    signal.addEventListener("abort", listener);
    signal.removeEventListener("abort", listener);
  }
  return Promise.resolve();
});
out();
out(
  `### ${
    TIMED.toLocaleString("en")
  } settled tasks that had a 10-minute timeout`,
);
out();
out("| what is left | heap after GC, vs. before (MB) |");
out("| --- | ---: |");
out(
  `| TaskManager({ timeout }): the tasks ran and settled | ${
    (timedTasks / 1e6).toFixed(2)
  } |`,
);
out(
  `| for comparison: an \`AbortSignal.timeout\` per task, listened to while it ran (what the manager used before) | ${
    (timeoutSignals / 1e6).toFixed(2)
  } |`,
);

const slug = runtime.name.split(" ")[0];
const url = new URL(`./results/memory-${slug}.md`, import.meta.url);
const { writeFileSync } = await import("node:fs");
writeFileSync(url, lines.join("\n") + "\n");
console.log(`\nwrote bench/results/memory-${slug}.md`);
