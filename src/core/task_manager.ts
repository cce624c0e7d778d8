import { keepClassOf } from "./_classes.ts";
import { Listeners } from "./_listeners.ts";
import { register } from "./_registry.ts";
import {
  type ErrorReporter,
  reportToConsole,
  Scheduler,
} from "./_scheduler.ts";
import {
  BOUND,
  checkOptions,
  checkRate,
  checkRetry,
  CONCURRENCY,
  FUNCTION,
  ID,
  SIGNAL,
  TIMEOUT,
} from "./_validate.ts";
import { SETUP } from "./_group.ts";
import type { TaskEventMap } from "./task_event.ts";
import { TaskGroup, type TaskGroupOptions } from "./task_group.ts";
import type {
  RateLimit,
  RetryOptions,
  RunOptions,
  Task,
  TaskFunction,
  TaskHandle,
  TaskInfo,
} from "./types.ts";

/** Options for {@linkcode TaskManager}. */
export interface TaskManagerOptions {
  /**
   * How many tasks may run at once; the rest wait in a FIFO queue. A positive
   * integer or `Infinity`.
   *
   * On Cloudflare Workers, do not set it on a manager shared by requests: a
   * queued task started when another request's task settles runs in that
   * request's I/O context and is lost when it ends. Limit per request with
   * `group({ concurrency })` instead.
   *
   * @default {Infinity}
   */
  concurrency?: number;
  /**
   * A timeout, in milliseconds, for every task that does not set its own.
   *
   * @default {undefined (none)}
   */
  timeout?: number;
  /**
   * Aborting it cancels every task (with the signal's reason) and closes the
   * manager, as a shutdown with no wait would. The manager holds one listener
   * on it for its whole life.
   */
  signal?: AbortSignal;
  /**
   * Called once per task with a promise that resolves when the task settles.
   * See {@linkcode RunOptions.waitUntil}.
   *
   * @default {undefined (none)}
   */
  waitUntil?: (promise: Promise<void>) => void;
  /**
   * Receives every failure that nobody else asked for: a `run` task's error,
   * and a `runWithResult` or group task's error when its `value` was not read
   * before it settled and no `awaitAll()` of its group was waiting then.
   * Cancellations are not failures. If it throws, both errors go to the default reporter.
   *
   * @default {`console.error` of the task's name and id, and the error with its stack}
   */
  onError?: (error: unknown, task: TaskInfo) => void;
  /**
   * Retries for every task that sets none (see {@linkcode RetryOptions}); a
   * task's `retry: false` turns it off for that task.
   *
   * @default {none: a failure is final}
   */
  retry?: RetryOptions;
  /**
   * At most `limit` task starts in any window of `interval` ms; the tasks
   * beyond it wait in the queue, in order, behind one timer.
   *
   * @default {none}
   */
  rate?: RateLimit;
}

