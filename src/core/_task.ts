// One task of a TaskManager, as one object with five roles:
//
// 1. the scheduler's record of it: its status, when it started, whether its
//    cancellation was requested, and its outcome;
// 2. the public handle that `run` returns (typed `TaskHandle`), and that
//    `runWithResult` and `TaskGroup.add` return (typed `Task<T>`);
// 3. the context its function receives (typed `TaskContext`: `signal`, `id`,
//    `name`);
// 4. the listener on its external `signal` option (`handleEvent`), so that
//    no closure is made to watch it;
// 5. the source of its events' `task` snapshots (`snapshot`), taken only when
//    a listener reads `event.task`.
//
// Why one object: a running task costs 429 B of heap on Deno and 372 B on Bun
// (bench/memory.ts), against 381 B and 356 B for the least a manager with
// cancellation can keep (bench/_floor.ts), and the target is 450 B. A handle
// and a context of their own would add 32 + 32 B per task on Deno and
// 32 + 48 B on Bun (100,000 of each, heap after a forced GC), taking Deno to
// about 493 B; a closure to watch the external signal, 96 B and 80 B more
// for each task that has one. The types keep the roles apart: a caller sees
// only the handle's members, a function only the context's.
//
// Its state changes only through its own methods (`begin`, `requestCancel`,
// `expire`, `finish`, `admit`), which the scheduler and the group call.

import { backoffDelay, jittered } from "./_backoff.ts";
import { keepClassOf } from "./_classes.ts";
import { checkProgress, MAX_TIMEOUT } from "./_validate.ts";
import type {
  RetryOptions,
  Task,
  TaskContext,
  TaskFunction,
  TaskInfo,
  TaskStatus,
} from "./types.ts";

/** What a task needs of the scheduler that owns it. */
export interface TaskOwner {
  /** Requests the task's cancellation; see `Scheduler.cancel`. */
  cancel(task: TaskRecord, reason: unknown): boolean;
  /** The task reported progress (see `TaskRecord.progress`). */
  progressed(task: TaskRecord): void;
}

/** What a task needs of its group, if it has one (see _group.ts). */
export interface TaskGroupHooks {
  /** The group's cancellation was requested; later tasks never start. */
  readonly cancelRequested: boolean;
  /** Its reason. */
  readonly reason: unknown;
  /** An `awaitAll()` of the group is waiting: failures go there. */
  readonly awaited: boolean;
  /** Counts a new task of the group. */
  accept(task: TaskRecord): void;
  /** Passes the task on to the manager's queue, or holds it for a group slot. */
  admit(task: TaskRecord): void;
  /** One of its tasks started. */
  started(task: TaskRecord): void;
  /** One of its running tasks returned, and is about to settle or retry. */
  stopped(): void;
  /** One of its tasks failed an attempt and waits for the next one. */
  retrying(task: TaskRecord): void;
  /** One of its tasks settled. */
  settled(task: TaskRecord): void;
}

let lastId = 0;

/** One task: see the header of this file for its five roles. */
export class TaskRecord<T = unknown> implements Task<T>, TaskContext {
  /** The id as a number: the key of the scheduler's map (cheaper than a string). */
  readonly key: number = ++lastId;
  readonly name: string;
  readonly owner: TaskOwner;
  readonly group: TaskGroupHooks | undefined;
  status: TaskStatus = "pending";
  /** Milliseconds since the epoch when the function was called; 0 before. */
  startTime = 0;
  /** The function, until the task settles. */
  fn: TaskFunction<T> | undefined;
  /** Cancellation (or the timeout) was requested: from then on it decides the outcome. */
  cancelRequested = false;
  /**
   * Where it goes in a queue: higher first (the `priority` option). A field
   * of its own rather than in `extra`, so that a task with a priority does
   * not make the whole `extra` object: 8 B more per task on Deno (421 to
   * 429 B per running task), none on Bun (372 B), bench/memory.ts.
   */
  readonly priority: number;
  /**
   * One field, two meanings in turn (a field less per task): the
   * cancellation reason (or the `TimeoutError`) from the moment cancellation
   * is requested; otherwise, once the task settled, its value or error.
   * Before either, `undefined`.
   */
  result: unknown = undefined;
  /** State few tasks need, made on first use. */
  extra: TaskExtra | undefined = undefined;
  /** The task's own controller, made on the first read of `signal`, or never. */
  #controller: AbortController | undefined = undefined;

  constructor(
    owner: TaskOwner,
    group: TaskGroupHooks | undefined,
    name: string,
    fn: TaskFunction<T>,
    timeout: number | undefined,
    retry: RetryOptions | undefined,
    priority: number,
  ) {
    this.owner = owner;
    this.group = group;
    this.name = name;
    this.fn = fn;
    if (timeout !== undefined) this.more().timeout = timeout;
    if (retry !== undefined) this.more().retry = retry;
    this.priority = priority;
  }

