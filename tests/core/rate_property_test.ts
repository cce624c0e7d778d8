// Rate limits under random programs, on a fake clock: tasks of random lengths
// arrive, are cancelled and run while time moves in random steps. After every
// step: no window of `interval` ms holds more than `limit` starts (of the
// manager, or of a rate-limited group); tasks start in the order they came;
// and nothing waits that could start (a free slot and room in the window).
//
//   PROPERTY_RUNS=2000 PROPERTY_SEED=7 deno test -A tests/core/rate_property_test.ts

import assert from "node:assert/strict";
import fc from "fast-check";
import { type TaskHandle, TaskManager } from "../../mod.ts";
import { FakeClock } from "../_clock.ts";
import { test } from "../_harness.ts";
import { env } from "./_model.ts";

const runs = Number(env("PROPERTY_RUNS") ?? 200);
const seed = Number(env("PROPERTY_SEED") ?? 42);

type Step =
  | { op: "add"; length: number; group: boolean }
  | { op: "cancel"; task: number }
  | { op: "advance"; ms: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("add" as const),
      length: fc.constantFrom(0, 0, 5, 30, 120),
      group: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("cancel" as const),
      task: fc.nat(30),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("advance" as const),
      ms: fc.constantFrom(0, 1, 7, 25, 60, 200),
    }),
  },
);

const configArb = fc.record({
  limit: fc.integer({ min: 1, max: 3 }),
  interval: fc.constantFrom(10, 50, 100),
  concurrency: fc.constantFrom(1, 2, Infinity),
  groupLimit: fc.integer({ min: 1, max: 2 }),
  groupInterval: fc.constantFrom(20, 80),
});

/** The most starts any window of `interval` ms holds. */
function crowdest(starts: number[], interval: number): number {
  let most = 0;
  for (let i = 0; i < starts.length; i++) {
    let n = 0;
    for (
      let j = i;
      j < starts.length && starts[j] - starts[i] < interval;
      j++
    ) {
      n++;
    }
    most = Math.max(most, n);
  }
  return most;
}

test("rate limits keep every window within limit, in order, and never idle needlessly", async () => {
  await fc.assert(
    fc.asyncProperty(
      configArb,
      fc.array(stepArb, { maxLength: 40 }),
      async (config, steps) => {
        const clock = new FakeClock().install();
        try {
          const tasks = new TaskManager({
            concurrency: config.concurrency,
            rate: { limit: config.limit, interval: config.interval },
          });
          const group = tasks.group({
            rate: { limit: config.groupLimit, interval: config.groupInterval },
          });
          const starts: number[] = [];
          const groupStarts: number[] = [];
          const order: number[] = [];
          const handles: TaskHandle[] = [];
          let running = 0;
          const add = (length: number, inGroup: boolean) => {
            const n = handles.length;
            const fn = () => {
              starts.push(clock.now);
              if (inGroup) groupStarts.push(clock.now);
              order.push(n);
              if (length === 0) return;
              running++;
              return new Promise<void>((resolve) =>
                setTimeout(() => {
                  running--;
                  resolve();
                }, length)
              );
            };
            handles.push(
              inGroup ? group.add(`g${n}`, fn) : tasks.run(`t${n}`, fn),
            );
          };
          for (const step of steps) {
            if (step.op === "add") add(step.length, step.group);
            else if (step.op === "cancel" && handles.length > 0) {
              handles[step.task % handles.length].cancel();
            } else if (step.op === "advance") await clock.advance(step.ms);
            assert.ok(
              crowdest(starts, config.interval) <= config.limit,
              `a window of ${config.interval} ms holds more than ${config.limit} starts: ${starts}`,
            );
            assert.ok(
              crowdest(groupStarts, config.groupInterval) <= config.groupLimit,
              `a group window holds too many starts: ${groupStarts}`,
            );
            // Liveness: once time moved, a task of the manager's own that
            // waits, with a slot free, waits for the window and nothing else.
            const waitingOwn = handles.some((h) =>
              h.status === "pending" && !h.name.startsWith("g")
            );
            const waitingGroup = handles.some((h) =>
              h.status === "pending" && h.name.startsWith("g")
            );
            if (
              step.op === "advance" && waitingOwn && !waitingGroup &&
              tasks.activeCount < config.concurrency
            ) {
              const inWindow = starts.filter((t) =>
                t > clock.now - config.interval
              ).length;
              assert.ok(
                inWindow >= config.limit,
                `a task waits with a slot free and ${inWindow} of ${config.limit} starts in the window`,
              );
            }
          }
          // Let everything run out.
          await clock.advance(100_000);
          assert.equal(tasks.pendingCount + tasks.activeCount, 0);
          assert.equal(running, 0);
          // The manager's own tasks (not the group's) start in the order they came.
          const own = order.filter((n) => !handles[n].name.startsWith("g"));
          assert.deepEqual(own, [...own].sort((a, b) => a - b));
          // Liveness, at the end of every quiet stretch: a task that waits
          // waited for the window, not for nothing. Checked once more at the end.
          const windowFull = starts.filter((t) =>
            t > clock.now - config.interval
          )
            .length >= config.limit;
          assert.ok(tasks.pendingCount === 0 || windowFull);
          assert.equal(clock.pending, 0, "no timer left");
          await group.awaitAll();
        } finally {
          clock.uninstall();
        }
      },
    ),
    { seed, numRuns: runs },
  );
});
