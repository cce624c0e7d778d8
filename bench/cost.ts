// Cost per task: TaskManager side by side with p-queue, p-limit and a
// hand-written floor, in the same process and the same rounds, under two
// garbage-collector policies: as the heap comes (no forced collection), and
// from a fresh heap (a full collection before every timed run, and 100k
// distinct task names). Then the cost of priorities, and of events measured
// against the runtime's own two `Event`s.
//
//   deno run -A --v8-flags=--expose-gc bench/cost.ts        bun bench/cost.ts
//
// Prints Markdown and writes it to bench/results/cost-<runtime>.md.

import pLimit from "p-limit";
import PQueue from "p-queue";
import { type TaskEvent, TaskManager } from "../mod.ts";
import { CASES } from "./_cases.ts";
import { Floor } from "./_floor.ts";
import { interleaved, median, runtime } from "./_runtime.ts";
import { medianInterval } from "./_stats.ts";

const N = 100_000;
const ROUNDS = Number(globalThis.process?.env?.BENCH_ROUNDS ?? 7);

type Fn = () => unknown;

type Impl = (fn: Fn, concurrency: number) => Promise<void>;

const impls: Record<string, Impl> = {
  "TaskManager": async (fn, concurrency) => {
    const tasks = new TaskManager({ concurrency });
    for (let i = 0; i < N; i++) tasks.run("t", fn);
    await tasks.idle();
  },
  // See LISTENED below.
  "TaskManager + start/settle listeners": async (fn, concurrency) => {
    const tasks = new TaskManager({ concurrency });
    let events = 0;
    tasks.addEventListener("start", () => void events++);
    tasks.addEventListener("settle", () => void events++);
    for (let i = 0; i < N; i++) tasks.run("t", fn);
    await tasks.idle();
    if (events !== 2 * N) throw new Error(`saw ${events} events`);
  },
  "TaskManager + listeners reading event.task": async (fn, concurrency) => {
    const tasks = new TaskManager({ concurrency });
    let events = 0;
    const listener = (event: TaskEvent) => {
      if (event.task.startedAt !== undefined) events++;
    };
    tasks.addEventListener("start", listener);
    tasks.addEventListener("settle", listener);
    for (let i = 0; i < N; i++) tasks.run("t", fn);
    await tasks.idle();
    if (events !== 2 * N) throw new Error(`saw ${events} events`);
  },
  "floor (hand-written)": async (fn, concurrency) => {
    const floor = new Floor(concurrency);
    for (let i = 0; i < N; i++) floor.run(fn);
    await floor.idle();
  },
  // See FLOOR_EVENTS below.
  "floor + 2 Events per task": async (fn, concurrency) => {
    const target = new EventTarget();
    let events = 0;
    const listener = () => void events++;
    target.addEventListener("start", listener);
    target.addEventListener("settle", listener);
    const floor = new Floor(concurrency, target);
    for (let i = 0; i < N; i++) floor.run(fn);
    await floor.idle();
    if (events !== 2 * N) throw new Error(`saw ${events} events`);
  },
  "p-limit": async (fn, concurrency) => {
    const limit = pLimit(concurrency);
    const all: Promise<unknown>[] = new Array(N);
    for (let i = 0; i < N; i++) all[i] = limit(fn);
    await Promise.all(all);
  },
  "p-queue": async (fn, concurrency) => {
    const queue = new PQueue({ concurrency });
    for (let i = 0; i < N; i++) queue.add(fn);
    await queue.onIdle();
  },
};

// What the runtime itself charges for two events (two `Event`s made and
// dispatched to one listener each), timed in the same rounds twice: added to
// the hand-written floor's tasks (above), which is the least any manager whose
// events are real `Event`s adds per task, and in a loop with no task around
// them, where nothing else lives on the heap and the caches hold only them.
const FLOOR_EVENTS = "floor + 2 Events per task";
const LISTENED = "TaskManager + start/settle listeners";
const EVENTS_ALONE = "runtime: 2 × new Event + dispatchEvent";
impls[EVENTS_ALONE] = () => {
  const target = new EventTarget();
  let events = 0;
  const listener = () => void events++;
  target.addEventListener("start", listener);
  target.addEventListener("settle", listener);
  for (let i = 0; i < N; i++) {
    target.dispatchEvent(new Event("start"));
    target.dispatchEvent(new Event("settle"));
  }
  if (events !== 2 * N) throw new Error(`saw ${events} events`);
  return Promise.resolve();
};

