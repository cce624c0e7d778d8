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

/** What a `retry` event carries: the attempt's failure and the wait. */
export interface RetryDetail {
  readonly error: unknown;
  readonly delay: number;
}

/**
 * Dispatches a `type` event about `task` on `target`, as the task is now;
 * a `retry` event carries `retry` as well.
 */
export function dispatchTaskEvent(
  target: EventTarget,
  type: TaskEventType,
  task: TaskRecord,
  retry?: RetryDetail,
): void {
  const { status, result } = task;
  // One shape for every init, so that the constructor's reads stay
  // monomorphic: the runtime's own `Event` is most of an event's cost.
  const settle = type === "settle";
  const init: RecordEventInit = {
    task,
    status,
    value: settle
      ? (status === "fulfilled" ? result : undefined)
      : type === "progress"
      ? task.extra?.progress
      : undefined,
    error: settle ? (status === "rejected" ? result : undefined) : retry?.error,
    reason: settle
      ? (status === "cancelled" ? result : undefined)
      : type === "start" || type === "cancel"
      ? result
      : undefined,
    delay: retry?.delay,
  };
  target.dispatchEvent(new RecordEvent(type, init));
}