  /** The extra state, made on first use. */
  more(): TaskExtra {
    return this.extra ??= new TaskExtra();
  }

  // --- the handle and the context ---------------------------------------

  get id(): string {
    return String(this.key);
  }

  get startedAt(): Date | undefined {
    return this.startTime === 0 ? undefined : new Date(this.startTime);
  }

  /** This attempt's number (see `RetryOptions`). */
  get attempt(): number {
    return this.extra?.attempt ?? 1;
  }

  /**
   * The context's `progress()`, bound to the task so that a function may
   * take it apart (`({ progress }) => ...`); made only when read.
   */
  get progress(): (value: unknown) => void {
    return (value) => {
      const kept = checkProgress(
        `Cannot report progress of task ${JSON.stringify(this.name)}`,
        value,
      );
      if (this.status !== "running") return;
      this.more().progress = kept;
      this.owner.progressed(this);
    };
  }

  /** The task's own signal, made on first read. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.cancelRequested) this.#controller.abort(this.result);
    }
    return this.#controller.signal;
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
    return this.owner.cancel(this, reason);
  }

  toJSON(): TaskInfo {
    return this.snapshot(this.status);
  }

  /** What `console.log` shows on Deno, Bun and Node: the task, not its machinery. */
  [Symbol.for("Deno.customInspect")](): string {
    return describe(this);
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return describe(this);
  }

  // --- the listener on the external signal -------------------------------

  /** The external `signal` option aborted. */
  handleEvent(): void {
    this.owner.cancel(this, this.extra!.external!.reason);
  }

  // --- the snapshot source -------------------------------------------------

  /** A snapshot, with the status given (an event's status at dispatch). */
  snapshot(status: TaskStatus): TaskInfo {
    return {
      id: this.id,
      name: this.name,
      status,
      startedAt: this.startedAt,
      attempt: this.attempt,
      progress: this.extra?.progress,
    };
  }

  // --- transitions, called by the scheduler and the group ------------------

  /** Watches the external `signal` option until the task settles. */
  watch(signal: AbortSignal): void {
    this.more().external = signal;
    signal.addEventListener("abort", this);
  }

  /**
   * The group passed it on to the manager's queue, taking one of its slots;
   * `reserve`: it also holds a start in the group's rate window until it
   * starts.
   */
  admit(reserve: boolean): void {
    const extra = this.more();
    extra.admitted = true;
    extra.reserved = reserve;
  }

  /** Gives back its group slot; `true` if it held one. */
  unadmit(): boolean {
    const extra = this.extra;
    if (extra?.admitted !== true) return false;
    extra.admitted = false;
    return true;
  }

  /** Gives back its start held in the group's rate window; `true` if it held one. */
  unreserve(): boolean {
    const extra = this.extra;
    if (extra?.reserved !== true) return false;
    extra.reserved = false;
    return true;
  }

  /** Its function is about to be called. */
  begin(): void {
    this.status = "running";
    this.startTime = Date.now();
  }

  /**
   * Records that cancellation is requested, with its reason, and aborts the
   * signal if the function has read it. `false` if it was requested already.
   */
  requestCancel(reason: unknown): boolean {
    if (this.cancelRequested) return false;
    this.cancelRequested = true;
    this.result = reason;
    this.#controller?.abort(reason);
    return true;
  }

  /** Hands `waitUntil` a promise that resolves when the task settles. */
  holdFor(waitUntil: (promise: Promise<void>) => void): void {
    waitUntil(new Promise<void>((resolve) => this.more().done = resolve));
  }

  /** Sets the timer of its timeout, if it has one: `fire(this)` when it elapses. */
  arm(fire: (task: TaskRecord<T>) => void): void {
    const timeout = this.extra?.timeout;
    if (timeout !== undefined) {
      this.extra!.timer = setTimeout(() => fire(this), timeout);
    }
  }

  /**
   * Its timeout elapsed: cancellation with a `TimeoutError`, unless it was
   * cancelled first. `true` if this made the request.
   */
  expire(): boolean {
    const extra = this.extra!;
    extra.timer = undefined;
    if (this.cancelRequested || this.status !== "running") return false;
    extra.timedOut = true;
    return this.requestCancel(
      new DOMException(
        `Task "${this.name}" timed out after ${extra.timeout} ms`,
        "TimeoutError",
      ),
    );
  }

  /**
   * Whether a `progress` event may go out at `now`, one per `interval` ms;
   * if so, it counts as gone out.
   */
  takeProgressSlot(now: number, interval: number): boolean {
    const extra = this.extra!;
    if (now - extra.progressAt < interval) return false;
    extra.progressAt = now;
    return true;
  }

