import { type GroupSetup, SETUP, type TaskResult } from "./_group.ts";
import { schedulerOf } from "./_registry.ts";
import type { Scheduler } from "./_scheduler.ts";
import { checkOptions, checkTask, FUNCTION, TIMEOUT } from "./_validate.ts";
import { TaskGroup, type TaskGroupOptions } from "./task_group.ts";
import type { TaskManager } from "./task_manager.ts";
import type { RunOptions, Task, TaskFunction, TaskHandle } from "./types.ts";

export type { TaskResult };

/**
 * Options for {@linkcode TaskScope}: what every task started through the
 * scope gets where its own options say nothing. They are read each time a
 * task or a group starts through the scope, not when it is made, so a getter
 * may work a value out on first use (the Hono middleware looks up the
 * request's execution context that way, only for requests that start a task).
 */
export interface TaskScopeOptions {
  /**
   * A timeout for each task that sets none, in milliseconds.
   *
   * @default {the manager's `timeout`, or none}
   */
  readonly timeout?: number;
  /**
   * Called once per task with a promise that resolves when the task settles
   * (see {@linkcode RunOptions.waitUntil}), for each task that sets none: on
   * Cloudflare Workers, `(p) => ctx.waitUntil(p)` with the request's `ctx`.
   *
   * @default {the manager's `waitUntil`, or none}
   */
  readonly waitUntil?: (promise: Promise<void>) => void;
}

/**
 * A view of a {@linkcode TaskManager} for one unit of work, a request say,
 * that gives every task it starts the same options: the request's
 * `waitUntil` on an edge host, a timeout. Its tasks are the manager's tasks
 * (its concurrency, `activeTasks`, events, `onError` and shutdown); only
 * their options differ.
 *
 * It exists so that code that hands a manager around (the Hono middleware
 * puts one at `c.var.tasks` for each request) adds per-request options in
 * one place, with the manager's own methods and types: `run`,
 * `runWithResult` and `group` take and return what the manager's do.
 *
 * The invariant: a task started through the scope runs as if started on the
 * manager with the scope's options merged under its own, groups' tasks
 * included; a task's own option always wins.
 *
 * @example Register every task of a Cloudflare Worker request with waitUntil
 * ```ts
 * import { TaskManager, TaskScope } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const kept: Promise<void>[] = [];
 * const ctx = { waitUntil: (promise: Promise<void>) => void kept.push(promise) };
 *
 * const request = new TaskScope(tasks, { waitUntil: (p) => ctx.waitUntil(p) });
 * request.run("send-confirmation", () => {});
 * const thumbnails = request.group();
 * thumbnails.add("thumb-150", () => 150);
 * assert.equal(kept.length, 2);
 * await Promise.all(kept); // resolves once both tasks settled
 * assert.equal(tasks.activeCount + tasks.pendingCount, 0);
 * ```
 */
export class TaskScope {
  readonly #manager: TaskManager;
  readonly #scheduler: Scheduler;
  readonly #options: TaskScopeOptions;

  /**
   * Makes a scope over `manager`.
   *
   * @param manager The manager its tasks run through.
   * @param options What each task gets where its own options say nothing.
   * @throws {TypeError} `manager` is not a TaskManager, or `options` is not an object.
   */
  constructor(manager: TaskManager, options: TaskScopeOptions = {}) {
    const where = "Cannot create TaskScope";
    this.#scheduler = schedulerOf(where, manager, "the scope");
    checkOptions(where, options);
    this.#manager = manager;
    this.#options = options;
  }

  /**
   * The manager, for everything a scope does not start: `activeTasks`,
   * `cancel`, events, `shutdown`.
   *
   * @example Reach the manager
   * ```ts
   * import { TaskManager, TaskScope } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * assert.equal(new TaskScope(tasks).manager, tasks);
   * ```
   */
  get manager(): TaskManager {
    return this.#manager;
  }

