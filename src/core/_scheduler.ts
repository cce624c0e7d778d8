// The machinery behind TaskManager and TaskGroup: the task records, the
// FIFO scheduler with its concurrency limit, and the bookkeeping of groups.
// Nothing here is exported from mod.ts; the public classes are thin fronts.
//
// The invariants this file keeps:
// - a task is counted in exactly one of `pending` and `running` until it
//   settles, and is in `tasks` for exactly that long;
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

import { Queue } from "./_queue.ts";
import { taskEvent, type TaskEventType } from "./task_event.ts";
import type {
  RunOptions,
  Task,
  TaskContext,
  TaskFunction,
  TaskInfo,
  TaskStatus,
} from "./types.ts";

/** Reports a failure nobody else asked for. */
export type ErrorReporter = (error: unknown, task: TaskInfo) => void;

/** The default `onError`: one line that names the task. */
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

let lastId = 0;

/**
 * One task. It is also the handle that `run`, `runWithResult` and
 * `TaskGroup.add` return, typed there as `TaskHandle` or `Task<T>`, and the
 * context its function receives, typed as `TaskContext`: one object per task.
 * The fields below are not part of those types.
 */
export class TaskRecord<T = unknown> implements Task<T>, TaskContext {
  /** The id as a number: the key of the scheduler's map (cheaper than a string). */
  readonly key: number = ++lastId;
  readonly name: string;
  status: TaskStatus = "pending";
  /** Milliseconds since the epoch when the function was called; 0 before. */
  startTime = 0;
  fn: TaskFunction<T> | undefined;
  readonly scheduler: Scheduler;
  readonly group: GroupCore | undefined;
  /** State most tasks never need, made on first use. */
  extra: TaskExtra | undefined = undefined;
  /** Made on the first read of the context's `signal`, or never. */
  controller: AbortController | undefined = undefined;
  /** Cancellation (or the timeout) was requested: from then on it decides the outcome. */
  cancelRequested = false;
  /**
   * The cancellation reason (or the `TimeoutError`) once cancellation is
   * requested; else, once settled, the value or error.
   */
  result: unknown = undefined;

  constructor(
    scheduler: Scheduler,
    group: GroupCore | undefined,
    name: string,
    fn: TaskFunction<T>,
    timeout: number | undefined,
  ) {
    this.scheduler = scheduler;
    this.group = group;
    this.name = name;
    this.fn = fn;
    if (timeout !== undefined) this.more().timeout = timeout;
  }

  more(): TaskExtra {
    return this.extra ??= new TaskExtra();
  }

  get id(): string {
    return String(this.key);
  }

  get startedAt(): Date | undefined {
    return this.startTime === 0 ? undefined : new Date(this.startTime);
  }

  get value(): Promise<T> {
    const extra = this.more();
    if (extra.promise === undefined) {
      switch (this.status) {
        case "fulfilled":
          extra.promise = Promise.resolve(this.result);
          break;
        case "rejected":
        case "cancelled":
          extra.promise = Promise.reject(this.result);
          break;
        default:
          extra.promise = new Promise((resolve, reject) => {
            extra.resolve = resolve;
            extra.reject = reject;
          });
      }
    }
    return extra.promise as Promise<T>;
  }

  cancel(reason?: unknown): boolean {
    return this.scheduler.cancel(this, reason);
  }

  toJSON(): TaskInfo {
    return this.snapshot(this.status);
  }

  /** A snapshot, with the status given (an event's status at dispatch). */
  snapshot(status: TaskStatus): TaskInfo {
    return { id: this.id, name: this.name, status, startedAt: this.startedAt };
  }

  /** What `console.log` shows on Deno, Bun and Node: the task, not its machinery. */
  [Symbol.for("Deno.customInspect")](): string {
    return describe(this);
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return describe(this);
  }

  /** The task's own signal, made on first read. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.cancelRequested) this.controller.abort(this.result);
    }
    return this.controller.signal;
  }

  /** The listener for the external signal. */
  handleEvent(): void {
    this.scheduler.cancel(this, this.extra!.external!.reason);
  }
}

/**
 * A task as `console.log` shows it. (A module function, not a private
 * method: a class with private methods stores a brand in every instance.)
 */
function describe(task: TaskRecord<unknown>): string {
  const startedAt = task.startedAt;
  return `Task { id: "${task.id}", name: ${
    JSON.stringify(task.name)
  }, status: "${task.status}"${
    startedAt ? `, startedAt: ${startedAt.toISOString()}` : ""
  } }`;
}

