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
import { Queue } from "./_queue.ts";
import type { TaskGroupHooks, TaskRecord } from "./_task.ts";

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
  readonly #held: Queue<TaskRecord> = new Queue();
  #admitted = 0;
  #unsettled = 0;
  #waiters: (() => void)[] = [];

  constructor(
    scheduler: Scheduler,
    limit: number,
    failFast: boolean,
    signal: AbortSignal | undefined,
    setup: GroupSetup | undefined,
  ) {
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

  /** Passes a task on to the manager's queue, or holds it for a group slot. */
  admit(task: TaskRecord): void {
    if (this.#admitted < this.#limit) {
      this.#admitted++;
      task.admit();
      this.scheduler.enqueue(task);
    } else {
      this.#held.push(task);
    }
  }

  started(): void {
    this.#running++;
  }

  stopped(): void {
    this.#running--;
  }

  settled(task: TaskRecord): void {
    if (task.extra?.admitted) this.#admitted--;
    if (--this.#unsettled === 0) {
      this.#signal?.removeEventListener("abort", this);
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

  #promote(): void {
    while (!this.#cancelRequested && this.#admitted < this.#limit) {
      const next = this.#held.shift();
      if (next === undefined) return;
      if (next.status !== "pending" || next.cancelRequested) continue;
      this.scheduler.reorder(next);
      this.admit(next);
    }
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
