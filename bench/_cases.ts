// The three workloads the cost benchmarks time, each 100,000 tasks
// (bench/cost.ts, and bench/events.ts through _events_child.ts).

/** One workload: what each task does and the manager's concurrency. */
export interface Case {
  name: string;
  fn: () => unknown;
  concurrency: number;
}

export const CASES: Case[] = [
  { name: "100k sync no-op, unlimited", fn: () => {}, concurrency: Infinity },
  {
    name: "100k `async () => {}`, concurrency 64",
    fn: async () => {},
    concurrency: 64,
  },
  {
    name: "100k tasks awaiting 3 times, concurrency 1,000",
    fn: async () => {
      await null;
      await null;
      await null;
    },
    concurrency: 1000,
  },
];