/** The fields of a task that only some tasks need. */
class TaskExtra {
  /** The task's timeout in milliseconds. */
  timeout: number | undefined = undefined;
  /** The per-run `signal` option. */
  external: AbortSignal | undefined = undefined;
  /** The timeout's timer while the task runs; cleared when it settles. */
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** `value`, made on first read. */
  promise: Promise<unknown> | undefined = undefined;
  resolve: ((value: unknown) => void) | undefined = undefined;
  reject: ((error: unknown) => void) | undefined = undefined;
  /** Resolves the promise handed to `waitUntil`. */
  done: (() => void) | undefined = undefined;
  /** A group task that was passed on to the manager's queue. */
  admitted = false;
  /** The timeout, not a cancellation, aborted the task. */
  timedOut = false;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

/** The state behind one TaskManager. */
export class Scheduler {
  /** Every unsettled task by id; running ones in the order they started. */
  readonly tasks: Map<number, TaskRecord> = new Map();
  readonly queue: Queue<TaskRecord> = new Queue();
  running = 0;
  pending = 0;
  closed = false;
  /** Settled tasks, for shutdown reports. */
  completed = 0;
  cancelled = 0;
  /** Whether a listener for each event type is attached. */
  wantStart = false;
  wantSettle = false;
  wantCancel = false;
  readonly #target: EventTarget;
  readonly #concurrency: number;
  readonly #timeout: number | undefined;
  readonly #waitUntil: ((promise: Promise<void>) => void) | undefined;
  readonly #onError: ErrorReporter;
  readonly #idleWaiters: Set<() => void> = new Set();
  #drainScheduled = false;
  #pumping = false;
  /** The task whose `start` event is being dispatched. */
  #starting: TaskRecord | undefined = undefined;
  readonly #drain = (): void => {
    this.#drainScheduled = false;
    this.pump();
  };

  constructor(
    target: EventTarget,
    concurrency: number,
    timeout: number | undefined,
    waitUntil: ((promise: Promise<void>) => void) | undefined,
    onError: ErrorReporter,
  ) {
    this.#target = target;
    this.#concurrency = concurrency;
    this.#timeout = timeout;
    this.#waitUntil = waitUntil;
    this.#onError = onError;
  }

  /** Accepts a task; it starts in a microtask at the earliest. */
  add<T>(
    name: string,
    fn: TaskFunction<T>,
    options: RunOptions | undefined,
    group: GroupCore | undefined,
  ): TaskRecord<T> {
    const task = new TaskRecord<T>(
      this,
      group,
      name,
      fn,
      options?.timeout ?? this.#timeout,
    );
    const waitUntil = options?.waitUntil ?? this.#waitUntil;
    if (waitUntil !== undefined) {
      waitUntil(new Promise<void>((resolve) => task.more().done = resolve));
    }
    this.tasks.set(task.key, task);
    this.pending++;
    group?.accept(task);

    const signal = options?.signal;
    if (signal?.aborted) return this.#dropLater(task, signal.reason);
    if (group?.cancelRequested) return this.#dropLater(task, group.reason);
    if (signal !== undefined) {
      task.more().external = signal;
      signal.addEventListener("abort", task);
    }
    if (group === undefined) this.enqueue(task);
    else group.admit(task);
    return task;
  }

  /** A task that must never start: it settles as cancelled in a microtask. */
  #dropLater<T>(task: TaskRecord<T>, reason: unknown): TaskRecord<T> {
    task.cancelRequested = true;
    task.result = reason;
    queueMicrotask(() => this.#drop(task));
    return task;
  }

