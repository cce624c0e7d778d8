// The state behind one TaskGroup: its tasks in add order, its own
// concurrency limit, its cancellation, and the waiters of `awaitAll()`. Its
// tasks are the manager's tasks: this core holds them back until a group slot
// is free, then hands them to the manager's scheduler, which calls back
// `started` and `settled`. Every field here changes only in this class's
// methods.

import {
  abortError,
  type Scheduler,
  type TaskDefaults,
  type TaskOrigin,
} from "./_scheduler.ts";
import { PriorityQueue } from "./_queue.ts";
import { RateWindow } from "./_rate.ts";
import type { TaskGroupHooks, TaskRecord } from "./_task.ts";
import type { RateLimit } from "./types.ts";

/** One result of `TaskGroup.awaitAll`. */
export type TaskResult<T> =
  | { id: string; name: string; status: "fulfilled"; value: T }
  | { id: string; name: string; status: "rejected"; error: unknown }
  | { id: string; name: string; status: "cancelled"; reason: unknown };

/**
 * How `manager.group()` and `TaskScope.group()` hand a new TaskGroup the
 * scheduler it runs through and the defaults of its tasks: under this symbol,
 * in its options, where no caller of `new TaskGroup()` can put them by
 * accident.
 */
export const SETUP: unique symbol = Symbol("TaskGroup setup");

/** What is passed under {@linkcode SETUP}. */
export interface GroupSetup {
  readonly scheduler: Scheduler;
  readonly defaults: TaskDefaults | undefined;
  /** The scope that made the group, whose hold its tasks share; or none. */
  readonly holder: { readonly held: boolean } | undefined;
}

/** The state behind one TaskGroup. */
export class GroupCore implements TaskGroupHooks, TaskOrigin {
  readonly scheduler: Scheduler;
  /** What its tasks take where their own options say nothing (a scope's). */
  readonly defaults: TaskDefaults | undefined;
  readonly #holder: { readonly held: boolean } | undefined;
  /** Every task added, in add order. */
  readonly #tasks: TaskRecord[] = [];
  #running = 0;
  /** How many awaitAll() calls wait: while one does, failures go there instead of to `onError`. */
  #awaiting = 0;
  #cancelRequested = false;
  #reason: unknown = undefined;
  readonly #limit: number;
  readonly #failFast: boolean;
  readonly #signal: AbortSignal | undefined;
  /** Tasks waiting for a group slot before they enter the manager's queue. */
  readonly #held: PriorityQueue<TaskRecord> = new PriorityQueue();
  /** How many tasks wait in `#held` (cancelled ones included until skipped). */
  #heldCount = 0;
  /** Tasks in a group slot: passed on to the manager, not yet settled. */
  #admitted = 0;
  /**
   * The group's rate limit. A task is admitted only if its start fits in
   * the window with the starts already promised (`#reserved`: admitted, not
   * started), so that however long it waits in the manager's queue, no
   * window ever holds more than `limit` starts.
   */
  readonly #rate: RateWindow | undefined;
  #reserved = 0;
  #rateTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #unsettled = 0;
  #waiters: (() => void)[] = [];

  constructor(
    scheduler: Scheduler,
    limit: number,
    failFast: boolean,
    signal: AbortSignal | undefined,
    setup: GroupSetup | undefined,
    rate: RateLimit | undefined,
  ) {
    this.#rate = rate && new RateWindow(rate.limit, rate.interval);
    this.scheduler = scheduler;
    this.defaults = setup?.defaults;
    this.#holder = setup?.holder;
    this.#limit = limit;
    this.#failFast = failFast;
    this.#signal = signal;
    this.#noticeAbort();
  }

  /** As a task's origin: the group itself. */
  get group(): TaskGroupHooks {
    return this;
  }

  /** Whether the scope that made it still holds the manager. */
  get held(): boolean {
    return this.#holder?.held ?? false;
  }

  /** How many of its tasks run. */
  get running(): number {
    return this.#running;
  }

  get awaited(): boolean {
    return this.#awaiting > 0;
  }