  /**
   * Starts a fire-and-forget task on the manager, as
   * {@linkcode TaskManager.prototype.run} does, with the scope's options
   * where `options` says nothing.
   *
   * @param name What the task does.
   * @param fn The work; it receives `{ signal, id, name }`.
   * @param options A signal that cancels it, a timeout, a `waitUntil`.
   * @returns A handle with the task's `id`, `status` and `cancel()`.
   * @throws {TypeError} An empty name, a non-function, an option (or a scope
   * option) of the wrong type.
   * @throws {RangeError} A `timeout` out of range.
   * @throws {Error} The manager is shut down.
   *
   * @example A timeout for the request's tasks
   * ```ts
   * import { TaskManager, TaskScope } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager({ onError: () => {} });
   * const scope = new TaskScope(tasks, { timeout: 5 });
   * let reason: unknown;
   * scope.run("hang", ({ signal }) =>
   *   new Promise<void>((resolve) =>
   *     signal.addEventListener("abort", () => {
   *       reason = signal.reason;
   *       resolve();
   *     })
   *   ));
   * await tasks.idle();
   * assert.equal((reason as DOMException).name, "TimeoutError");
   * ```
   */
  run(
    name: string,
    fn: TaskFunction<unknown>,
    options?: RunOptions,
  ): TaskHandle {
    return this.#scheduler.accept(
      "run",
      name,
      fn,
      options,
      undefined,
      this.#defaults(),
    );
  }

  /**
   * Starts a task whose result you want, as
   * {@linkcode TaskManager.prototype.runWithResult} does, with the scope's
   * options where `options` says nothing.
   *
   * @param name What the task does.
   * @param fn The work; it receives `{ signal, id, name }`.
   * @param options A signal that cancels it, a timeout, a `waitUntil`.
   * @returns A {@linkcode Task} with a `value` promise.
   * @throws {TypeError} An empty name, a non-function, an option (or a scope
   * option) of the wrong type.
   * @throws {RangeError} A `timeout` out of range.
   * @throws {Error} The manager is shut down.
   *
   * @example Wait for a result
   * ```ts
   * import { TaskManager, TaskScope } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const scope = new TaskScope(new TaskManager());
   * const report = scope.runWithResult("report", () => "/reports/7.pdf");
   * assert.equal(await report.value, "/reports/7.pdf");
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
      this.#defaults(),
    );
  }

  /**
   * Makes a {@linkcode TaskGroup} on the manager, as
   * {@linkcode TaskManager.prototype.group} does, whose tasks get the
   * scope's options where their own say nothing.
   *
   * @param options `failFast`, a `signal` that cancels the group, a `concurrency` within the group.
   * @returns The group.
   * @throws {TypeError} An option (or a scope option) of the wrong type.
   *
   * @example A group under a scope
   * ```ts
   * import { TaskManager, TaskScope } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const scope = new TaskScope(new TaskManager());
   * const group = scope.group({ failFast: true });
   * group.add("a", () => 1);
   * const [a] = await group.awaitAll();
   * assert.equal(a.status, "fulfilled");
   * ```
   */
  group(options: TaskGroupOptions = {}): TaskGroup {
    checkOptions("Cannot create TaskGroup", options);
    const setup: GroupSetup = {
      scheduler: this.#scheduler,
      defaults: this.#defaults(),
    };
    return new TaskGroup({ ...options, [SETUP]: setup } as TaskGroupOptions);
  }

  /** The scope's options, read now and checked. */
  #defaults(): TaskScopeOptions {
    const options = this.#options;
    const { timeout, waitUntil } = options;
    if (!TIMEOUT.test(timeout) || !FUNCTION.test(waitUntil)) {
      const where = "A TaskScope's options";
      TIMEOUT.check(where, "timeout", timeout);
      FUNCTION.check(where, "waitUntil", waitUntil);
    }
    // Read once, so that a getter runs once per task.
    return timeout === undefined && waitUntil === undefined
      ? NO_DEFAULTS
      : { timeout, waitUntil };
  }
}

const NO_DEFAULTS: TaskScopeOptions = Object.freeze({});
