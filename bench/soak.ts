// Soak: 1,000,000 mixed tasks through concurrency 1,000, with seeded random
// failures, cancellations (pending and running), external-signal aborts,
// timeouts and failFast groups. The heap is sampled after every 100,000
// tasks (with nothing in flight, after a forced GC where the runtime has
// one); the run ends by checking that every task settled exactly once,
// that nothing is left running or queued, and that every failure was
// delivered exactly once, and says whether memory stayed flat.
//
//   deno run --v8-flags=--expose-gc bench/soak.ts [--seed=42] [--tasks=1000000]
//   bun bench/soak.ts [--seed=42] [--tasks=1000000]
//   node --expose-gc bench/soak.ts (Node 22, which strips the types)
//
// Bounded: it stops submitting after two minutes and reports how far it got.
// Exits with code 1 if a check fails, if the heap grew, or if time ran out.

import { TaskManager } from "../mod.ts";
import { runtime, settleHeap } from "./_runtime.ts";

const g = globalThis as unknown as {
  Deno?: { args: string[]; exit(code: number): never };
  process?: { argv: string[]; exit(code: number): never };
};
const args = g.Deno?.args ?? g.process?.argv.slice(2) ?? [];
const option = (name: string, fallback: number): number => {
  const arg = args.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined ? fallback : Number(arg.slice(name.length + 3));
};

const SEED = option("seed", 42);
const TOTAL = option("tasks", 1_000_000);
const CONCURRENCY = 1000;
const SAMPLE_EVERY = Math.max(1, Math.round(TOTAL / 10));
const CHUNK = 1000;
/** Submission waits while more than this many tasks are in flight. */
const HIGH_WATER = 20_000;
const LOW_WATER = 10_000;
const BUDGET_MS = 120_000;

/** mulberry32: a small seeded PRNG, so that every run does the same work. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = random(SEED);

// ---------------------------------------------------------------------------
// Bookkeeping, kept in fixed-size arrays so that it does not grow the heap.
// ---------------------------------------------------------------------------

/** Settle events per task, indexed by the number in the task's name. */
const settlesOf = new Uint8Array(TOTAL);
const counts = {
  started: 0,
  cancelEvents: 0,
  settled: 0,
  fulfilled: 0,
  rejected: 0,
  cancelled: 0,
  timedOut: 0,
  /** Failures delivered to onError, to a reader of `value`, to awaitAll. */
  onError: 0,
  toReader: 0,
  toAwaitAll: 0,
};

let lowWater: PromiseWithResolvers<void> | undefined;
const inFlight = () => tasks.activeCount + tasks.pendingCount;

const tasks = new TaskManager({
  concurrency: CONCURRENCY,
  onError: () => counts.onError++,
});
tasks.addEventListener("start", () => counts.started++);
tasks.addEventListener("cancel", () => counts.cancelEvents++);
tasks.addEventListener("settle", (event) => {
  const { name, status } = event.task;
  settlesOf[Number(name.slice(1))]++;
  counts.settled++;
  counts[status as "fulfilled" | "rejected" | "cancelled"]++;
  if (
    status === "rejected" && event.error instanceof DOMException &&
    event.error.name === "TimeoutError"
  ) counts.timedOut++;
  if (lowWater !== undefined && inFlight() < LOW_WATER) {
    lowWater.resolve();
    lowWater = undefined;
  }
});

// ---------------------------------------------------------------------------
// The task mix
// ---------------------------------------------------------------------------

type Ctx = { signal: AbortSignal };
const value = { ok: true };
const sync = () => value;
const later = async () => {
  await null;
  return value;
};
const failNow = () => {
  throw new Error("failed at once");
};
const failLater = async () => {
  await null;
  throw "failed later, with a string";
};
/** Runs until its signal aborts: cancelled, aborted from outside, or timed out. */
const untilAborted = ({ signal }: Ctx) =>
  new Promise<void>((_resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), {
      once: true,
    });
  });
/** Ignores its signal and returns a little later. */
const stubborn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

const readValue = (task: { value: Promise<unknown>; status: string }) =>
  task.value.catch(() => {
    if (task.status === "rejected") counts.toReader++;
  });