/** Options for {@linkcode TaskManager.prototype.idle}. */
export interface IdleOptions {
  /** Stops waiting: the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options for {@linkcode TaskManager.prototype.shutdown}. */
export interface ShutdownOptions {
  /**
   * How long to wait for running and queued tasks before cancelling them:
   * milliseconds, `0` to cancel at once, or `Infinity` to wait for ever.
   *
   * @default {3000}
   */
  timeout?: number;
  /**
   * How long cancelled tasks get to return before they are reported as
   * abandoned: milliseconds, `0`, or `Infinity`.
   *
   * @default {1000}
   */
  grace?: number;
}

/** What {@linkcode TaskManager.prototype.shutdown} resolves with. */
export interface ShutdownReport {
  /** Tasks that fulfilled or rejected (timeouts included) during the shutdown. */
  completed: number;
  /** Tasks that settled as cancelled during the shutdown. */
  cancelled: number;
  /** Tasks still running after `timeout + grace`: they ignored their signal. */
  abandoned: TaskInfo[];
}

/** A `start`, `settle` or `cancel` listener, as a function or an object. */
export type TaskEventListener<K extends keyof TaskEventMap> =
  | ((this: TaskManager, event: TaskEventMap[K]) => void)
  | { handleEvent(event: TaskEventMap[K]): void };

/** The defaults of {@linkcode TaskManager.prototype.shutdown}: 4 s in all, under Deno Deploy's 5 s. */
const SHUTDOWN_TIMEOUT = 3000;
const SHUTDOWN_GRACE = 1000;

/**
 * Runs work in the background of a server, and keeps track of it: what runs,
 * what waits, what failed, and what is left at shutdown.
 *
 * A task is a name and a function that receives `{ signal, id, name }`. It
 * never runs inside the call that starts it: it starts in a microtask, or
 * later, in FIFO order, when a concurrency slot frees.
 *
 * Tracking and cancelling are separate ideas. The manager tracks; the task's
 * `AbortSignal` cancels, and cancellation is cooperative: a cancelled or
 * timed-out task keeps its place in `activeTasks` and its concurrency slot
 * until its function returns, so no work ever runs outside the limit.
 *
 * The invariant: {@linkcode TaskManager.prototype.idle} resolves when nothing
 * is running *and* nothing is queued, and once every task has settled the
 * manager holds nothing: no task, no listener on any per-task signal.
 *
 * Compared with a bare un-awaited promise, a failure here is never silent (it
 * reaches `onError`, a `settle` event, or whoever reads `value`), and every
 * task can be listed, cancelled and drained on shutdown. Compared with
 * p-queue, a timeout aborts the task's signal and keeps its slot until the
 * work really stops, instead of freeing the slot while the work runs on.
 *
 * Constructing one makes no timer, controller or random value, so a manager
 * may live at module top level, even in Cloudflare Workers.
 *
 * @example Send a confirmation email without blocking the response
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager({ concurrency: 10 });
 * const outbox: string[] = [];
 *
 * function placeOrder(id: string): { status: number } {
 *   tasks.run("send-confirmation", async ({ signal }) => {
 *     signal.throwIfAborted();
 *     outbox.push(`order ${id} confirmed`);
 *   });
 *   return { status: 201 }; // answered before the email is sent
 * }
 *
 * assert.equal(placeOrder("A-1").status, 201);
 * assert.deepEqual(outbox, []);
 * await tasks.idle();
 * assert.deepEqual(outbox, ["order A-1 confirmed"]);
 * ```
 *
 * @example Drain on shutdown
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * tasks.run("index-update", () => {});
 * const report = await tasks.shutdown({ timeout: 1000 });
 * assert.deepEqual(report, { completed: 1, cancelled: 0, abandoned: [] });
 * ```
 */
export class TaskManager extends EventTarget implements AsyncDisposable {
  readonly #scheduler: Scheduler;
  /** The listeners per event type, so that no event is made for nobody. */
  readonly #listeners: Listeners;

  /**
   * Makes a manager. It starts nothing until `run` is called.
   *
   * @param options Concurrency, default timeout, a closing signal, `waitUntil`, `onError`.
   * @throws {TypeError} An option of the wrong type.
   * @throws {RangeError} A `concurrency` or `timeout` out of range.
   */
  constructor(options: TaskManagerOptions = {}) {
    const where = "Cannot create TaskManager";
    checkOptions(where, options);
    CONCURRENCY.check(where, "concurrency", options.concurrency);
    TIMEOUT.check(where, "timeout", options.timeout);
    SIGNAL.check(where, "signal", options.signal);
    FUNCTION.check(where, "waitUntil", options.waitUntil);
    FUNCTION.check(where, "onError", options.onError);
    if ((options.retry as unknown) === false) {
      throw new TypeError(
        `${where}: 'retry' must be an object, received false (leave it out for no retries)`,
      );
    }
    checkRetry(where, "retry", options.retry);
    checkRate(where, "rate", options.rate);
    super();
    const scheduler = new Scheduler(this, {
      concurrency: options.concurrency ?? Infinity,
      timeout: options.timeout,
      waitUntil: options.waitUntil,
      onError: (options.onError ?? reportToConsole) as ErrorReporter,
      retry: options.retry,
      rate: options.rate,
    });
    this.#scheduler = scheduler;
    this.#listeners = new Listeners((type, listened) =>
      scheduler.listen(type, listened)
    );
    register(this, scheduler);
    const signal = options.signal;
    if (signal?.aborted) scheduler.close();
    else {
      signal?.addEventListener("abort", () => {
        scheduler.close();
        scheduler.cancelAll(signal.reason);
      }, { once: true });
    }
  }

  /**
   * Starts a fire-and-forget task. Its failure goes to `onError` and to the
   * `settle` event; nothing rejects.
   *
   * @param name What the task does, for logs, events and `activeTasks`.
   * @param fn The work; it receives `{ signal, id, name }`.
   * @param options A signal that cancels it, a timeout, a `waitUntil`.
   * @returns A handle with the task's `id`, `status` and `cancel()`.
   * @throws {TypeError} An empty name, a non-function, a non-signal `signal`.
   * @throws {RangeError} A `timeout` out of range.
   * @throws {ManagerClosedError} The manager is closed (see `closed`).
   *
   * @example Cancel a task by id
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * let aborted = false;
   * const { id } = tasks.run("long-poll", ({ signal }) =>
   *   new Promise<void>((resolve) => {
   *     signal.addEventListener("abort", () => {
   *       aborted = true;
   *       resolve();
   *     });
   *   }));
   * await Promise.resolve(); // it starts in a microtask
   * assert.equal(tasks.cancel(id), true);
   * await tasks.idle();
   * assert.equal(aborted, true);
   * ```
   */
  run(
    name: string,
    fn: TaskFunction<unknown>,
    options?: RunOptions,
  ): TaskHandle {
    return this.#scheduler.accept("run", name, fn, options, undefined);
  }

