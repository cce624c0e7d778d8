// Priorities: a waiting task of higher priority starts first; among equals,
// the first queued starts first; the concurrency limit holds.

import assert from "node:assert/strict";
import { TaskManager } from "../../mod.ts";
import { FakeClock } from "../_clock.ts";
import { flush, gate, test } from "../_harness.ts";

test("run() with priority: higher starts first, first in first out among equals", async () => {
  const tasks = new TaskManager({ concurrency: 1 });
  const release = gate();
  const order: string[] = [];
  tasks.run("blocker", () => release.promise);
  for (
    const [name, priority] of [
      ["zero-a", 0],
      ["five-a", 5],
      ["minus-one", -1],
      ["five-b", 5],
      ["two", 2],
      ["zero-b", undefined],
      ["half", 0.5],
    ] as const
  ) {
    tasks.run(name, () => void order.push(name), { priority });
  }
  await flush();
  assert.equal(tasks.activeCount, 1);
  release.resolve();
  await tasks.idle();
  assert.deepEqual(order, [
    "five-a",
    "five-b",
    "two",
    "half",
    "zero-a",
    "zero-b",
    "minus-one",
  ]);
});

test("run() with priority keeps the concurrency limit", async () => {
  const tasks = new TaskManager({ concurrency: 2 });
  let running = 0;
  let most = 0;
  for (let i = 0; i < 50; i++) {
    tasks.run(`t${i}`, async () => {
      most = Math.max(most, ++running);
      await flush(2);
      running--;
    }, { priority: (i * 7) % 5 - 2 });
  }
  await tasks.idle();
  assert.equal(most, 2);
});

test("group().add with priority: the group's waiting tasks go by priority too", async () => {
  const tasks = new TaskManager();
  const group = tasks.group({ concurrency: 1 });
  const release = gate();
  const order: string[] = [];
  group.add("blocker", () => release.promise);
  group.add("low", () => void order.push("low"), { priority: -1 });
  group.add("normal", () => void order.push("normal"));
  group.add("high", () => void order.push("high"), { priority: 1 });
  await flush();
  release.resolve();
  await group.awaitAll();
  assert.deepEqual(order, ["high", "normal", "low"]);
});

test("a cancelled waiting task of any priority leaves the queue and never starts", async () => {
  const tasks = new TaskManager({ concurrency: 1 });
  const release = gate();
  const ran: string[] = [];
  tasks.run("blocker", () => release.promise);
  const high = tasks.run("high", () => void ran.push("high"), { priority: 9 });
  tasks.run("low", () => void ran.push("low"), { priority: -9 });
  assert.equal(high.cancel(), true);
  release.resolve();
  await tasks.idle();
  assert.deepEqual(ran, ["low"]);
  assert.equal(high.status, "cancelled");
});

test("activeTasks lists each running task once, in start order, when priorities and a retry reorder starts", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager({ concurrency: 2 });
    const gates = Object.fromEntries(
      ["a", "b", "high", "low", "flaky"].map((name) => [name, gate()]),
    );
    const names = () => tasks.activeTasks.map((t) => t.name);
    tasks.run("a", () => gates.a.promise);
    tasks.run("b", () => gates.b.promise);
    await flush();
    tasks.run("flaky", async ({ attempt }) => {
      if (attempt === 1) throw new Error("once");
      await gates.flaky.promise;
    }, { priority: 1, retry: { backoff: 5 } });
    tasks.run("low", () => gates.low.promise);
    tasks.run("high", () => gates.high.promise, { priority: 5 });
    gates.a.resolve();
    await flush();
    assert.deepEqual(names(), ["b", "high"]);
    // Not read again until flaky started twice, so both its starts are
    // listed (a read drops the tasks that are not running).
    const started: string[] = [];
    tasks.addEventListener("start", (event) => started.push(event.task.name));
    gates.b.resolve();
    await flush();
    await clock.advance(5);
    gates.high.resolve();
    await flush();
    // flaky's first attempt failed at once; low took its slot; flaky started
    // again when high returned: listed once, after low.
    assert.deepEqual(started, ["flaky", "low", "flaky"]);
    assert.deepEqual(names(), ["low", "flaky"]);
    gates.low.resolve();
    gates.flaky.resolve();
    await tasks.idle();
    assert.deepEqual(names(), []);
  } finally {
    clock.uninstall();
  }
});

test("run() rejects a priority that is not a finite number", () => {
  const tasks = new TaskManager();
  assert.throws(() => tasks.run("t", () => {}, { priority: Infinity }), {
    name: "RangeError",
    message:
      `Cannot run task "t": 'priority' must be a finite number, received Infinity`,
  });
  assert.throws(() => tasks.run("t", () => {}, { priority: "high" as never }), {
    name: "TypeError",
    message:
      `Cannot run task "t": 'priority' must be a number, received "high"`,
  });
});