let toCancel: { cancel(): boolean }[] = [];
let cancelNext: { cancel(): boolean }[] = [];
let controller = new AbortController();
let abortNext: AbortController | undefined;
/** Submits task `i`, of a kind drawn at random; returns how many it used. */
function submit(i: number): number {
  const name = `t${i}`;
  const r = rand();
  if (r < 0.25) tasks.run(name, sync);
  else if (r < 0.45) tasks.run(name, later);
  else if (r < 0.50) tasks.run(name, rand() < 0.5 ? failNow : failLater);
  else if (r < 0.55) {
    readValue(tasks.runWithResult(name, rand() < 0.5 ? failNow : failLater));
  } else if (r < 0.65) {
    // Cancelled by handle or by id, one chunk later: pending or running.
    const task = tasks.runWithResult(name, untilAborted);
    readValue(task);
    toCancel.push(
      rand() < 0.5 ? task : { cancel: () => tasks.cancel(task.id) },
    );
  } else if (r < 0.70) {
    tasks.run(name, rand() < 0.5 ? untilAborted : later, {
      signal: controller.signal,
    });
  } else if (r < 0.75) {
    tasks.run(name, untilAborted, { timeout: 1 + Math.floor(rand() * 4) });
  } else if (r < 0.77) {
    // Timed out too, but ignores its signal: keeps its slot until it returns.
    tasks.run(name, stubborn, { timeout: 1 });
  } else if (r < 0.87) {
    // A group of up to five, all added before awaitAll(), which then takes
    // every failure; some cancel the rest on the first one.
    const group = tasks.group({ failFast: rand() < 0.5, concurrency: 2 });
    const size = Math.min(5, TOTAL - i);
    for (let k = 0; k < size; k++) {
      const q = rand();
      group.add(`t${i + k}`, q < 0.2 ? failLater : q < 0.6 ? later : sync);
    }
    group.awaitAll().then((results) => {
      for (const result of results) {
        if (result.status === "rejected") counts.toAwaitAll++;
      }
    });
    return size;
  } else readValue(tasks.runWithResult(name, later));
  return 1;
}