// Making the two `Event`s alone, with no dispatch: what their objects cost.
const EVENTS_MADE = "runtime: 2 × new Event, not dispatched";
let made: Event | undefined;
impls[EVENTS_MADE] = () => {
  let types = 0;
  for (let i = 0; i < N; i++) {
    made = new Event("start");
    types += made.type.length;
    made = new Event("settle");
    types += made.type.length;
  }
  if (types !== 11 * N) throw new Error(`made ${types / 11} pairs`);
  return Promise.resolve();
};

async function time(impl: Impl, fn: Fn, concurrency: number): Promise<number> {
  const start = performance.now();
  await impl(fn, concurrency);
  return ((performance.now() - start) * 1e6) / N; // ns per task
}

const lines: string[] = [];
const out = (line = "") => {
  console.log(line);
  lines.push(line);
};

out(`## Cost per task — ${runtime.name}, ${runtime.cores} cores`);
out();
out(
  `${
    N.toLocaleString("en")
  } tasks per run; median of ${ROUNDS} rounds (min–max), after one warm-up round; ` +
    "implementations interleaved within each round; ratios are medians of per-round ratios.",
);

for (const c of CASES) {
  const names = Object.keys(impls);
  const samples = await interleaved(
    names,
    ROUNDS,
    (name) => time(impls[name], c.fn, c.concurrency),
  );
  const ratio = (a: string, b: string) =>
    median(samples[a].map((x, i) => x / samples[b][i])).toFixed(2);
  out();
  out(`### ${c.name}`);
  out();
  out(
    "| implementation | ns/task (median) | min–max | tasks/s | × floor | × p-limit |",
  );
  out("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const name of names) {
    const s = samples[name];
    const med = median(s);
    out(
      `| ${name} | ${med.toFixed(0)} | ${Math.min(...s).toFixed(0)}–${
        Math.max(...s).toFixed(0)
      } | ${Math.round(1e9 / med).toLocaleString("en")} | ${
        ratio(name, "floor (hand-written)")
      } | ${ratio(name, "p-limit")} |`,
    );
  }
  out();
  out(
    `With one \`start\` and one \`settle\` listener, TaskManager costs ${
      ratio(LISTENED, "TaskManager")
    }× its cost without (${
      ratio("TaskManager + listeners reading event.task", "TaskManager")
    }× when the listeners read \`event.task\`); the ratio to the runtime's own \`Event\`s is in "Events" below.`,
  );
}

// ---------------------------------------------------------------------------
// A fresh heap: a full collection before every timed run, and distinct names.
// ---------------------------------------------------------------------------

const NAMES = Array.from({ length: N }, (_, i) => `task-${i}`);
const fresh: Record<string, Impl> = {
  "TaskManager": async (fn, concurrency) => {
    const tasks = new TaskManager({ concurrency });
    for (let i = 0; i < N; i++) tasks.run(NAMES[i], fn);
    await tasks.idle();
  },
  "floor (hand-written)": impls["floor (hand-written)"],
};

out();
out("### A fresh heap: a full GC before every timed run, 100k distinct names");
out();
if (!runtime.canGc) {
  out(
    "No forced GC on this runtime as started (Deno: --v8-flags=--expose-gc).",
  );
} else {
  out(
    "| case | TaskManager ns/task | floor ns/task | × floor (median, 93 % interval) |",
  );
  out("| --- | ---: | ---: | ---: |");
  for (const c of CASES) {
    const samples = await interleaved(
      Object.keys(fresh),
      ROUNDS,
      (name) => {
        runtime.gc();
        return time(fresh[name], c.fn, c.concurrency);
      },
    );
    const ratios = samples["TaskManager"].map((x, i) =>
      x / samples["floor (hand-written)"][i]
    );
    out(
      `| ${c.name} | ${median(samples["TaskManager"]).toFixed(0)} | ${
        median(samples["floor (hand-written)"]).toFixed(0)
      } | ${median(ratios).toFixed(2)} (${interval(ratios)}) |`,
    );
  }
}

// ---------------------------------------------------------------------------
// Events: what one `start` and one `settle` listener add to a task, over what
// the runtime's own two `Event`s add. A ratio of two differences between
// runs that each vary by tens of percent here: it takes more rounds than the
// cost per task to narrow.
// ---------------------------------------------------------------------------