  /** Settles a pending task whose cancellation was requested. */
  #drop(task: TaskRecord): void {
    if (this.wantCancel) this.#dispatch("cancel", task);
    this.#settle(task, false, undefined);
  }

  enqueue(task: TaskRecord): void {
    this.queue.push(task);
    if (!this.#drainScheduled && !this.#pumping) {
      this.#drainScheduled = true;
      queueMicrotask(this.#drain);
    }
  }

  /** Starts queued tasks while slots are free. Never re-entered. */
  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.running < this.#concurrency) {
        const task = this.queue.shift();
        if (task === undefined) break;
        if (task.status === "pending" && !task.cancelRequested) {
          this.#start(task);
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  #start(task: TaskRecord): void {
    this.pending--;
    this.running++;
    task.status = "running";
    task.startTime = Date.now();
    if (task.group !== undefined) task.group.running++;
    const timeout = task.extra?.timeout;
    if (timeout !== undefined) {
      // A timer we clear when the task settles: an `AbortSignal.timeout`
      // cannot be cleared, and Deno keeps each one (about 600 B of heap) until
      // it fires, however long the task is gone.
      task.extra!.timer = setTimeout(() => this.expire(task), timeout);
    }
    if (this.wantStart) {
      this.#starting = task;
      this.#dispatch("start", task);
      this.#starting = undefined;
    }
    // A `start` listener may have cancelled it: then its function never runs,
    // and its `cancel` event, held back until every `start` listener ran,
    // goes out now.
    if (task.cancelRequested) {
      if (this.wantCancel) this.#dispatch("cancel", task);
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
    if (task.cancelRequested) return false;
    if (task.status === "pending") {
      task.cancelRequested = true;
      task.result = reason === undefined
        ? abortError(`Task "${task.name}" was cancelled`)
        : reason;
      this.#drop(task);
      return true;
    }
    if (task.status !== "running") return false;
    this.#abort(
      task,
      reason === undefined
        ? abortError(`Task "${task.name}" was cancelled`)
        : reason,
    );
    return true;
  }

  /** The task's timeout elapsed. */
  expire(task: TaskRecord): void {
    const extra = task.extra!;
    extra.timer = undefined;
    if (task.cancelRequested || task.status !== "running") return;
    extra.timedOut = true;
    this.#abort(
      task,
      new DOMException(
        `Task "${task.name}" timed out after ${extra.timeout} ms`,
        "TimeoutError",
      ),
    );
  }

  /** Aborts a running task; it keeps its slot until its function returns. */
  #abort(task: TaskRecord, reason: unknown): void {
    task.cancelRequested = true;
    task.result = reason;
    task.controller?.abort(reason);
    if (this.wantCancel && this.#starting !== task) {
      this.#dispatch("cancel", task);
    }
  }

  /** Cancels every unsettled task that existed when called. */
  cancelAll(reason: unknown): number {
    let cancelled = 0;
    for (const task of [...this.tasks.values()]) {
      if (this.cancel(task, reason)) cancelled++;
    }
    return cancelled;
  }

  #settle(task: TaskRecord, ok: boolean, result: unknown): void {
    const wasRunning = task.status === "running";
    let status: TaskStatus;
    if (task.cancelRequested) {
      // Cancellation wins: `result` already holds the reason.
      status = task.extra?.timedOut ? "rejected" : "cancelled";
    } else {
      status = ok ? "fulfilled" : "rejected";
      task.result = result;
    }
    task.status = status;
    task.fn = undefined;
    if (wasRunning) {
      this.running--;
      if (task.group !== undefined) task.group.running--;
    } else this.pending--;
    if (status === "cancelled") this.cancelled++;
    else this.completed++;
    this.tasks.delete(task.key);
    const extra = task.extra;
    extra?.external?.removeEventListener("abort", task);
    if (extra?.timer !== undefined) {
      clearTimeout(extra.timer);
      extra.timer = undefined;
    }

    // Who gets the outcome is decided before the `settle` event: whoever
    // read `value` before now; else a failure goes to `onError`, unless a
    // group's `awaitAll()` waits for it. A `settle` listener that reads
    // `value` reads it after the task settled: it gets a promise already
    // settled, and the failure still goes to `onError`.
    const reader = extra?.resolve !== undefined;
    const report = !reader && status === "rejected" &&
      task.group?.awaited !== true;
    if (this.wantSettle) this.#dispatch("settle", task);
    if (reader) {
      if (status === "fulfilled") extra!.resolve!(task.result);
      else extra!.reject!(task.result);
    } else if (report) this.#report(task.result, task);
    extra?.done?.();
    task.group?.settled(task);
    if (wasRunning) this.pump();
    if (this.idle) {
      for (const wake of this.#idleWaiters) wake();
      this.#idleWaiters.clear();
    }
  }

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

  #dispatch(type: TaskEventType, task: TaskRecord): void {
    const { status, result } = task;
    this.#target.dispatchEvent(
      type !== "settle" || status === "cancelled"
        ? taskEvent(type, task, status, undefined, undefined, result)
        : status === "fulfilled"
        ? taskEvent(type, task, status, result, undefined, undefined)
        : taskEvent(type, task, status, undefined, result, undefined),
    );
  }

  /** Nothing running and nothing queued. */
  get idle(): boolean {
    return this.running === 0 && this.pending === 0;
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

  /** Waits up to `ms` (0: not at all; Infinity: for ever) for idleness. */
  idleWithin(ms: number): Promise<boolean> {
    if (ms === Infinity) return this.whenIdle();
    if (ms === 0) return this.whenIdle(AbortSignal.abort());
    // A timer cleared once idle, unlike an `AbortSignal.timeout`.
    const bound = new AbortController();
    const timer = setTimeout(() => bound.abort(), ms);
    return this.whenIdle(bound.signal).then((idle) => {
      clearTimeout(timer);
      return idle;
    });
  }

  /** Snapshots of the running tasks, in start order. */
  active(): TaskInfo[] {
    const active: TaskInfo[] = [];
    for (const task of this.tasks.values()) {
      if (task.status === "running") active.push(task.toJSON());
    }
    return active;
  }
}

