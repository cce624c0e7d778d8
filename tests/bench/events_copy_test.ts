// bench/events.ts compares the manager with a copy of it that dispatches the
// runtime's plain `Event`s: the copy must still be made, and differ only there.

import assert from "node:assert/strict";
import { copyWithPlainEvents } from "../../bench/_events_copy.ts";
import { TaskEvent, TaskManager } from "../../mod.ts";
import { test } from "../_harness.ts";

/** The events one task's `start` and `settle` listeners get from `Manager`. */
async function eventsOf(
  Manager: typeof TaskManager,
): Promise<{ type: string; event: Event }[]> {
  const tasks = new Manager();
  const got: { type: string; event: Event }[] = [];
  const listener = (event: Event) => got.push({ type: event.type, event });
  tasks.addEventListener("start", listener);
  tasks.addEventListener("settle", listener);
  tasks.run("t", () => 1);
  await tasks.idle();
  return got;
}

test("bench/events.ts's copy of the manager dispatches plain Events at the same points", async () => {
  const copy = copyWithPlainEvents(new URL("../../", import.meta.url));
  try {
    const { TaskManager: Plain } = await import(
      copy.module
    ) as typeof import("../../mod.ts");
    const ours = await eventsOf(TaskManager);
    const plain = await eventsOf(Plain);
    assert.deepEqual(ours.map((e) => e.type), ["start", "settle"]);
    assert.deepEqual(plain.map((e) => e.type), ["start", "settle"]);
    assert.ok(ours.every(({ event }) => event instanceof TaskEvent));
    for (const { event } of plain) {
      assert.equal(Object.getPrototypeOf(event), Event.prototype);
    }
  } finally {
    copy.remove();
  }
});