  /**
   * Starts a task whose result you want: `task.value` resolves with what the
   * function returns and rejects with what it throws, its timeout error, or
   * its cancellation reason. Read `value` before the task settles to take its
   * failure; otherwise the failure also goes to `onError`.
   *
   * @param name What the task does.
   * @param fn The work; it receives `{ signal, id, name }`.
   * @param options A signal that cancels it, a timeout, a `waitUntil`.
   * @returns A {@linkcode Task} with a `value` promise.
   * @throws {TypeError} An empty name, a non-function, a non-signal `signal`.
   * @throws {RangeError} A `timeout` out of range.
   * @throws {ManagerClosedError} The manager is closed (see `closed`).
   *
   * @example Generate a report and wait for its URL
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * const report = tasks.runWithResult("generate-report", async () => "/reports/7.pdf");
   * assert.equal(report.status, "pending");
   * assert.equal(await report.value, "/reports/7.pdf");
   * assert.equal(report.status, "fulfilled");
   * ```
   */
  runWithResult<T>(
    name: string,
    fn: TaskFunction<T>,
    options?: RunOptions,
  ): Task<T> {
    return this.#scheduler.accept(
      "runWithResult",
      name,
      fn,
      options,
      undefined,
    );
  }

  /**
   * Snapshots of the running tasks, in the order they started. Queued tasks
   * are counted by `pendingCount` instead.
   *
   * @example List what runs
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * const gate = Promise.withResolvers<void>();
   * tasks.run("resize", () => gate.promise);
   * await Promise.resolve();
   * assert.deepEqual(tasks.activeTasks.map((t) => t.name), ["resize"]);
   * gate.resolve();
   * await tasks.idle();
   * assert.deepEqual(tasks.activeTasks, []);
   * ```
   */
  get activeTasks(): TaskInfo[] {
    return this.#scheduler.active();
  }

  /**
   * Snapshots of the tasks accepted but not running: queued behind the
   * concurrency limit or a rate limit, waiting for the microtask that starts
   * them, or waiting for their next attempt. Listed in the order the manager
   * holds them, which is not always the order they will start in (a higher
   * priority starts first). `pendingCount` counts the same tasks.
   *
   * @example What waits behind the limit
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager({ concurrency: 1 });
   * const gate = Promise.withResolvers<void>();
   * tasks.run("resize", () => gate.promise);
   * tasks.run("send-email", () => {});
   * await Promise.resolve();
   * assert.deepEqual(tasks.pendingTasks.map((t) => t.name), ["send-email"]);
   * gate.resolve();
   * await tasks.idle();
   * assert.deepEqual(tasks.pendingTasks, []);
   * ```
   */
  get pendingTasks(): TaskInfo[] {
    return this.#scheduler.waiting();
  }

  /**
   * How many tasks are running (cancelled ones included, until they return).
   *
   * @example Count running tasks
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager({ concurrency: 1 });
   * tasks.run("a", () => new Promise<void>((r) => queueMicrotask(r)));
   * tasks.run("b", () => {});
   * await Promise.resolve();
   * assert.equal(tasks.activeCount, 1);
   * assert.equal(tasks.pendingCount, 1);
   * await tasks.idle();
   * assert.equal(tasks.activeCount, 0);
   * ```
   */
  get activeCount(): number {
    return this.#scheduler.runningCount;
  }

  /**
   * How many tasks are accepted but not started: queued behind the
   * concurrency limit, or waiting for the microtask that starts them.
   *
   * @example Queued behind the limit
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager({ concurrency: 1 });
   * tasks.run("a", () => {});
   * tasks.run("b", () => {});
   * assert.equal(tasks.pendingCount, 2);
   * await tasks.idle();
   * assert.equal(tasks.pendingCount, 0);
   * ```
   */
  get pendingCount(): number {
    return this.#scheduler.pendingCount;
  }

  /**
   * Whether the manager refuses new tasks: from the moment `shutdown()` is
   * called, or once its `signal` aborted. Then `run`, `runWithResult` and
   * `group().add` throw a {@linkcode ManagerClosedError}; only a
   * {@linkcode TaskScope} made with `hold` before the shutdown may still
   * start tasks while the shutdown waits. The Hono middleware answers new
   * requests 503 from this moment.
   *
   * @example Closed by shutdown
   * ```ts
   * import { ManagerClosedError, TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * assert.equal(tasks.closed, false);
   * await tasks.shutdown();
   * assert.equal(tasks.closed, true);
   * assert.throws(() => tasks.run("late", () => {}), ManagerClosedError);
   * ```
   */
  get closed(): boolean {
    return this.#scheduler.closed;
  }

  /**
   * Whether a shutdown is in progress: `shutdown()` was called and its
   * promise has not resolved yet. `closed` is `true` all along, and stays
   * `true` after.
   *
   * @example While the shutdown waits for a task
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * const gate = Promise.withResolvers<void>();
   * tasks.run("flush", () => gate.promise);
   * const shutdown = tasks.shutdown({ timeout: 1000 });
   * assert.equal(tasks.closing, true);
   * gate.resolve();
   * await shutdown;
   * assert.equal(tasks.closing, false);
   * assert.equal(tasks.closed, true);
   * ```
   */
  get closing(): boolean {
    return this.#scheduler.closing;
  }

  /**
   * Cancels one task. A pending task is removed and never starts; a running
   * task's signal is aborted and a `cancel` event dispatched at once, and it
   * settles as `"cancelled"` when its function returns.
   *
   * @param id The id from the task's handle or from `activeTasks`.
   * @param reason The abort reason; by default a `DOMException` named `AbortError`.
   * @returns `false` if the id is unknown, or its task settled or is already being cancelled.
   * @throws {TypeError} An id that is not a string.
   *
   * @example Cancel before it starts
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * let ran = false;
   * const task = tasks.runWithResult("never", () => { ran = true; });
   * assert.equal(tasks.cancel(task.id), true);
   * await assert.rejects(task.value, { name: "AbortError" });
   * assert.equal(ran, false);
   * assert.equal(tasks.cancel(task.id), false);
   * ```
   */
  cancel(id: string, reason?: unknown): boolean {
    ID.require("Cannot cancel task", "id", id);
    const task = this.#scheduler.find(id);
    return task === undefined ? false : this.#scheduler.cancel(task, reason);
  }

  /**
   * Cancels every pending and running task, as `cancel` does for one. Tasks
   * already being cancelled are not counted again, and stay tracked until
   * their functions return. The manager stays open.
   *
   * @param reason The abort reason; by default a `DOMException` named `AbortError`.
   * @returns How many tasks this call cancelled.
   *
   * @example Cancel everything
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * tasks.run("a", () => {});
   * tasks.run("b", () => {});
   * assert.equal(tasks.cancelAll(), 2);
   * await tasks.idle();
   * ```
   */
  cancelAll(reason?: unknown): number {
    return this.#scheduler.cancelAll(reason);
  }

  /**
   * Resolves once no task is running and none is queued.
   *
   * Resolves at once when the manager is already idle. Tasks started while it
   * waits are waited for too.
   *
   * @param options.signal Stops waiting: the promise rejects with `signal.reason`.
   * @returns A promise that resolves when the manager is idle.
   * @throws {TypeError} A `signal` that is not an `AbortSignal`.
   *
   * @example Wait for background work in a test
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * let sent = false;
   * tasks.run("send", () => { sent = true; });
   * await tasks.idle();
   * assert.equal(sent, true);
   * ```
   */
  idle(options: IdleOptions = {}): Promise<void> {
    checkOptions("Cannot wait for idle", options);
    const signal = options.signal;
    SIGNAL.check("Cannot wait for idle", "signal", signal);
    return this.#scheduler.whenIdle(signal).then((idle) => {
      if (!idle) throw signal!.reason;
    });
  }

  /**
   * Closes the manager and drains it: waits up to `timeout` for running and
   * queued tasks (and for scopes that hold it, see {@linkcode TaskScope}),
   * then cancels the rest and waits up to `grace` more for them to return.
   * After the call, `run`, `runWithResult` and `group().add` throw a
   * {@linkcode ManagerClosedError}; `closing` is `true` until the promise
   * resolves. Calling it again returns the same promise. It never rejects.
   *
   * The defaults (3 s, then 1 s of grace) stay under Deno Deploy's 5 s
   * between SIGINT and the kill. Each bound is a timer, cleared as soon as
   * the manager is idle.
   *
   * @param options.timeout Milliseconds to wait (`0`: cancel at once, `Infinity`: wait for ever).
   * @param options.grace Milliseconds cancelled tasks get to return.
   * @returns What completed, what was cancelled, and what was abandoned.
   * @throws {TypeError} A bound that is not a number.
   * @throws {RangeError} A bound out of range.
   *
   * @example Cancel what is still running after the timeout
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * tasks.run("upload", ({ signal }) =>
   *   new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve())));
   * await Promise.resolve();
   * const report = await tasks.shutdown({ timeout: 0 });
   * assert.deepEqual(report, { completed: 0, cancelled: 1, abandoned: [] });
   * ```
   */
  shutdown(options: ShutdownOptions = {}): Promise<ShutdownReport> {
    const scheduler = this.#scheduler;
    const started = scheduler.shutdownStarted;
    if (started !== undefined) return started;
    const where = "Cannot shut down TaskManager";
    checkOptions(where, options);
    BOUND.check(where, "timeout", options.timeout);
    BOUND.check(where, "grace", options.grace);
    return scheduler.shutdown(
      options.timeout ?? SHUTDOWN_TIMEOUT,
      options.grace ?? SHUTDOWN_GRACE,
    );
  }

  /**
   * `await using tasks = new TaskManager()`: shuts down with the default
   * bounds when the scope ends.
   *
   * @returns A promise that resolves when the shutdown is over.
   *
   * @example Scope a manager
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * let done = false;
   * {
   *   await using tasks = new TaskManager();
   *   tasks.run("flush", async () => { done = true; });
   * }
   * assert.equal(done, true);
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /**
   * Makes a {@linkcode TaskGroup} whose tasks run through this manager: they
   * show in its `activeTasks`, count against its concurrency, dispatch its
   * events and are cancelled by its shutdown.
   *
   * @param options `failFast`, a `signal` that cancels the group, a `concurrency` within the group.
   * @returns The group.
   *
   * @example Three thumbnails as one unit
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * const group = tasks.group();
   * for (const size of [150, 300, 600]) {
   *   group.add(`thumb-${size}`, () => size * 2);
   * }
   * const results = await group.awaitAll();
   * assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled", "fulfilled"]);
   * ```
   */
  group(options: TaskGroupOptions = {}): TaskGroup {
    checkOptions("Cannot create TaskGroup", options);
    return new TaskGroup({
      ...options,
      [SETUP]: {
        scheduler: this.#scheduler,
        defaults: undefined,
        holder: undefined,
      },
    } as TaskGroupOptions);
  }

  /**
   * Listens for `start`, `settle` or `cancel`. Events are made only while a
   * listener for their type is attached.
   *
   * @param type `"start"`, `"settle"` or `"cancel"`.
   * @param listener Receives a {@linkcode TaskEvent}.
   * @param options As for any `EventTarget`.
   *
   * @example Watch tasks start and settle
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * const seen: string[] = [];
   * tasks.addEventListener("start", (e) => seen.push(`start ${e.task.name}`));
   * tasks.addEventListener("settle", (e) => seen.push(`${e.task.status} ${e.task.name}`));
   * tasks.run("ping", () => {});
   * await tasks.idle();
   * assert.deepEqual(seen, ["start ping", "fulfilled ping"]);
   * ```
   */
  override addEventListener<K extends keyof TaskEventMap>(
    type: K,
    listener: TaskEventListener<K> | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens for any other event type, as on any `EventTarget`.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options As for any `EventTarget`.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    const callback = this.#listeners.add(type, listener, options);
    if (callback !== undefined) {
      super.addEventListener(type, callback, options);
    }
  }

  /**
   * Removes a listener added with `addEventListener`.
   *
   * @param type `"start"`, `"settle"` or `"cancel"`.
   * @param listener The listener to remove.
   * @param options As for any `EventTarget`.
   *
   * @example Stop listening
   * ```ts
   * import { TaskManager, type TaskEvent } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * let starts = 0;
   * const onStart = (_event: TaskEvent) => { starts++; };
   * tasks.addEventListener("start", onStart);
   * tasks.removeEventListener("start", onStart);
   * tasks.run("quiet", () => {});
   * await tasks.idle();
   * assert.equal(starts, 0);
   * ```
   */
  override removeEventListener<K extends keyof TaskEventMap>(
    type: K,
    listener: TaskEventListener<K> | null,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Removes a listener of any other event type.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options As for any `EventTarget`.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    const callback = this.#listeners.remove(type, listener, options);
    if (callback !== undefined) {
      super.removeEventListener(type, callback, options);
    }
  }
}

// A manager that never runs a task, for the hidden classes of a manager and
// its scheduler and queues, which a program that makes managers and drops
// them (a test suite, a script per job) would otherwise lose at every full
// collection (see _classes.ts).
keepClassOf(new TaskManager());