/** One result of `TaskGroup.awaitAll`. */
export type TaskResult<T> =
  | { id: string; name: string; status: "fulfilled"; value: T }
  | { id: string; name: string; status: "rejected"; error: unknown }
  | { id: string; name: string; status: "cancelled"; reason: unknown };

/** The state behind one TaskGroup. */
export class GroupCore {
  readonly scheduler: Scheduler;
  /** Every task added, in add order. */
  readonly tasks: TaskRecord[] = [];
  running = 0;
  /** How many awaitAll() calls wait: while one does, failures go there instead of to `onError`. */
  #awaiting = 0;
  get awaited(): boolean {
    return this.#awaiting > 0;
  }
  cancelRequested = false;
  reason: unknown = undefined;
  readonly #limit: number;
  readonly #failFast: boolean;
  readonly #signal: AbortSignal | undefined;
  /** Tasks waiting for a group slot before they enter the manager's queue. */
  readonly #held: Queue<TaskRecord> = new Queue();
  #admitted = 0;
  #unsettled = 0;
  #waiters: (() => void)[] = [];

  constructor(
    scheduler: Scheduler,
    limit: number,
    failFast: boolean,
    signal: AbortSignal | undefined,
  ) {
    this.scheduler = scheduler;
    this.#limit = limit;
    this.#failFast = failFast;
    this.#signal = signal;
    if (signal?.aborted) {
      this.cancelRequested = true;
      this.reason = signal.reason;
    }
  }

  /** Counts a new task; the group's signal is watched only while one is unsettled. */
  accept(task: TaskRecord): void {
    this.#noticeAbort();
    this.tasks.push(task);
    if (this.#unsettled++ === 0) this.#signal?.addEventListener("abort", this);
  }

  /** Passes a task on to the manager's queue, or holds it for a group slot. */
  admit(task: TaskRecord): void {
    if (this.#admitted < this.#limit) {
      this.#admitted++;
      task.more().admitted = true;
      this.scheduler.enqueue(task);
    } else {
      this.#held.push(task);
    }
  }

  settled(task: TaskRecord): void {
    if (task.extra?.admitted) this.#admitted--;
    if (--this.#unsettled === 0) {
      this.#signal?.removeEventListener("abort", this);
    }
    if (this.#failFast && task.status === "rejected" && !this.cancelRequested) {
      this.cancel(
        abortError(
          `Cancelled because task "${task.name}" (id ${task.id}) in its group failed`,
        ),
      );
    }
    this.#promote();
    if (this.#unsettled === 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    }
  }

  #promote(): void {
    while (!this.cancelRequested && this.#admitted < this.#limit) {
      const next = this.#held.shift();
      if (next === undefined) return;
      if (next.status !== "pending" || next.cancelRequested) continue;
      // Re-insert so that the manager's map keeps running tasks in start order.
      this.scheduler.tasks.delete(next.key);
      this.scheduler.tasks.set(next.key, next);
      this.admit(next);
    }
  }

  /** The group's signal aborted. */
  handleEvent(): void {
    this.cancel(this.#signal!.reason);
  }

  /** The signal is watched only while a task is unsettled: catch up on an abort missed meanwhile. */
  #noticeAbort(): void {
    if (!this.cancelRequested && this.#signal?.aborted) {
      this.cancelRequested = true;
      this.reason = this.#signal.reason;
    }
  }

  cancel(reason: unknown): number {
    this.#noticeAbort();
    if (!this.cancelRequested) {
      this.cancelRequested = true;
      this.reason = reason === undefined
        ? abortError("The task group was cancelled")
        : reason;
    }
    let cancelled = 0;
    for (const task of [...this.tasks]) {
      if (this.scheduler.cancel(task, this.reason)) cancelled++;
    }
    return cancelled;
  }

  /** Resolves with the results once nothing is unsettled, even if tasks were added meanwhile. */
  async settledResults(): Promise<TaskResult<unknown>[]> {
    this.#awaiting++;
    try {
      // Checked before any await: results read at once when nothing is
      // unsettled, so a task added in the same tick is not among them.
      while (this.#unsettled > 0) await this.#nextIdle();
      return this.results();
    } finally {
      this.#awaiting--;
    }
  }

  /**
   * Resolves once nothing is unsettled, even if tasks were added meanwhile.
   * Unlike `settledResults`, it receives no failure: they go to `onError`.
   */
  async whenSettled(): Promise<void> {
    while (this.#unsettled > 0) await this.#nextIdle();
  }

  /** Resolves the next time nothing of the group is unsettled. */
  #nextIdle(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  results(): TaskResult<unknown>[] {
    return this.tasks.map((task): TaskResult<unknown> => {
      const { id, name, status, result } = task;
      if (status === "fulfilled") return { id, name, status, value: result };
      if (status === "rejected") return { id, name, status, error: result };
      return { id, name, status: "cancelled", reason: result };
    });
  }
}
