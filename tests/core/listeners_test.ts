// The manager makes an event only while a listener for its type is attached,
// and knows exactly when that is: listeners that leave on their own (`once`
// after it fired, `signal` when it aborts) stop the events being made.

import assert from "node:assert/strict";
import { TaskManager } from "../../mod.ts";
import { test } from "../_harness.ts";

/** Counts the events `tasks` dispatches, by type, from now on. */
function countDispatches(tasks: TaskManager): Map<string, number> {
  const counts = new Map<string, number>();
  const dispatch = EventTarget.prototype.dispatchEvent;
  tasks.dispatchEvent = function (event: Event): boolean {
    counts.set(event.type, (counts.get(event.type) ?? 0) + 1);
    return dispatch.call(this, event);
  };
  return counts;
}

async function runOne(tasks: TaskManager): Promise<void> {
  tasks.run("one", () => {});
  await tasks.idle();
}

test("addEventListener() once: after it fired, no event object is made", async () => {
  const tasks = new TaskManager();
  const counts = countDispatches(tasks);
  let calls = 0;
  tasks.addEventListener("start", () => calls++, { once: true });
  await runOne(tasks);
  await runOne(tasks);
  assert.equal(calls, 1);
  assert.equal(counts.get("start"), 1);
});

test("addEventListener() signal: after it aborted, no event object is made", async () => {
  const tasks = new TaskManager();
  const counts = countDispatches(tasks);
  const controller = new AbortController();
  let calls = 0;
  tasks.addEventListener("settle", () => calls++, {
    signal: controller.signal,
  });
  await runOne(tasks);
  controller.abort();
  await runOne(tasks);
  assert.equal(calls, 1);
  assert.equal(counts.get("settle"), 1);
});

test("addEventListener() with an aborted signal adds nothing", async () => {
  const tasks = new TaskManager();
  const counts = countDispatches(tasks);
  let calls = 0;
  tasks.addEventListener("start", () => calls++, {
    signal: AbortSignal.abort(),
  });
  await runOne(tasks);
  assert.equal(calls, 0);
  assert.equal(counts.get("start"), undefined);
});

test("removeEventListener() of a once listener before it fired stops the events", async () => {
  const tasks = new TaskManager();
  const counts = countDispatches(tasks);
  let calls = 0;
  const listener = () => calls++;
  tasks.addEventListener("cancel", listener, { once: true });
  tasks.removeEventListener("cancel", listener);
  tasks.run("cancelled", () => {}).cancel();
  await tasks.idle();
  assert.equal(calls, 0);
  assert.equal(counts.get("cancel"), undefined);
});

test("addEventListener() of the same listener twice calls it once, as EventTarget does", async () => {
  const tasks = new TaskManager();
  let calls = 0;
  const listener = () => calls++;
  tasks.addEventListener("start", listener, { once: true });
  tasks.addEventListener("start", listener); // a duplicate: ignored
  await runOne(tasks);
  await runOne(tasks);
  assert.equal(calls, 1, "the once registration stood, and left");
  // Capture is part of the identity: this one is a second listener.
  tasks.addEventListener("start", listener);
  tasks.addEventListener("start", listener, { capture: true });
  await runOne(tasks);
  assert.equal(calls, 3);
  tasks.removeEventListener("start", listener);
  tasks.removeEventListener("start", listener, true);
  const counts = countDispatches(tasks);
  await runOne(tasks);
  assert.equal(counts.get("start"), undefined);
});

test("addEventListener() once calls a function with the manager as this, and an object's handleEvent", async () => {
  const tasks = new TaskManager();
  const seen: unknown[] = [];
  tasks.addEventListener("start", function (this: unknown) {
    seen.push(this);
  }, { once: true });
  const handler = {
    handleEvent(event: Event) {
      seen.push(this, event.type);
    },
  };
  tasks.addEventListener("settle", handler, { once: true });
  await runOne(tasks);
  await runOne(tasks);
  assert.deepEqual(seen, [tasks, handler, "settle"]);
});

/** Counts the listeners added to and removed from `signal` by anyone. */
function watchSignal(signal: AbortSignal): { added: number; removed: number } {
  const counts = { added: 0, removed: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<typeof add>) => {
    counts.added++;
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<typeof remove>) => {
    counts.removed++;
    remove(...args);
  };
  return counts;
}

test("addEventListener() once and signal: the manager's listener on the signal leaves with it", async () => {
  // What the runtime's own EventTarget does with such a listener, if
  // anything, is measured on a plain EventTarget first.
  const plainSignal = new AbortController().signal;
  const plainCounts = watchSignal(plainSignal);
  const plain = new EventTarget();
  plain.addEventListener("start", () => {}, {
    once: true,
    signal: plainSignal,
  });
  plain.dispatchEvent(new Event("start"));

  const tasks = new TaskManager();
  const signal = new AbortController().signal;
  const counts = watchSignal(signal);
  tasks.addEventListener("start", () => {}, { once: true, signal });
  await runOne(tasks);
  assert.deepEqual(counts, {
    added: plainCounts.added + 1,
    removed: plainCounts.removed + 1,
  });
  const dispatched = countDispatches(tasks);
  await runOne(tasks);
  assert.equal(dispatched.get("start"), undefined);
});
