import {
  GroupCore,
  type GroupSetup,
  SETUP,
  type TaskResult,
} from "./_group.ts";
import { reportToConsole, Scheduler } from "./_scheduler.ts";
import {
  BOOLEAN,
  checkOptions,
  checkRate,
  CONCURRENCY,
  SIGNAL,
} from "./_validate.ts";
import type { RateLimit, RunOptions, Task, TaskFunction } from "./types.ts";

export type { TaskResult };

/** Options for {@linkcode TaskGroup}. */
export interface TaskGroupOptions {
  /**
   * Cancel the group's other tasks as soon as one is rejected (thrown, or
   * timed out). Cancellations do not trigger it.
   *
   * @default {false}
   */
  failFast?: boolean;
  /** Aborting it cancels every task of the group, with the signal's reason. */
  signal?: AbortSignal;
  /**
   * How many of the group's tasks may run at once, within the manager's own
   * limit. A positive integer or `Infinity`.
   *
   * @default {Infinity}
   */
  concurrency?: number;
  /**
   * At most `limit` of the group's tasks start in any window of `interval`
   * ms (within the manager's own limits); the others wait in the group, in
   * order, behind one timer.
   *
   * @default {none}
   */
  rate?: RateLimit;
}

/** The settings of the manager a group made with `new TaskGroup()` runs through. */
const OWN_MANAGER = {
  concurrency: Infinity,
  timeout: undefined,
  waitUntil: undefined,
  onError: reportToConsole,
};

/**
 * A set of tasks that finish, fail or are cancelled together: the three
 * thumbnails of one upload, the shards of one import.
 *
 * The invariant: {@linkcode TaskGroup.prototype.awaitAll} resolves when every
 * task added to the group has settled, including tasks added while it waits,
 * and it never rejects: each task's outcome is in its result.
 *
 * A group made by {@linkcode TaskManager.prototype.group} runs its tasks
 * through that manager: they show in its `activeTasks`, count against its
 * concurrency, dispatch its events and are cancelled by its shutdown. A group
 * made with `new TaskGroup()` runs them through a manager of its own.
 *
 * Compared with `Promise.allSettled`, a group can cancel its tasks (all at
 * once, on the first failure, or through a signal), limit how many run at once,
 * and keep a failure from going unnoticed: a failure that no waiting
 * `awaitAll()` receives is reported to the manager's `onError`.
 *
 * @example Make three thumbnails, cancelling the rest on the first failure
 * ```ts
 * import { TaskGroup } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const group = new TaskGroup({ failFast: true });
 * for (const size of [150, 300, 600]) {
 *   group.add(`thumb-${size}`, async ({ signal }) => {
 *     signal.throwIfAborted();
 *     return `photo-${size}.jpg`;
 *   });
 * }
 * const results = await group.awaitAll();
 * assert.deepEqual(
 *   results.map((r) => r.status === "fulfilled" ? r.value : r.status),
 *   ["photo-150.jpg", "photo-300.jpg", "photo-600.jpg"],
 * );
 * ```
 */
export class TaskGroup implements AsyncDisposable {
  readonly #core: GroupCore;

