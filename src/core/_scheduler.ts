// The state behind one TaskManager: its tasks, the FIFO queue with its
// concurrency limit, the counts, whether it is closed, and its shutdown.
// TaskManager is a thin front over it; TaskGroup reaches it through a group
// core (_group.ts). Every field here changes only in this class's methods.
//
// The invariants this file keeps:
// - a task is counted in exactly one of `pendingCount` and `runningCount`
//   until it settles, and is in `#tasks` for exactly that long;
// - a task keeps its concurrency slot until its function returns, even after
//   it was cancelled or timed out;
// - each task dispatches at most one `start`, at most one `cancel`, exactly
//   one `settle`, in that order, and an event object is made only when a
//   listener for its type is attached;
// - a failure goes to exactly one place: the reader of `value` (if it was read
//   before the task settled), the group's `awaitAll` (if one was waiting when
//   the task settled), or `onError`;
// - every listener added to a per-task signal is removed, and the task's
//   timeout timer cleared, when the task settles.

import { PriorityQueue } from "./_queue.ts";
import { dispatchTaskEvent } from "./_events.ts";
import { RateWindow } from "./_rate.ts";
import { type TaskGroupHooks, TaskRecord } from "./_task.ts";
import { checkTask } from "./_validate.ts";
import { ManagerClosedError } from "./manager_closed_error.ts";
import type {
  RateLimit,
  RetryOptions,
  RunOptions,
  TaskFunction,
  TaskInfo,
} from "./types.ts";

/** Reports a failure nobody else asked for. */
export type ErrorReporter = (error: unknown, task: TaskInfo) => void;

/** The default `onError`: the task's name and id, and the error with its stack. */
export function reportToConsole(error: unknown, task: TaskInfo): void {
  console.error(
    `@background/tasks: task "${task.name}" (id ${task.id}) failed:`,
    error,
  );
}

/** A cancellation reason for when the caller gave none. */
export function abortError(message: string): DOMException {
  return new DOMException(message, "AbortError");
}

/** What a shutdown resolves with (`ShutdownReport` in task_manager.ts). */
export interface Report {
  completed: number;
  cancelled: number;
  abandoned: TaskInfo[];
}

/** The settings of a scheduler, fixed when it is made. */
export interface SchedulerOptions {
  readonly concurrency: number;
  readonly timeout: number | undefined;
  readonly waitUntil: ((promise: Promise<void>) => void) | undefined;
  readonly onError: ErrorReporter;
  readonly retry?: RetryOptions | undefined;
  readonly rate?: RateLimit | undefined;
}

/** At most one `progress` event per task in this many milliseconds. */
export const PROGRESS_INTERVAL = 100;

/** Defaults a task takes where its own options say nothing (a group's, a scope's). */
export interface TaskDefaults {
  readonly timeout?: number;
  readonly waitUntil?: (promise: Promise<void>) => void;
  readonly retry?: RetryOptions | false;
}

/**
 * Where a new task comes from, besides its own options: the group it joins,
 * the defaults it takes (a scope's), and whether its caller holds the
 * manager (a scope made with `hold`, see `hold()`). A task started on the
 * manager itself has none of these.
 */
