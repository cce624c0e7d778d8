/**
 * The types shared by `TaskManager` and `TaskGroup`.
 *
 * @module
 */

/**
 * Where a task is in its life.
 *
 * - `"pending"`: accepted, waiting for a concurrency slot (or for the
 *   microtask that starts it).
 * - `"running"`: its function has been called and has not returned yet. A
 *   task whose cancellation was requested stays `"running"` until its
 *   function actually returns.
 * - `"fulfilled"`, `"rejected"`, `"cancelled"`: settled, for good.
 */
export type TaskStatus =
  | "pending"
  | "running"
  | "fulfilled"
  | "rejected"
  | "cancelled";

/**
 * A plain snapshot of a task, as carried by events and
 * `TaskManager.activeTasks`. It serialises cleanly with
 * `JSON.stringify` (`startedAt` becomes an ISO string, or is left out when
 * the task never started).
 */
export interface TaskInfo {
  /** Unique within the process. */
  readonly id: string;
  /** The name given to `run`, `runWithResult` or `add`. */
  readonly name: string;
  /** The status when the snapshot was taken. */
  readonly status: TaskStatus;
  /** When the function was called; `undefined` while pending, or if the task never started. */
  readonly startedAt: Date | undefined;
}

/** What a task's function receives. */
export interface TaskContext {
  /**
   * Aborted when the task is cancelled (by id, by `cancelAll`, by its group,
   * by an external signal, by shutdown) or when its timeout elapses. Pass it
   * on to `fetch`, streams and anything else that takes a signal.
   */
  readonly signal: AbortSignal;
  /** The task's id. */
  readonly id: string;
  /** The task's name. */
  readonly name: string;
}

/** The work a task runs. It may return a value or a promise of one. */
export type TaskFunction<T> = (context: TaskContext) => T | PromiseLike<T>;

/**
 * What `TaskManager.run` returns: enough to follow a
 * fire-and-forget task and to cancel it.
 */
export interface TaskHandle {
  /** Unique within the process; pass it to `TaskManager.cancel`. */
  readonly id: string;
  /** The task's name. */
  readonly name: string;
  /** The current status; it changes as the task runs. */
  readonly status: TaskStatus;
  /** When the function was called; `undefined` while pending or if it never started. */
  readonly startedAt: Date | undefined;
  /**
   * Requests cancellation: a pending task is removed and never starts; a
   * running task's signal is aborted, and the task settles as `"cancelled"`
   * once its function returns.
   *
   * @param reason The abort reason; by default a `DOMException` named `AbortError`.
   * @returns `true` if this call requested the cancellation, `false` if the
   * task had already settled or was already being cancelled.
   */
  cancel(reason?: unknown): boolean;
  /** A {@linkcode TaskInfo} snapshot; used by `JSON.stringify`. */
  toJSON(): TaskInfo;
}

/**
 * A task whose result you want: what
 * `TaskManager.runWithResult` and `TaskGroup.add` return.
 */
export interface Task<T> extends TaskHandle {
  /**
   * Resolves with what the function returned; rejects with what it threw,
   * with the `TimeoutError` if it timed out, or with the cancellation reason.
   *
   * The promise is made on first read. A failure is delivered here instead of
   * to `onError` only when `value` was read before the task settled.
   */
  readonly value: Promise<T>;
}

/** Options for one task: `run`, `runWithResult` and `TaskGroup.add`. */
export interface RunOptions {
  /**
   * Cancels the task when aborted, with the signal's reason (a request's
   * signal, for example). An already aborted signal means the task never
   * starts: it settles as `"cancelled"` in a microtask.
   */
  signal?: AbortSignal;
  /**
   * Milliseconds from the moment the task starts; then its signal is aborted
   * with a `DOMException` named `TimeoutError` and the task settles as
   * `"rejected"` with that error once its function returns. A positive finite
   * number up to 2^31-1.
   *
   * @default {the manager's `timeout`, or none}
   */
  timeout?: number;
  /**
   * Called once, as a plain function, with a promise that resolves (never
   * rejects) when the task settles: how edge hosts keep the isolate alive
   * after the response. On Cloudflare Workers pass `(p) => ctx.waitUntil(p)`.
   * Replaces the manager's `waitUntil` for this task.
   *
   * @default {the manager's `waitUntil`, or none}
   */
  waitUntil?: (promise: Promise<void>) => void;
}
