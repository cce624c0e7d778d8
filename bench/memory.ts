// Memory per task: heap bytes per running task with 100,000 tasks held open,
// TaskManager beside the hand-written floor; the heap after they settle; and a
// 1,000,000-task run through concurrency 1,000 sampled as it goes.
//
//   deno run -A --v8-flags=--expose-gc bench/memory.ts      bun bench/memory.ts
//
// Prints Markdown and writes it to bench/results/memory-<runtime>.md.

import { TaskManager } from "../mod.ts";
import { median, runtime, settleHeap } from "./_runtime.ts";

const HELD = 100_000;
const ROUNDS = 3;

/** The floor's per-task state: an AbortController and a Map entry. */
async function floorHeld(): Promise<number> {
  const base = await settleHeap();
  const gate = Promise.withResolvers<void>();
  const map = new Map<number, AbortController>();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < HELD; i++) {
    const controller = new AbortController();
    map.set(i, controller);
    // The same shared closure as the TaskManager run below: the user's own.
    pending.push(gate.promise.then(() => void map.delete(i)));
  }
  const held = await settleHeap();
  gate.resolve();
  await Promise.all(pending);
  return (held - base) / HELD;
}

async function managerHeld(): Promise<
  { perTask: number; after: number; base: number }
> {
  const base = await settleHeap();
  const gate = Promise.withResolvers<void>();
  const wait = () => gate.promise;
  const tasks = new TaskManager();
  for (let i = 0; i < HELD; i++) tasks.run("held", wait);
  await Promise.resolve(); // let them start
  if (tasks.activeCount !== HELD) {
    throw new Error(`only ${tasks.activeCount} running`);
  }
  const held = await settleHeap();
  gate.resolve();
  await tasks.idle();
  const after = await settleHeap();
  return { perTask: (held - base) / HELD, after, base };
}

/** What one promise of the user's closure costs, measured the same way. */
async function promiseOnly(): Promise<number> {
  const base = await settleHeap();
  const gate = Promise.withResolvers<void>();
  const held: Promise<void>[] = [];
  for (let i = 0; i < HELD; i++) held.push(gate.promise.then(() => {}));
  const heap = await settleHeap();
  gate.resolve();
  await Promise.all(held);
  return (heap - base) / HELD;
}

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

const manager: number[] = [];
const floor: number[] = [];
const baseline: number[] = [];
const leaks: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const m = await managerHeld();
  manager.push(m.perTask);
  leaks.push((m.after - m.base) / m.base);
  floor.push(await floorHeld());
  baseline.push(await promiseOnly());
}

out(`## Memory per task — ${runtime.name}, ${runtime.cores} cores`);
out();
out(
  `${
    HELD.toLocaleString("en")
  } tasks held open on one gate; heap after forced GC; median of ${ROUNDS} rounds (min–max).`,
);
out();
out("| what is held | bytes/task (median) | min–max |");
out("| --- | ---: | ---: |");
const row = (name: string, s: number[]) =>
  out(
    `| ${name} | ${median(s).toFixed(0)} | ${Math.min(...s).toFixed(0)}–${
      Math.max(...s).toFixed(0)
    } |`,
  );
row("TaskManager running task (incl. the user's pending promise)", manager);
row("floor: AbortController + Map entry (incl. a pending promise)", floor);
row("one pending promise alone (the user's part)", baseline);
out();
out(
  `TaskManager beyond the user's promise: ${
    (median(manager) - median(baseline)).toFixed(0)
  } B/task; ` +
    `floor beyond it: ${(median(floor) - median(baseline)).toFixed(0)} B/task.`,
);
out(
  `Heap after the tasks settled vs. before: ${
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

const slug = runtime.name.split(" ")[0];
const url = new URL(`./results/memory-${slug}.md`, import.meta.url);
const { writeFileSync } = await import("node:fs");
writeFileSync(url, lines.join("\n") + "\n");
console.log(`\nwrote bench/results/memory-${slug}.md`);