export interface TaskOrigin {
  readonly group: TaskGroupHooks | undefined;
  readonly defaults: TaskDefaults | undefined;
  readonly held: boolean;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

/** The state behind one TaskManager. */
export class Scheduler {
  /** Every unsettled task by id; running ones in the order they started. */
  readonly #tasks: Map<number, TaskRecord> = new Map();
  readonly #queue: PriorityQueue<TaskRecord> = new PriorityQueue();
  readonly #target: EventTarget;
  readonly #concurrency: number;
  readonly #timeout: number | undefined;
  readonly #waitUntil: ((promise: Promise<void>) => void) | undefined;
  readonly #onError: ErrorReporter;
  readonly #retry: RetryOptions | undefined;
  /** The manager's rate limit, and the one timer its queue waits on. */
  readonly #rate: RateWindow | undefined;
  #rateTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Tasks whose latest progress waits for its event, and the one timer. */
  readonly #progressDue: Set<TaskRecord> = new Set();
  #progressTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #running = 0;
  #pending = 0;
  /** Settled tasks, for shutdown reports. */
  #completed = 0;
  #cancelled = 0;
  #closed = false;
  #shutdown: Promise<Report> | undefined = undefined;
  #shutdownDone = false;
  /** The shutdown stopped waiting and cancels: holds no longer let tasks in. */
  #cancelling = false;
  /** Scopes that hold the manager open for their caller (see `hold()`). */
  #holds = 0;
  /** Wakes a shutdown waiting for the tasks and the holds to end. */
  #drained: (() => void) | undefined = undefined;
  /** Whether a listener for each event type is attached (see `listen`). */
  #wantStart = false;
  #wantSettle = false;
  #wantCancel = false;
  #wantRetry = false;
  #wantProgress = false;
  readonly #idleWaiters: Set<() => void> = new Set();
  #drainScheduled = false;
  #pumping = false;
  /** The task whose `start` event is being dispatched. */
  #starting: TaskRecord | undefined = undefined;
  /** Starts no longer follow add order (see #start). */
  #reorderStarts = false;
  /** Since then, the tasks in the order they started (and settled ones). */
  #starts: TaskRecord[] = [];
  readonly #drain = (): void => {
    this.#drainScheduled = false;
    this.pump();
  };

  constructor(target: EventTarget, options: SchedulerOptions) {
    this.#target = target;
    this.#concurrency = options.concurrency;
    this.#timeout = options.timeout;
    this.#waitUntil = options.waitUntil;
    this.#onError = options.onError;
    this.#retry = options.retry;
    const rate = options.rate;
    this.#rate = rate && new RateWindow(rate.limit, rate.interval);
  }

  get runningCount(): number {
    return this.#running;
  }

  get pendingCount(): number {
    return this.#pending;
  }

  /** Refuses new tasks from now on (after `shutdown()`, or the manager's signal). */
  get closed(): boolean {
    return this.#closed;
  }

  /** A shutdown is in progress: it started and has not resolved yet. */
  get closing(): boolean {
    return this.#shutdown !== undefined && !this.#shutdownDone;
  }

  /** Nothing running and nothing queued. */
  get idle(): boolean {
    return this.#running === 0 && this.#pending === 0;
  }

  /** The promise of the shutdown that started, if one did. */
  get shutdownStarted(): Promise<Report> | undefined {
    return this.#shutdown;
  }

  /** Refuses new tasks; what is accepted goes on. */
  close(): void {
    this.#closed = true;
  }

  /**
   * A caller (a request, through its scope) starts holding the manager: a
   * shutdown waits for it to `release()`, as for a task, before it cancels,
   * and until then lets it start tasks. `false`, holding nothing, once the
   * manager is closed: a caller that came later is refused like any other.
   */
  hold(): boolean {
    if (this.#closed) return false;
    this.#holds++;
    return true;
  }

  /** Ends a hold that `hold()` granted. */
  release(): void {
    this.#holds--;
    this.#wakeDrained();
  }

  /** A listener for `type` was attached (`true`) or the last one left. */
  listen(type: string, listened: boolean): void {
    if (type === "start") this.#wantStart = listened;
    else if (type === "settle") this.#wantSettle = listened;
    else if (type === "cancel") this.#wantCancel = listened;
    else if (type === "retry") this.#wantRetry = listened;
    else if (type === "progress") this.#wantProgress = listened;
  }

  /** The unsettled task with this id, if any. */
  find(id: string): TaskRecord | undefined {
    const key = Number(id);
    return String(key) === id ? this.#tasks.get(key) : undefined;
  }

  /**
   * Checks a new task's arguments (`verb` names the call: "run", "add"),
   * refuses it once closed (unless its caller holds the manager and the
   * shutdown still waits), and accepts it: it starts in a microtask at the
   * earliest. What `run`, `runWithResult`, `TaskGroup.add` and a scope's
   * methods all do.
   */
  accept<T>(
    verb: string,
    name: string,
    fn: TaskFunction<T>,
    options: RunOptions | undefined,
    origin: TaskOrigin | undefined,
  ): TaskRecord<T> {
    checkTask(verb, name, fn, options);
    if (this.#closed && !(origin?.held === true && !this.#cancelling)) {
      throw new ManagerClosedError(verb, name);
    }
    return this.#add(name, fn, options, origin?.group, origin?.defaults);
  }

  #add<T>(
    name: string,
    fn: TaskFunction<T>,
    options: RunOptions | undefined,
    group: TaskGroupHooks | undefined,
    defaults: TaskDefaults | undefined,
  ): TaskRecord<T> {
    const retry = options?.retry ?? defaults?.retry ?? this.#retry;
    const task = new TaskRecord<T>(
      this,
      group,
      name,
      fn,
      options?.timeout ?? defaults?.timeout ?? this.#timeout,
      retry === false ? undefined : retry,
      options?.priority ?? 0,
    );
    const waitUntil = options?.waitUntil ?? defaults?.waitUntil ??
      this.#waitUntil;
    if (waitUntil !== undefined) task.holdFor(waitUntil);
    this.#tasks.set(task.key, task);
    this.#pending++;
    group?.accept(task);

    const signal = options?.signal;
    if (signal?.aborted) return this.#dropLater(task, signal.reason);
    if (group?.cancelRequested) return this.#dropLater(task, group.reason);
    if (signal !== undefined) task.watch(signal);
    if (group === undefined) this.enqueue(task);
    else group.admit(task);
    return task;
  }