  get cancelRequested(): boolean {
    return this.#cancelRequested;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** Counts a new task; the group's signal is watched only while one is unsettled. */
  accept(task: TaskRecord): void {
    this.#noticeAbort();
    this.#tasks.push(task);
    if (this.#unsettled++ === 0) this.#signal?.addEventListener("abort", this);
  }

  /**
   * Passes a task on to the manager's queue, or holds it, in priority and
   * then queue order, until a group slot (and the group's rate) lets it in.
   */
  admit(task: TaskRecord): void {
    if (
      this.#heldCount === 0 && this.#admitted < this.#limit &&
      this.#rateAllows()
    ) {
      this.#pass(task);
    } else {
      this.#held.push(task);
      this.#heldCount++;
      this.#promote();
    }
  }

  started(task: TaskRecord): void {
    this.#running++;
    if (this.#rate !== undefined) {
      this.#rate.record(Date.now());
      if (task.unreserve()) this.#reserved--;
      // The window changed: set the timer for the next held task, if any.
      this.#promote();
    }
  }

  stopped(): void {
    this.#running--;
  }

  retrying(task: TaskRecord): void {
    this.#giveBack(task);
    this.#promote();
  }

  settled(task: TaskRecord): void {
    this.#giveBack(task);
    if (--this.#unsettled === 0) {
      this.#signal?.removeEventListener("abort", this);
      clearTimeout(this.#rateTimer);
      this.#rateTimer = undefined;
    }
    if (
      this.#failFast && task.status === "rejected" && !this.#cancelRequested
    ) {
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

  /** A task leaves its group slot, and its promised start if it held one. */
  #giveBack(task: TaskRecord): void {
    if (task.unadmit()) this.#admitted--;
    if (task.unreserve()) this.#reserved--;
  }

  /** Lets held tasks in while a slot, and the rate, allow. */
  #promote(): void {
    while (
      !this.#cancelRequested && this.#heldCount > 0 &&
      this.#admitted < this.#limit && this.#rateAllows()
    ) {
      const next = this.#held.shift()!;
      this.#heldCount--;
      if (next.status !== "pending" || next.cancelRequested) continue;
      // Re-inserted, so that the manager's map keeps running tasks in start order.
      this.scheduler.reorder(next);
      this.#pass(next);
    }
  }

  /** Gives a task a group slot (and a promised start) and queues it in the manager. */
  #pass(task: TaskRecord): void {
    this.#admitted++;
    const reserve = this.#rate !== undefined;
    if (reserve) this.#reserved++;
    task.admit(reserve);
    this.scheduler.enqueue(task);
  }

  /** Whether the group's rate lets one more task in; if not, one timer waits for it. */
  #rateAllows(): boolean {
    if (this.#rate === undefined) return true;
    const at = this.#rate.nextAt(this.#reserved);
    const now = Date.now();
    if (at <= now) return true;
    // Infinity: the promised starts fill the window; a start frees one.
    if (at !== Infinity) {
      this.#rateTimer ??= setTimeout(() => {
        this.#rateTimer = undefined;
        this.#promote();
      }, at - now);
    }
    return false;
  }

  /** The group's signal aborted. */
  handleEvent(): void {
    this.cancel(this.#signal!.reason);
  }

  /** The signal is watched only while a task is unsettled: catch up on an abort missed meanwhile. */
  #noticeAbort(): void {
    if (!this.#cancelRequested && this.#signal?.aborted) {
      this.#cancelRequested = true;
      this.#reason = this.#signal.reason;
    }
  }

  cancel(reason: unknown): number {
    this.#noticeAbort();
    if (!this.#cancelRequested) {
      this.#cancelRequested = true;
      this.#reason = reason === undefined
        ? abortError("The task group was cancelled")
        : reason;
    }
    let cancelled = 0;
    for (const task of [...this.#tasks]) {
      if (this.scheduler.cancel(task, this.#reason)) cancelled++;
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
      return this.#results();
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

  #results(): TaskResult<unknown>[] {
    return this.#tasks.map((task): TaskResult<unknown> => {
      const { id, name, status, result } = task;
      if (status === "fulfilled") return { id, name, status, value: result };
      if (status === "rejected") return { id, name, status, error: result };
      return { id, name, status: "cancelled", reason: result };
    });
  }
}