/** Cancels what the chunk before the last asked for, and aborts its signal. */
function endChunk(): void {
  for (const task of cancelNext) task.cancel();
  cancelNext = toCancel;
  toCancel = [];
  abortNext?.abort(new Error("request aborted"));
  abortNext = controller;
  controller = new AbortController();
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

interface Sample {
  done: number;
  heap: number;
  fulfilled: number;
  rejected: number;
  cancelled: number;
  seconds: number;
}

// Node does not count AbortSignal.timeout as keeping the process alive.
const keepAlive = setInterval(() => {}, 1000);
const mb = (bytes: number) => (bytes / 1e6).toFixed(2);
const t0 = performance.now();
const seconds = () => (performance.now() - t0) / 1000;
const startHeap = await settleHeap();
const samples: Sample[] = [];
let submitted = 0;
let stoppedEarly = false;

console.log(
  `Soak on ${runtime.name}: ${TOTAL.toLocaleString("en")} tasks, concurrency ${
    CONCURRENCY.toLocaleString("en")
  }, seed ${SEED}${
    runtime.canGc ? "" : " (no forced GC: heap figures are rough)"
  }`,
);
console.log();
console.log(
  "| tasks done | heap (MB) | fulfilled | rejected | cancelled | time (s) |",
);
console.log("| ---: | ---: | ---: | ---: | ---: | ---: |");
console.log(`| 0 | ${mb(startHeap)} | 0 | 0 | 0 | 0.0 |`);

while (submitted < TOTAL) {
  if (performance.now() - t0 > BUDGET_MS) {
    stoppedEarly = true;
    break;
  }
  const end = Math.min(TOTAL, submitted + SAMPLE_EVERY);
  while (submitted < end) {
    const chunkEnd = Math.min(end, submitted + CHUNK);
    while (submitted < chunkEnd) submitted += submit(submitted);
    endChunk();
    if (inFlight() > HIGH_WATER) {
      lowWater = Promise.withResolvers();
      await lowWater.promise;
    } else {
      // Let timers (timeouts, stubborn tasks) run between chunks.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  // Drain the sample: cancel and abort what is left, wait for it, then weigh.
  endChunk();
  endChunk();
  await tasks.idle();
  const sample = {
    done: counts.settled,
    heap: await settleHeap(),
    fulfilled: counts.fulfilled,
    rejected: counts.rejected,
    cancelled: counts.cancelled,
    seconds: seconds(),
  };
  samples.push(sample);
  console.log(
    `| ${sample.done.toLocaleString("en")} | ${mb(sample.heap)} | ${
      sample.fulfilled.toLocaleString("en")
    } | ${sample.rejected.toLocaleString("en")} | ${
      sample.cancelled.toLocaleString("en")
    } | ${sample.seconds.toFixed(1)} |`,
  );
}

clearInterval(keepAlive);

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

const problems: string[] = [];
let once = 0;
for (let i = 0; i < submitted; i++) {
  if (settlesOf[i] === 1) once++;
  else if (problems.length < 5) {
    problems.push(`task t${i} settled ${settlesOf[i]} times`);
  }
}
if (once !== submitted) {
  problems.push(`${submitted - once} tasks did not settle exactly once`);
}
if (counts.settled !== submitted) {
  problems.push(`${counts.settled} settle events for ${submitted} tasks`);
}
if (
  counts.fulfilled + counts.rejected + counts.cancelled !== counts.settled
) problems.push("the statuses do not add up");
if (tasks.activeCount !== 0 || tasks.pendingCount !== 0) {
  problems.push(
    `left: ${tasks.activeCount} running, ${tasks.pendingCount} queued`,
  );
}
if (counts.cancelEvents !== counts.cancelled + counts.timedOut) {
  problems.push(
    `${counts.cancelEvents} cancel events for ${counts.cancelled} cancelled and ${counts.timedOut} timed-out tasks`,
  );
}
const delivered = counts.onError + counts.toReader + counts.toAwaitAll;
if (delivered !== counts.rejected) {
  problems.push(
    `${delivered} failures delivered (onError ${counts.onError}, value ${counts.toReader}, awaitAll ${counts.toAwaitAll}) for ${counts.rejected} rejected tasks`,
  );
}

// Flat: from the first sample to the last, the heap grew by less than 10 %
// (1 MB at least, for the noise of a small heap).
const first = samples[0]?.heap ?? startHeap;
const last = samples.at(-1)?.heap ?? startHeap;
const growth = last - first;
const flat = growth < Math.max(1e6, first * 0.1);
const verdict = !runtime.canGc
  ? "not judged: without a forced GC the heap holds garbage (Deno: --v8-flags=--expose-gc, Node: --expose-gc)"
  : flat
  ? "flat"
  : "GREW";

console.log();
console.log(
  `Settled ${counts.settled.toLocaleString("en")} of ${
    submitted.toLocaleString("en")
  } submitted tasks in ${seconds().toFixed(1)} s${
    stoppedEarly ? " (stopped early: time budget)" : ""
  }: ${counts.fulfilled.toLocaleString("en")} fulfilled, ${
    counts.rejected.toLocaleString("en")
  } rejected (${counts.timedOut.toLocaleString("en")} timed out), ${
    counts.cancelled.toLocaleString("en")
  } cancelled; ${counts.started.toLocaleString("en")} started.`,
);
console.log(
  `Failures delivered once each: onError ${
    counts.onError.toLocaleString("en")
  }, value ${counts.toReader.toLocaleString("en")}, awaitAll ${
    counts.toAwaitAll.toLocaleString("en")
  }.`,
);
console.log(
  `Heap: ${mb(startHeap)} MB at start, ${
    mb(first)
  } MB after the first sample, ${mb(last)} MB at the end (${
    growth >= 0 ? "+" : ""
  }${mb(growth)} MB): ${verdict}.`,
);
if (problems.length > 0) {
  console.log(`FAILED:\n  ${problems.join("\n  ")}`);
} else console.log("Counts balanced: every task settled exactly once.");

const grew = runtime.canGc && !flat;
const code = problems.length > 0 || grew || stoppedEarly ? 1 : 0;
if (g.Deno !== undefined) g.Deno.exit(code);
else g.process!.exit(code);