  /**
   * After its running attempt returned with `failure`: the wait before the
   * next attempt, or `undefined` when there is none (no `retry`, attempts
   * used up, a cancellation rather than a failure, or `retryIf` said no).
   * A `retryIf` that throws ends the retries; what it threw is returned as
   * `thrown` for the scheduler to report.
   */
  retryDelay(failure: unknown): { delay?: number; thrown?: unknown } {
    const extra = this.extra;
    const retry = extra?.retry;
    if (retry === undefined || this.status !== "running") return {};
    if (this.cancelRequested && !extra!.timedOut) return {};
    const attempt = this.attempt;
    if (attempt >= (retry.attempts ?? 3)) return {};
    if (retry.retryIf !== undefined) {
      try {
        if (!retry.retryIf(failure, attempt)) return {};
      } catch (thrown) {
        return { thrown };
      }
    }
    const delay = backoffDelay(
      retry.backoff ?? 1000,
      attempt,
      retry.maxDelay ?? MAX_TIMEOUT,
    );
    return { delay: jittered(delay, retry.jitter ?? 0) };
  }

  /** No attempt follows the current one, whatever its outcome. */
  endRetries(): void {
    if (this.extra !== undefined) this.extra.retry = undefined;
  }

  /**
   * Its attempt failed and another follows in `delay` ms: it waits as a
   * pending task, with a fresh signal and timeout to come, and `resume(this)`
   * runs when the wait is over (unless it settled meanwhile).
   */
  waitToRetry(delay: number, resume: (task: TaskRecord<T>) => void): void {
    const extra = this.extra!;
    if (extra.timer !== undefined) {
      clearTimeout(extra.timer);
      extra.timer = undefined;
    }
    this.status = "pending";
    this.startTime = 0;
    this.cancelRequested = false;
    this.result = undefined;
    this.#controller = undefined;
    extra.timedOut = false;
    extra.progress = undefined;
    extra.timer = setTimeout(() => {
      extra.timer = undefined;
      extra.attempt = this.attempt + 1;
      resume(this);
    }, delay);
  }

  /**
   * Settles it: decides its status (a requested cancellation wins; a timeout
   * rejects), keeps its outcome, and lets go of its function, its timer and
   * its listener on the external signal. Returns the status.
   */
  finish(ok: boolean, result: unknown): TaskStatus {
    let status: TaskStatus;
    if (this.cancelRequested) {
      status = this.extra?.timedOut ? "rejected" : "cancelled";
    } else {
      status = ok ? "fulfilled" : "rejected";
      this.result = result;
    }
    this.status = status;
    this.fn = undefined;
    const extra = this.extra;
    if (extra !== undefined) {
      extra.external?.removeEventListener("abort", this);
      if (extra.timer !== undefined) {
        clearTimeout(extra.timer);
        extra.timer = undefined;
      }
    }
    return status;
  }

  /** `value` was read before it settled: the outcome goes there. */
  get hasReader(): boolean {
    return this.extra?.resolve !== undefined;
  }

  /** Settles the promise of `value` (see `hasReader`) with the outcome. */
  deliver(): void {
    const extra = this.extra!;
    if (this.status === "fulfilled") extra.resolve!(this.result);
    else extra.reject!(this.result);
  }

  /** Resolves the promise handed to `waitUntil`, if any. */
  release(): void {
    this.extra?.done?.();
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

/**
 * The fields of a task that only some tasks need: part of its TaskRecord,
 * written only by the record's own methods. (A class, so that every one has
 * the same shape.)
 */
export class TaskExtra {
  /** The task's timeout in milliseconds. */
  timeout: number | undefined = undefined;
  /** The per-run `signal` option. */
  external: AbortSignal | undefined = undefined;
  /**
   * The timer of its timeout while an attempt runs, or of the wait before
   * its next attempt; cleared when it settles.
   */
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** `value`, made on first read. */
  promise: Promise<unknown> | undefined = undefined;
  resolve: ((value: unknown) => void) | undefined = undefined;
  reject: ((error: unknown) => void) | undefined = undefined;
  /** Resolves the promise handed to `waitUntil`. */
  done: (() => void) | undefined = undefined;
  /** A group task that was passed on to the manager's queue, in a group slot. */
  admitted = false;
  /** An admitted group task that holds a start in its group's rate window. */
  reserved = false;
  /** The timeout, not a cancellation, aborted the task. */
  timedOut = false;
  /** The `retry` option (the task's, its origin's or the manager's). */
  retry: RetryOptions | undefined = undefined;
  /** The current attempt, from 2 once retried. */
  attempt: number | undefined = undefined;
  /** What the function last reported with `progress()`. */
  progress: unknown = undefined;
  /** When its last `progress` event went out, for the rate limit on them. */
  progressAt = 0;
}

// A record that never runs, for the hidden classes of a record and of its
// extra state (see _classes.ts): made, begun and finished as a task is, so
// that its fields have the representations a real task's end with.
{
  const exemplar = new TaskRecord(
    { cancel: () => false, progressed() {} },
    undefined,
    "",
    () => {},
    1000,
    undefined,
    0,
  );
  exemplar.begin();
  exemplar.finish(true, undefined);
  keepClassOf(exemplar);
}