  /** A task that must never start: it settles as cancelled in a microtask. */
  #dropLater<T>(task: TaskRecord<T>, reason: unknown): TaskRecord<T> {
    task.requestCancel(reason);
    queueMicrotask(() => this.#drop(task));
    return task;
  }

  /** Settles a pending task whose cancellation was requested. */
  #drop(task: TaskRecord): void {
    if (this.#wantCancel) dispatchTaskEvent(this.#target, "cancel", task);
    this.#settle(task, false, undefined);
  }

  /** Puts a pending task at the back of the queue. */
  enqueue(task: TaskRecord): void {
    this.#queue.push(task);
    if (!this.#drainScheduled && !this.#pumping) {
      this.#drainScheduled = true;
      queueMicrotask(this.#drain);
    }
  }

  /**
   * Moves a pending task to the end of the manager's list of tasks, so that
   * `activeTasks` keeps running tasks in start order when a group lets it
   * into the queue late.
   */
  reorder(task: TaskRecord): void {
    this.#tasks.delete(task.key);
    this.#tasks.set(task.key, task);
  }

  /** Starts queued tasks while slots are free. Never re-entered. */
  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#running < this.#concurrency) {
        if (this.#rate !== undefined && !this.#rateAllows()) break;
        const task = this.#queue.shift();
        if (task === undefined) break;
        if (task.status === "pending" && !task.cancelRequested) {
          this.#rate?.record(Date.now());
          this.#start(task);
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  /**
   * Whether the manager's rate limit lets a task start now; if not, the one
   * timer of the queue is set for when it will.
   */
  #rateAllows(): boolean {
    const at = this.#rate!.nextAt();
    const now = Date.now();
    if (at <= now) return true;
    this.#rateTimer ??= setTimeout(() => {
      this.#rateTimer = undefined;
      this.pump();
    }, at - now);
    return false;
  }

