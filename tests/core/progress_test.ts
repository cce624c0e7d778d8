// Progress: a task reports how far it is; it shows in activeTasks and as
// `progress` events, at most one per task every 100 ms, the latest value last
// (the one still waiting when an attempt ends goes out before its end).

import assert from "node:assert/strict";
import { TaskManager } from "../../mod.ts";
import { FakeClock } from "../_clock.ts";
import { flush, gate, test } from "../_harness.ts";

test("progress() shows in activeTasks and goes out as a progress event", async () => {
  const tasks = new TaskManager();
  const seen: unknown[] = [];
  tasks.addEventListener("progress", (event) => {
    seen.push([event.task.name, event.value, event.task.progress]);
  });
  const release = gate();
  tasks.run("resize", async ({ progress }) => {
    progress(0.25);
    await release.promise;
  });
  await flush();
  assert.deepEqual(tasks.activeTasks.map((t) => t.progress), [0.25]);
  assert.deepEqual(seen, [["resize", 0.25, 0.25]]);
  release.resolve();
  await tasks.idle();
});

test("progress() in a tight loop sends one event now and the latest value after 100 ms", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager();
    const values: unknown[] = [];
    tasks.addEventListener("progress", (event) => values.push(event.value));
    const release = gate();
    tasks.run("import", async ({ progress }) => {
      for (let i = 1; i <= 1000; i++) progress(i / 1000);
      await release.promise;
    });
    await clock.advance(0);
    assert.deepEqual(values, [0.001]);
    assert.equal(clock.pending, 1, "one timer for the events that wait");
    await clock.advance(100);
    assert.deepEqual(values, [0.001, 1]);
    assert.equal(clock.pending, 0);
    release.resolve();
    await clock.advance(0);
    await tasks.idle();
  } finally {
    clock.uninstall();
  }
});

test("progress() takes a small JSON value, kept as a copy", async () => {
  const tasks = new TaskManager();
  const release = gate();
  const step = { done: 3, of: 10 };
  tasks.run("crawl", async ({ progress }) => {
    progress(step);
    step.done = 4;
    await release.promise;
  });
  await flush();
  assert.deepEqual(tasks.activeTasks[0].progress, { done: 3, of: 10 });
  release.resolve();
  await tasks.idle();
});

test("progress() rejects what is not a fraction or small JSON, and is ignored once settled", async () => {
  const tasks = new TaskManager({ onError: () => {} });
  let report: ((value: unknown) => void) | undefined;
  const errors: unknown[] = [];
  tasks.run("t", ({ progress }) => {
    report = progress;
    for (const bad of [1.5, -0.1, NaN, () => {}, 1n, "x".repeat(2000)]) {
      try {
        progress(bad);
      } catch (error) {
        errors.push(error);
      }
    }
  });
  await tasks.idle();
  assert.deepEqual(
    errors.map((e) => [(e as Error).name, (e as Error).message]),
    [
      [
        "RangeError",
        `Cannot report progress of task "t": 'value' must be a number from 0 to 1, or a JSON value, received 1.5`,
      ],
      [
        "RangeError",
        `Cannot report progress of task "t": 'value' must be a number from 0 to 1, or a JSON value, received -0.1`,
      ],
      [
        "RangeError",
        `Cannot report progress of task "t": 'value' must be a number from 0 to 1, or a JSON value, received NaN`,
      ],
      [
        "TypeError",
        `Cannot report progress of task "t": 'value' must be a number from 0 to 1, or a JSON value, received a function`,
      ],
      [
        "TypeError",
        `Cannot report progress of task "t": 'value' must be a number from 0 to 1, or a JSON value, received 1n, which JSON cannot hold (a bigint, or a cycle)`,
      ],
      [
        "RangeError",
        `Cannot report progress of task "t": 'value' must take at most 1024 characters as JSON, received 2002`,
      ],
    ],
  );
  report!(0.5); // after the task settled: ignored, no error
});

test("progress: the event still waiting goes out before the task settles, and no timer is left", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager();
    const seen: unknown[] = [];
    tasks.addEventListener("progress", (event) => {
      seen.push(["progress", event.value, event.task.status]);
    });
    tasks.addEventListener("settle", (event) => {
      seen.push(["settle", event.task.progress]);
    });
    tasks.run("quick", ({ progress }) => {
      progress(0.1);
      progress(0.9);
    });
    await clock.advance(0);
    assert.deepEqual(seen, [
      ["progress", 0.1, "running"],
      ["progress", 0.9, "running"],
      ["settle", 0.9],
    ]);
    assert.equal(clock.pending, 0, "no timer left");
  } finally {
    clock.uninstall();
  }
});