  /**
   * Makes a group.
   *
   * @param options `failFast`, a cancelling `signal`, a `concurrency` within
   * the group, and the `manager` to run through.
   * @throws {TypeError} An option of the wrong type.
   * @throws {RangeError} A `concurrency` out of range.
   */
  constructor(options: TaskGroupOptions = {}) {
    const where = "Cannot create TaskGroup";
    checkOptions(where, options);
    BOOLEAN.check(where, "failFast", options.failFast);
    SIGNAL.check(where, "signal", options.signal);
    CONCURRENCY.check(where, "concurrency", options.concurrency);
    checkRate(where, "rate", options.rate);
    if ("manager" in options) {
      throw new TypeError(
        `${where}: 'manager' is not an option: make a group that runs through a manager with manager.group()`,
      );
    }
    // Set by `manager.group()` and `TaskScope.group()`, under a symbol of
    // their own; a group made with `new` runs through a manager of its own.
    const setup = (options as { [SETUP]?: GroupSetup })[SETUP];
    this.#core = new GroupCore(
      setup?.scheduler ?? new Scheduler(new EventTarget(), OWN_MANAGER),
      options.concurrency ?? Infinity,
      options.failFast ?? false,
      options.signal,
      setup,
      options.rate,
    );
  }

  /**
   * Adds a task to the group. It starts as a task of the manager would, once
   * a slot of both the group and the manager is free. A task added after the
   * group was cancelled never starts: it settles as `"cancelled"` with the
   * group's reason.
   *
   * @param name What the task does.
   * @param fn The work; it receives `{ signal, id, name }`.
   * @param options A signal that cancels it, a timeout, a `waitUntil`.
   * @returns A {@linkcode Task} with a `value` promise.
   * @throws {TypeError} An empty name, a non-function, a non-signal `signal`.
   * @throws {RangeError} A `timeout` out of range.
   * @throws {ManagerClosedError} The manager is closed (see `closed`).
   *
   * @example Add while waiting
   * ```ts
   * import { TaskGroup } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const group = new TaskGroup();
   * group.add("crawl", () => {
   *   group.add("crawl-child", () => "child");
   *   return "parent";
   * });
   * const results = await group.awaitAll();
   * assert.deepEqual(results.map((r) => r.name), ["crawl", "crawl-child"]);
   * ```
   */
  add<T>(name: string, fn: TaskFunction<T>, options?: RunOptions): Task<T> {
    const core = this.#core;
    return core.scheduler.accept("add", name, fn, options, core);
  }

  /**
   * Waits until every task of the group has settled, including tasks added
   * while it waits, and returns their results in add order. It never rejects.
   * While it waits, the group's failures are delivered in its results
   * instead of to `onError`; once it resolved, later failures go to `onError`
   * again (or to the next `awaitAll()`).
   *
   * @returns One `{ id, name, status, value | error | reason }` per task.
   *
   * @example Read each outcome
   * ```ts
   * import { TaskGroup } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const group = new TaskGroup();
   * group.add("ok", () => 1);
   * group.add("bad", () => { throw new Error("boom"); });
   * const [ok, bad] = await group.awaitAll();
   * assert.equal(ok.status === "fulfilled" && ok.value, 1);
   * assert.equal(bad.status === "rejected" && (bad.error as Error).message, "boom");
   * ```
   */
  awaitAll(): Promise<TaskResult<unknown>[]> {
    const core = this.#core;
    return core.settledResults();
  }

  /**
   * Cancels every unsettled task of the group, and every task added later.
   *
   * @param reason The abort reason; by default a `DOMException` named `AbortError`.
   * @returns How many tasks this call cancelled.
   *
   * @example Cancel a group
   * ```ts
   * import { TaskGroup } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const group = new TaskGroup();
   * group.add("a", () => {});
   * assert.equal(group.cancel(), 1);
   * const [a] = await group.awaitAll();
   * assert.equal(a.status, "cancelled");
   * ```
   */
  cancel(reason?: unknown): number {
    return this.#core.cancel(reason);
  }

  /**
   * How many of the group's tasks are running.
   *
   * @example Count running group tasks
   * ```ts
   * import { TaskGroup } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const group = new TaskGroup();
   * const gate = Promise.withResolvers<void>();
   * group.add("wait", () => gate.promise);
   * await Promise.resolve();
   * assert.equal(group.activeCount, 1);
   * gate.resolve();
   * await group.awaitAll();
   * assert.equal(group.activeCount, 0);
   * ```
   */
  get activeCount(): number {
    return this.#core.running;
  }

  /**
   * `await using group = tasks.group()`: cancels what is left of the group
   * when the scope ends, and waits for it to settle. Nothing reads the
   * results: a task that fails meanwhile (say, its timeout elapsed while it
   * unwinds) is reported to `onError`, as for `run`.
   *
   * @returns A promise that resolves once every task of the group settled.
   *
   * @example Scope a group
   * ```ts
   * import { TaskGroup } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * let aborted = false;
   * {
   *   await using group = new TaskGroup();
   *   group.add("watch", ({ signal }) =>
   *     new Promise<void>((resolve) =>
   *       signal.addEventListener("abort", () => {
   *         aborted = true;
   *         resolve();
   *       })
   *     ));
   *   await Promise.resolve();
   * }
   * assert.equal(aborted, true);
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#core.cancel(undefined);
    // Not `awaitAll()`: nobody reads these results, so a task that fails
    // meanwhile (a timeout while it unwinds) is reported to `onError`.
    await this.#core.whenSettled();
  }
}
