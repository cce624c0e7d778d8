import type { TaskInfo } from "./types.ts";

/** The names of the events a {@linkcode TaskManager} dispatches. */
export type TaskEventType =
  | "start"
  | "settle"
  | "cancel"
  | "retry"
  | "progress";

/** What a {@linkcode TaskEvent} carries besides its type. */
export interface TaskEventInit extends EventInit {
  /** The task, as it was when the event was dispatched. */
  task: TaskInfo;
  /** `settle` of a fulfilled task: what its function returned; `progress`: the value reported. */
  value?: unknown;
  /** `settle` of a rejected task, and `retry`: what its function threw, or the `TimeoutError`. */
  error?: unknown;
  /** `cancel`, and `settle` of a cancelled task: the abort reason. */
  reason?: unknown;
  /** `retry`: milliseconds until the next attempt. */
  delay?: number;
}

/**
 * An event about one task, dispatched by a {@linkcode TaskManager}.
 *
 * - `start`: the task's function is about to be called (for each attempt).
 * - `cancel`: the task's cancellation was requested (or its timeout elapsed);
 *   carries `reason`. A running task settles later, when its function returns.
 * - `retry`: an attempt failed and another follows (see `RetryOptions`);
 *   carries the attempt's `error` and the `delay` before the next one.
 * - `progress`: the task reported progress; carries `value`.
 * - `settle`: the task is done; carries `value`, `error` or `reason`
 *   according to `task.status`.
 *
 * Each attempt of a task dispatches at most one `start` and at most one
 * `cancel`, a `retry` between two attempts, and the task exactly one
 * `settle`, last. Without retries that is at most one `start`, at most one
 * `cancel` and exactly one `settle`, in that order.
 * It is a plain `Event` subclass (not `CustomEvent`, which some edge sandboxes
 * lack).
 *
 * @example Log every failure
 * ```ts
 * import { TaskEvent, TaskManager } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager({ onError: () => {} });
 * const failed: string[] = [];
 * tasks.addEventListener("settle", (event) => {
 *   if (event.task.status === "rejected") failed.push(event.task.name);
 * });
 * tasks.run("send-email", () => {
 *   throw new Error("SMTP down");
 * });
 * await tasks.idle();
 * assert.deepEqual(failed, ["send-email"]);
 * ```
 */
export class TaskEvent extends Event {
  readonly #task: TaskInfo;
  /** `settle` of a fulfilled task: what its function returned; `progress`: the value reported. */
  readonly value: unknown;
  /** `settle` of a rejected task, and `retry`: what its function threw, or the `TimeoutError`. */
  readonly error: unknown;
  /** `cancel`, and `settle` of a cancelled task: the abort reason. */
  readonly reason: unknown;
  /** `retry`: milliseconds until the next attempt. */
  readonly delay: number | undefined;

  /**
   * Makes an event; the manager makes these, and only when a listener for
   * `type` is attached.
   *
   * @param type `"start"`, `"settle"` or `"cancel"`.
   * @param init The task and its outcome.
   */
  constructor(type: TaskEventType, init: TaskEventInit) {
    // Event's own options matter only when given; skipping their conversion
    // keeps the per-task cost of an event low.
    super(
      type,
      init?.bubbles || init?.cancelable || init?.composed ? init : undefined,
    );
    if (typeof init?.task !== "object" || init.task === null) {
      throw new TypeError(
        `TaskEvent needs init.task, a TaskInfo: got ${
          init === undefined || init === null
            ? `no init (${init})`
            : `init.task ${init.task === null ? "null" : typeof init.task}`
        }`,
      );
    }
    this.#task = init.task;
    this.value = init.value;
    this.error = init.error;
    this.reason = init.reason;
    this.delay = init.delay;
  }

  /** The task, as it was when the event was dispatched. */
  get task(): TaskInfo {
    return this.#task;
  }
}

/** Maps each event name to its event type, for typed listeners. */
export interface TaskEventMap {
  /** The task's function is about to be called (once per attempt). */
  start: TaskEvent;
  /** The task is done. */
  settle: TaskEvent;
  /** The task's cancellation was requested, or its timeout elapsed. */
  cancel: TaskEvent;
  /** An attempt failed and another follows after `delay` ms; carries `error`. */
  retry: TaskEvent;
  /** The task reported progress; carries `value` (at most one per task every 100 ms). */
  progress: TaskEvent;
}
