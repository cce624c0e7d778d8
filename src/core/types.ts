/**
 * The types shared by `TaskManager` and `TaskGroup`.
 *
 * @module
 */

/**
 * Where a task is in its life.
 *
 * - `"pending"`: accepted, waiting for a concurrency slot (or for the
 *   microtask that starts it, or for its next attempt after a failure).
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
  /**
   * Which attempt this is, or was: 1, then 2 after a first failure that is
   * retried (see {@linkcode RetryOptions}), and so on.
   */
  readonly attempt: number;
  /** What the task last reported with `progress()`; `undefined` until it does. */
  readonly progress: unknown;
}

/**
 * What a task's function receives.
 *
 * @example Report progress, and read it from activeTasks
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const gate = Promise.withResolvers<void>();
 * tasks.run("import-orders", async ({ progress, attempt }) => {
 *   assert.equal(attempt, 1);
 *   progress({ done: 500, of: 2000 });
 *   await gate.promise;
 * });
 * await Promise.resolve();
 * assert.deepEqual(tasks.activeTasks[0].progress, { done: 500, of: 2000 });
 * gate.resolve();
 * await tasks.idle();
 * ```
 */
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
  /** This attempt's number: 1, then 2 on the first retry, and so on. */
  readonly attempt: number;
  /**
   * Reports how far the task is: a number from 0 to 1, or a small JSON value
   * (at most 1 KiB as JSON, such as `{ done: 3, of: 10 }`). It shows in
   * `activeTasks` and goes to `progress` listeners, at most one event per
   * task every 100 ms (the latest value wins; one still waiting when the
   * attempt ends goes out before its `settle` or `retry`), so a tight loop
   * may call it as often as it likes. Calls after the task settled are
   * ignored.
   *
   * @param value A number from 0 to 1, or a JSON value.
   * @throws {TypeError} A value that is not JSON.
   * @throws {RangeError} A number outside 0 to 1, or a value over 1 KiB as JSON.
   */
  progress(value: unknown): void;
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
  /** Which attempt runs, or ran last: 1, then 2 after a retried failure, and so on. */
  readonly attempt: number;
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

/**
 * How to retry a task that fails: another attempt after a wait that doubles
 * each time, `backoff * 2 ** (attempt - 1)` ms, up to `maxDelay` (the rule
 * the durable queues use too). The task keeps its id and handle; each
 * attempt gets a fresh `signal` and its own `timeout`; only the final
 * failure reaches `value`, a group's `awaitAll` or `onError`. A cancellation
 * is never retried: cancelling a task that waits for its next attempt ends
 * it at once, and `shutdown()` cancels the waits. Once the manager is closed,
 * a failure is final.
 *
 * @example Send an email up to three times, 1 s then 2 s apart
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const delays: number[] = [];
 * tasks.addEventListener("retry", (event) => delays.push(event.delay!));
 * const email = tasks.runWithResult("send-confirmation", ({ attempt }) => {
 *   if (attempt < 3) throw new Error("SMTP unavailable");
 *   return `sent on attempt ${attempt}`;
 * }, { retry: { attempts: 3, backoff: 1, maxDelay: 2 } });
 * assert.equal(await email.value, "sent on attempt 3");
 * assert.deepEqual(delays, [1, 2]);
 * ```
 */
export interface RetryOptions {
  /**
   * How many attempts in all, the first included: a positive integer.
   *
   * @default {3}
   */
  readonly attempts?: number;
  /**
   * Milliseconds before the second attempt; each later wait doubles. 0
   * retries at once.
   *
   * @default {1000}
   */
  readonly backoff?: number;
  /**
   * The longest wait between attempts, in milliseconds.
   *
   * @default {2147483647 (about 24.8 days)}
   */
  readonly maxDelay?: number;
  /**
   * How much of each wait is random, from 0 to 1: the wait is drawn evenly
   * from `delay × (1 − jitter)` to `delay`, so that many failing tasks do
   * not retry in step.
   *
   * @default {0}
   */
  readonly jitter?: number;
  /**
   * Whether to retry after `error`, the failure of attempt `attempt`. A
   * function that throws ends the retries (the task fails with `error`, and
   * what it threw goes to the default reporter, `console.error`).
   *
   * @default {every failure, timeouts included}
   */
  readonly retryIf?: (error: unknown, attempt: number) => boolean;
}

/**
 * A rate limit: at most `limit` task starts in any window of `interval`
 * milliseconds, counted when tasks start. Tasks beyond it wait, in order,
 * behind one timer for the whole queue; a cancelled waiting task leaves at
 * once.
 *
 * @example At most 14 emails a second for the mail provider
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const emails = tasks.group({ rate: { limit: 14, interval: 1000 } });
 * let sent = 0;
 * for (let i = 0; i < 20; i++) emails.add(`email-${i}`, () => void sent++);
 * await Promise.resolve();
 * await Promise.resolve();
 * assert.equal(sent, 14); // the other 6 wait for the next second
 * emails.cancel();
 * await emails.awaitAll();
 * ```
 */
export interface RateLimit {
  /** How many starts per window: a positive integer. */
  readonly limit: number;
  /** The window, in milliseconds: a positive number up to 2^31-1. */
  readonly interval: number;
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
  /**
   * Retries after a failure; see {@linkcode RetryOptions}. `false` turns
   * off the manager's default for this task.
   *
   * @default {the manager's `retry`, or none}
   */
  retry?: RetryOptions | false;
  /**
   * Which waiting task starts first when a slot frees: higher first, in the
   * order they were queued among equals. Any finite number.
   *
   * @default {0}
   */
  priority?: number;
}