const EVENT_ROUNDS = Number(
  globalThis.process?.env?.BENCH_EVENT_ROUNDS ?? 4 * ROUNDS,
);
const eventImpls = [
  "TaskManager",
  LISTENED,
  "floor (hand-written)",
  FLOOR_EVENTS,
  EVENTS_ALONE,
];
out();
out("### Events");
out();
out(
  `One \`start\` and one \`settle\` listener; ${EVENT_ROUNDS} rounds, the five runs interleaved in each. Each figure is a median over rounds of a difference within a round: what the listeners add to a TaskManager's task; what the runtime's own two \`Event\`s, made and dispatched to the same listeners, add to the hand-written floor's task (the least any manager whose events are real \`Event\`s adds); and those two \`Event\`s made and dispatched in a loop with no task around them (no live tasks on the heap, nothing else in the caches). Target: the first at most 1.3× the runtime's \`Event\`s.`,
);
out();
out(
  "| case | listeners add (ns/task) | Events add to the floor | Events in a bare loop | listeners ÷ the floor's Events | listeners ÷ the bare loop |",
);
out("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const c of CASES) {
  const samples = await interleaved(
    eventImpls,
    EVENT_ROUNDS,
    (name) => time(impls[name], c.fn, c.concurrency),
  );
  const added = median(
    samples[LISTENED].map((x, i) => x - samples["TaskManager"][i]),
  );
  const floorAdded = median(
    samples[FLOOR_EVENTS].map((x, i) => x - samples["floor (hand-written)"][i]),
  );
  const loop = median(samples[EVENTS_ALONE]);
  out(
    `| ${c.name} | ${added.toFixed(0)} | ${floorAdded.toFixed(0)} | ${
      loop.toFixed(0)
    } | ${(added / floorAdded).toFixed(2)} | ${(added / loop).toFixed(2)} |`,
  );
}

// ---------------------------------------------------------------------------
// Priorities: the same tasks with and without random priorities.
// ---------------------------------------------------------------------------

/** A small seeded generator, so that every run draws the same priorities. */
function priorities(seed: number): number[] {
  let x = seed;
  return Array.from({ length: N }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % 100;
  });
}
const PRIORITIES = priorities(7);
const ranked: Record<string, Impl> = {
  "without priority": async (fn, concurrency) => {
    const tasks = new TaskManager({ concurrency });
    for (let i = 0; i < N; i++) tasks.run("t", fn);
    await tasks.idle();
  },
  "random priorities (0–99)": async (fn, concurrency) => {
    const tasks = new TaskManager({ concurrency });
    for (let i = 0; i < N; i++) {
      tasks.run("t", fn, { priority: PRIORITIES[i] });
    }
    await tasks.idle();
  },
};
{
  const samples = await interleaved(
    Object.keys(ranked),
    ROUNDS,
    (name) => time(ranked[name], async () => {}, 64),
  );
  const ratios = samples["random priorities (0–99)"].map((x, i) =>
    x / samples["without priority"][i]
  );
  out();
  out(
    "### 100k `async () => {}` through concurrency 64, with random priorities",
  );
  out();
  out("| variant | ns/task (median) | min–max |");
  out("| --- | ---: | ---: |");
  for (const name of Object.keys(ranked)) {
    const s = samples[name];
    out(
      `| ${name} | ${median(s).toFixed(0)} | ${Math.min(...s).toFixed(0)}–${
        Math.max(...s).toFixed(0)
      } |`,
    );
  }
  out();
  out(
    `Random priorities cost ${
      median(ratios).toFixed(2)
    }× the same tasks without (interval ${
      interval(ratios)
    }; target at most 2×).`,
  );
}

/** The distribution-free confidence interval of the median, as text. */
function interval(values: number[]): string {
  const found = medianInterval(values);
  return found === null
    ? "too few rounds for an interval"
    : `${found.low.toFixed(2)}–${found.high.toFixed(2)}, ${
      Math.round(found.confidence * 100)
    } %`;
}

const slug = runtime.name.split(" ")[0];
const url = new URL(`./results/cost-${slug}.md`, import.meta.url);
const { writeFileSync } = await import("node:fs");
writeFileSync(url, lines.join("\n") + "\n");
console.log(`\nwrote ${url.pathname.split("/").slice(-3).join("/")}`);