  #start(task: TaskRecord): void {
    this.#pending--;
    this.#running++;
    // `activeTasks` lists running tasks in start order: the map's order,
    // which is add order until priorities or a retry start tasks in another
    // order; from then on, from a list of starts of its own.
    if (
      !this.#reorderStarts &&
      (this.#queue.ranked || task.extra?.attempt !== undefined)
    ) this.#trackStarts();
    if (this.#reorderStarts) this.#noteStart(task);
    task.begin();
    task.group?.started(task);
    // A timer we clear when the task settles: an `AbortSignal.timeout`
    // cannot be cleared, and Deno keeps each one (about 600 B of heap) until
    // it fires, however long the task is gone.
    task.arm(this.#expire);
    if (this.#wantStart) {
      this.#starting = task;
      dispatchTaskEvent(this.#target, "start", task);
      this.#starting = undefined;
    }
    // A `start` listener may have cancelled it: then its function never runs,
    // and its `cancel` event, held back until every `start` listener ran,
    // goes out now.
    if (task.cancelRequested) {
      if (this.#wantCancel) dispatchTaskEvent(this.#target, "cancel", task);
      return this.#settle(task, false, undefined);
    }
    let result: unknown;
    let promise: PromiseLike<unknown> | undefined;
    try {
      result = task.fn!(task);
      if (isThenable(result)) {
        // A foreign thenable may throw, or call back twice: Promise.resolve tames it.
        promise = result instanceof Promise ? result : Promise.resolve(result);
      }
    } catch (error) {
      return this.#settle(task, false, error);
    }
    if (promise !== undefined) this.#follow(task, promise);
    else this.#settle(task, true, result);
  }

  #follow(task: TaskRecord, promise: PromiseLike<unknown>): void {
    // Two closures cost less memory per waiting task than an async function.
    promise.then(
      (value) => this.#settle(task, true, value),
      (error) => this.#settle(task, false, error),
    );
  }

  /** Requests a task's cancellation; `false` when already settled or requested. */
  cancel(task: TaskRecord, reason: unknown): boolean {
    if (task.cancelRequested) {
      // Already being cancelled, or timed out and unwinding: a timed-out
      // attempt is not retried once cancellation is asked for as well.
      task.endRetries();
      return false;
    }
    const status = task.status;
    if (status !== "pending" && status !== "running") return false;
    task.requestCancel(
      reason === undefined
        ? abortError(`Task "${task.name}" was cancelled`)
        : reason,
    );
    if (status === "pending") this.#drop(task);
    // A running task keeps its slot until its function returns. Its `cancel`
    // event waits while its `start` event is being dispatched (see #start).
    else if (this.#wantCancel && this.#starting !== task) {
      dispatchTaskEvent(this.#target, "cancel", task);
    }
    return true;
  }

  /** A task's timeout elapsed. */
  readonly #expire = (task: TaskRecord): void => {
    if (task.expire() && this.#wantCancel && this.#starting !== task) {
      dispatchTaskEvent(this.#target, "cancel", task);
    }
  };

  /** Cancels every unsettled task that existed when called. */
  cancelAll(reason: unknown): number {
    let cancelled = 0;
    for (const task of [...this.#tasks.values()]) {
      if (this.cancel(task, reason)) cancelled++;
    }
    return cancelled;
  }

  #settle(task: TaskRecord, ok: boolean, result: unknown): void {
    if (
      task.extra?.retry !== undefined && (!ok || task.cancelRequested) &&
      this.#tryAgain(task, result)
    ) return;
    if (this.#progressDue.size > 0) this.#flushProgressOf(task);
    const wasRunning = task.status === "running";
    const status = task.finish(ok, result);
    if (wasRunning) {
      this.#running--;
      task.group?.stopped();
      // Nothing runs: the list of starts holds only settled tasks.
      if (this.#running === 0 && this.#reorderStarts) this.#starts.length = 0;
    } else this.#pending--;
    if (status === "cancelled") this.#cancelled++;
    else this.#completed++;
    this.#tasks.delete(task.key);

    // Who gets the outcome is decided before the `settle` event: whoever
    // read `value` before now; else a failure goes to `onError`, unless a
    // group's `awaitAll()` waits for it. A `settle` listener that reads
    // `value` reads it after the task settled: it gets a promise already
    // settled, and the failure still goes to `onError`.
    const reader = task.hasReader;
    const report = !reader && status === "rejected" &&
      task.group?.awaited !== true;
    if (this.#wantSettle) dispatchTaskEvent(this.#target, "settle", task);
    if (reader) task.deliver();
    else if (report) this.#report(task.result, task);
    task.release();
    task.group?.settled(task);
    if (this.#pending === 0 && this.#rateTimer !== undefined) {
      clearTimeout(this.#rateTimer);
      this.#rateTimer = undefined;
    }
    if (wasRunning) this.pump();
    if (this.idle) {
      for (const wake of this.#idleWaiters) wake();
      this.#idleWaiters.clear();
      this.#wakeDrained();
    }
  }

  /** Wakes the shutdown once nothing runs, nothing waits and nothing holds. */
  #wakeDrained(): void {
    if (this.#drained !== undefined && this.idle && this.#holds === 0) {
      this.#drained();
    }
  }

  /**
   * A running attempt failed with `error`: if the task retries, it waits for
   * its next attempt as a pending task (its slot freed, a `retry` event out)
   * and this returns `true`; else the caller settles it. Once the manager is
   * closed a failure is final: a retry would be new work.
   */
  #tryAgain(task: TaskRecord, error: unknown): boolean {
    // A closed manager starts nothing new: a failure once it closed is final.
    if (this.#closed) return false;
    // A timeout is a failure of the attempt; its error is the TimeoutError.
    const failure = task.cancelRequested ? task.result : error;
    const { delay, thrown } = task.retryDelay(failure);
    if (thrown !== undefined) {
      reportToConsole(
        new AggregateError(
          [failure, thrown],
          "retryIf threw: the task is not retried",
        ),
        task.toJSON(),
      );
    }
    if (delay === undefined) return false;
    if (this.#progressDue.size > 0) this.#flushProgressOf(task);
    this.#running--;
    this.#pending++;
    task.group?.stopped();
    task.waitToRetry(delay, this.#resume);
    if (this.#wantRetry) {
      dispatchTaskEvent(this.#target, "retry", task, { error: failure, delay });
    }
    task.group?.retrying(task);
    this.pump();
    return true;
  }

  /** A task's wait for its next attempt is over: it queues again. */
  readonly #resume = (task: TaskRecord): void => {
    if (task.status !== "pending" || task.cancelRequested) return;
    if (task.group === undefined) this.enqueue(task);
    else task.group.admit(task);
  };

  /** A running task reported progress: its event goes out now or later. */
  progressed(task: TaskRecord): void {
    if (!this.#wantProgress) return;
    if (task.takeProgressSlot(Date.now(), PROGRESS_INTERVAL)) {
      dispatchTaskEvent(this.#target, "progress", task);
      return;
    }
    this.#progressDue.add(task);
    this.#progressTimer ??= setTimeout(this.#flushProgress, PROGRESS_INTERVAL);
  }

  /**
   * An attempt ended: a progress event that still waits goes out now, before
   * the task's `retry` or `settle`, so that listeners see the latest value;
   * the timer goes with the last one waiting.
   */
  #flushProgressOf(task: TaskRecord): void {
    if (!this.#progressDue.delete(task)) return;
    if (this.#progressDue.size === 0) {
      clearTimeout(this.#progressTimer);
      this.#progressTimer = undefined;
    }
    if (this.#wantProgress) {
      dispatchTaskEvent(this.#target, "progress", task);
    }
  }

  /** Sends the progress events that waited, each task's latest value. */
  readonly #flushProgress = (): void => {
    this.#progressTimer = undefined;
    const now = Date.now();
    for (const task of this.#progressDue) {
      if (task.status !== "running") this.#progressDue.delete(task);
      else if (task.takeProgressSlot(now, PROGRESS_INTERVAL)) {
        this.#progressDue.delete(task);
        if (this.#wantProgress) {
          dispatchTaskEvent(this.#target, "progress", task);
        }
      }
    }
    if (this.#progressDue.size > 0) {
      this.#progressTimer = setTimeout(this.#flushProgress, PROGRESS_INTERVAL);
    }
  };

  #report(error: unknown, task: TaskRecord): void {
    try {
      this.#onError(error, task.toJSON());
    } catch (thrown) {
      reportToConsole(
        new AggregateError([error, thrown], "onError threw while reporting"),
        task.toJSON(),
      );
    }
  }

  /** Resolves `true` once idle, or `false` when `signal` aborts first. */
  whenIdle(signal?: AbortSignal): Promise<boolean> {
    if (this.idle) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = () => {
        this.#idleWaiters.delete(wake);
        resolve(false);
      };
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      };
      this.#idleWaiters.add(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Waits up to `ms` (0: not at all; Infinity: for ever) until nothing runs,
   * nothing waits and nothing holds the manager; `true` if that came first.
   */
  #drainedWithin(ms: number): Promise<boolean> {
    const drained = () => this.idle && this.#holds === 0;
    if (drained()) return Promise.resolve(true);
    if (ms === 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      // A timer cleared once drained, unlike an `AbortSignal.timeout`.
      const timer = ms === Infinity ? undefined : setTimeout(() => {
        this.#drained = undefined;
        resolve(false);
      }, ms);
      this.#drained = () => {
        this.#drained = undefined;
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  /**
   * Closes, then drains: waits up to `timeout` ms for the tasks (and for the
   * holds, see `hold()`), cancels the rest and waits up to `grace` ms more,
   * and resolves with what completed, what was cancelled and what is still
   * running. A second call returns the same promise.
   */
  shutdown(timeout: number, grace: number): Promise<Report> {
    if (this.#shutdown !== undefined) return this.#shutdown;
    this.#closed = true;
    const completed = this.#completed;
    const cancelled = this.#cancelled;
    // Set before anything runs: a listener that calls shutdown() again, from
    // inside the cancellation below, gets this same promise.
    const { promise, resolve } = Promise.withResolvers<Report>();
    this.#shutdown = promise;
    const finish = () => {
      this.#shutdownDone = true;
      resolve({
        completed: this.#completed - completed,
        cancelled: this.#cancelled - cancelled,
        abandoned: [...this.#tasks.values()].map((task) => task.toJSON()),
      });
    };
    (async () => {
      // `timeout: 0` decides before any await: a task queued in this tick,
      // still waiting for its start, is cancelled and never starts.
      const drained = timeout === 0
        ? this.idle && this.#holds === 0
        : await this.#drainedWithin(timeout);
      if (!drained) {
        this.#cancelling = true;
        this.cancelAll(
          abortError("The task manager shut down before the task finished"),
        );
        await this.#drainedWithin(grace);
      }
    })().then(finish, finish);
    return promise;
  }

  /** Snapshots of the running tasks, in start order. */
  active(): TaskInfo[] {
    return this.#list("running");
  }

  /** Snapshots of the tasks accepted and not started (or waiting to retry). */
  waiting(): TaskInfo[] {
    return this.#list("pending");
  }

  #list(status: "running" | "pending"): TaskInfo[] {
    if (status === "running" && this.#reorderStarts) {
      return this.#compactStarts().map((task) => task.toJSON());
    }
    const list: TaskInfo[] = [];
    for (const task of this.#tasks.values()) {
      if (task.status === status) list.push(task.toJSON());
    }
    return list;
  }

  // Start order once it differs from add order. Moving each starting task to
  // the end of the map instead, as this did before, cost a third of what a
  // task with a priority costs: a map of every task, rehashed over and over.
  // A list of starts costs a push per start and nothing per task for a
  // manager that never reorders; it drops settled tasks when it has grown to
  // twice the running ones.

  /** Starts no longer follow add order: begins the list with what runs. */
  #trackStarts(): void {
    this.#reorderStarts = true;
    for (const task of this.#tasks.values()) {
      if (task.status === "running") this.#starts.push(task);
    }
  }

  #noteStart(task: TaskRecord): void {
    this.#starts.push(task);
    if (this.#starts.length > 2 * this.#running + 64) this.#compactStarts();
  }

  /** The running tasks in start order: the last start of each, as listed. */
  #compactStarts(): TaskRecord[] {
    const starts = this.#starts;
    const seen = new Set<TaskRecord>();
    const running: TaskRecord[] = [];
    for (let i = starts.length - 1; i >= 0; i--) {
      const task = starts[i];
      // A task that waited for a retry and started again is listed twice.
      if (task.status === "running" && !seen.has(task)) {
        seen.add(task);
        running.push(task);
      }
    }
    return this.#starts = running.reverse();
  }
}
