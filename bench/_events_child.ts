// One process of bench/events.ts: loads the task manager from the module
// given (the library's own, or a copy whose manager dispatches the runtime's
// plain `Event`s), and prints, as JSON, what one `start` and one `settle`
// listener add to a task in each round (ns per task), interleaved with runs
// without listeners, and whether the listeners got `TaskEvent`s.
//
//   <runtime> bench/_events_child.ts <module URL> <index in CASES> <rounds>

import process from "node:process";
import { CASES } from "./_cases.ts";
import { interleaved } from "./_runtime.ts";

const [url, index, roundsArg] = process.argv.slice(-3);
const { TaskManager } = await import(url) as typeof import("../mod.ts");

const N = 100_000;
const { fn, concurrency } = CASES[Number(index)];

/** Whether the listeners got the manager's `TaskEvent`s (which carry `task`). */
let taskEvents: boolean | undefined;

async function run(listen: boolean): Promise<number> {
  const tasks = new TaskManager({ concurrency });
  let events = 0;
  if (listen) {
    const listener = (event: Event) => {
      taskEvents ??= "task" in event;
      events++;
    };
    tasks.addEventListener("start", listener);
    tasks.addEventListener("settle", listener);
  }
  const start = performance.now();
  for (let i = 0; i < N; i++) tasks.run("t", fn);
  await tasks.idle();
  const ns = ((performance.now() - start) * 1e6) / N;
  if (listen && events !== 2 * N) throw new Error(`saw ${events} events`);
  return ns;
}

const samples = await interleaved(
  ["without", "with"],
  Number(roundsArg),
  (variant) => run(variant === "with"),
);
console.log(JSON.stringify({
  taskEvents,
  added: samples.with.map((x, i) => x - samples.without[i]),
}));
