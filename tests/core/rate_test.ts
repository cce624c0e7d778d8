// Rate limits: at most `limit` starts in any window of `interval` ms, counted
// at start, behind one timer per queue; a cancelled waiting task leaves at once.

import assert from "node:assert/strict";
import { TaskManager } from "../../mod.ts";
import { FakeClock } from "../_clock.ts";
import { flush, gate, test } from "../_harness.ts";

test("TaskManager({ rate }) starts at most limit tasks per interval, in order", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager({ rate: { limit: 2, interval: 1000 } });
    const t0 = clock.now;
    const starts: [string, number][] = [];
    for (const name of ["a", "b", "c", "d", "e"]) {
      tasks.run(name, () => void starts.push([name, clock.now - t0]));
    }
    await clock.advance(0);
    assert.deepEqual(starts, [["a", 0], ["b", 0]]);
    assert.equal(tasks.pendingCount, 3);
    assert.equal(clock.pending, 1, "one timer for the whole queue");
    await clock.advance(999);
    assert.equal(starts.length, 2);
    await clock.advance(1);
    assert.deepEqual(starts.slice(2), [["c", 1000], ["d", 1000]]);
    await clock.advance(1000);
    assert.deepEqual(starts.slice(4), [["e", 2000]]);
    assert.equal(clock.pending, 0);
  } finally {
    clock.uninstall();
  }
});

test("TaskManager({ rate }) counts starts in a sliding window", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager({ rate: { limit: 2, interval: 1000 } });
    const t0 = clock.now;
    const starts: number[] = [];
    const start = () => tasks.run("t", () => void starts.push(clock.now - t0));
    start();
    await clock.advance(600);
    start();
    start(); // must wait until the first start leaves the window, at 1000
    await clock.advance(399);
    assert.deepEqual(starts, [0, 600]);
    await clock.advance(1);
    assert.deepEqual(starts, [0, 600, 1000]);
    start(); // the window (600, 1600] holds 600 and 1000: wait for 1600
    await clock.advance(599);
    assert.equal(starts.length, 3);
    await clock.advance(1);
    assert.deepEqual(starts, [0, 600, 1000, 1600]);
  } finally {
    clock.uninstall();
  }
});

test("a cancelled task waiting for the rate limit leaves at once; the timer goes with the last", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager({ rate: { limit: 1, interval: 60_000 } });
    tasks.run("first", () => {});
    const waiting = tasks.runWithResult("second", () => "ran");
    const value = waiting.value;
    await clock.advance(0);
    assert.equal(clock.pending, 1);
    assert.equal(waiting.cancel(), true);
    await assert.rejects(value, { name: "AbortError" });
    assert.equal(tasks.pendingCount, 0);
    assert.equal(clock.pending, 0, "no timer left for an empty queue");
  } finally {
    clock.uninstall();
  }
});

test("group({ rate }) limits the group's starts while the manager's other tasks go on", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager({ concurrency: 1 });
    const emails = tasks.group({ rate: { limit: 1, interval: 1000 } });
    const t0 = clock.now;
    const starts: string[] = [];
    for (const name of ["e1", "e2", "e3"]) {
      emails.add(name, () => void starts.push(`${name}@${clock.now - t0}`));
    }
    tasks.run("other", () => void starts.push(`other@${clock.now - t0}`));
    await clock.advance(0);
    assert.deepEqual(starts, ["e1@0", "other@0"]);
    await clock.advance(2000);
    assert.deepEqual(starts, ["e1@0", "other@0", "e2@1000", "e3@2000"]);
    await emails.awaitAll();
  } finally {
    clock.uninstall();
  }
});

test("group({ rate }): tasks that wait in the manager's queue still never crowd one window", async () => {
  const clock = new FakeClock().install();
  try {
    // The manager runs one task at a time; the group may start 2 a second.
    const tasks = new TaskManager({ concurrency: 1 });
    const group = tasks.group({ rate: { limit: 2, interval: 1000 } });
    const t0 = clock.now;
    const starts: number[] = [];
    const hold = gate();
    tasks.run("blocker", () => hold.promise);
    for (let i = 0; i < 6; i++) {
      group.add(`g${i}`, () => void starts.push(clock.now - t0));
    }
    await clock.advance(1500); // the blocker keeps them queued past a window
    hold.resolve();
    await clock.advance(4000);
    assert.equal(starts.length, 6);
    for (let i = 2; i < starts.length; i++) {
      assert.ok(
        starts[i] - starts[i - 2] >= 1000,
        `three starts within one second: ${starts.join(", ")}`,
      );
    }
  } finally {
    clock.uninstall();
  }
});

test("TaskManager() rejects a bad rate with a message that names the field", () => {
  assert.throws(() => new TaskManager({ rate: { limit: 0, interval: 1000 } }), {
    name: "RangeError",
    message:
      "Cannot create TaskManager: 'rate.limit' must be a positive integer, received 0",
  });
  assert.throws(() => new TaskManager({ rate: { limit: 1 } as never }), {
    name: "TypeError",
    message:
      "Cannot create TaskManager: 'rate.interval' must be a number of milliseconds, received undefined",
  });
  assert.throws(() => new TaskManager().group({ rate: 5 as never }), {
    name: "TypeError",
    message:
      "Cannot create TaskGroup: 'rate' must be an object { limit, interval }, received 5",
  });
  void flush;
});
