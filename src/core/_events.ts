// The events a manager dispatches about its tasks. The scheduler makes one
// only while a listener for its type is attached (see _listeners.ts), and the
// event takes its `task` snapshot only when a listener reads it: most of a
// snapshot's cost is its `Date`, and most listeners never read `startedAt`.

import type { TaskRecord } from "./_task.ts";
import {
  TaskEvent,
  type TaskEventInit,
  type TaskEventType,
} from "./task_event.ts";
import type { TaskInfo, TaskStatus } from "./types.ts";

/** What a {@linkcode RecordEvent} is made from. */
interface RecordEventInit extends TaskEventInit {
  /** The live task: what the snapshot is taken from. */
  task: TaskRecord;
  /** The task's status when the event was dispatched. */
  status: TaskStatus;
}

/**
 * A TaskEvent about one of the manager's own tasks. The base class holds the
 * live task; this one shows, on first read of `task`, a snapshot of it with
 * the status it had at dispatch.
 */
class RecordEvent extends TaskEvent {
  readonly #record: TaskRecord;
  readonly #status: TaskStatus;
  #snapshot: TaskInfo | undefined = undefined;

  constructor(type: TaskEventType, init: RecordEventInit) {
    super(type, init);
    this.#record = init.task;
    this.#status = init.status;
  }

  override get task(): TaskInfo {
    return this.#snapshot ??= this.#record.snapshot(this.#status);
  }
}

/** Dispatches a `type` event about `task` on `target`, as the task is now. */
export function dispatchTaskEvent(
  target: EventTarget,
  type: TaskEventType,
  task: TaskRecord,
): void {
  const { status, result } = task;
  const settled = type === "settle";
  target.dispatchEvent(
    new RecordEvent(type, {
      task,
      status,
      value: settled && status === "fulfilled" ? result : undefined,
      error: settled && status === "rejected" ? result : undefined,
      reason: !settled || status === "cancelled" ? result : undefined,
    }),
  );
}
