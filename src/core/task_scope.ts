import { type GroupSetup, SETUP, type TaskResult } from "./_group.ts";
import { schedulerOf } from "./_registry.ts";
import type { Scheduler, TaskDefaults, TaskOrigin } from "./_scheduler.ts";
import { BOOLEAN, checkOptions, FUNCTION, TIMEOUT } from "./_validate.ts";
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
  /**
   * Whether the scope holds the manager open until {@linkcode TaskScope.prototype.release}:
   * a shutdown that begins meanwhile waits for the scope to be released (as
   * it waits for tasks, within its `timeout`) and lets it start tasks until
   * then, so that a request already in its handler finishes normally, the
   * tasks it starts included. Read once, when the scope is made. A scope
   * made once the manager is closed holds nothing.
   *
   * @default {false}
   */
  readonly hold?: boolean;
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
export class TaskScope implements Disposable {
  readonly #manager: TaskManager;
  readonly #scheduler: Scheduler;
  readonly #origin: ScopeOrigin;

  /**
   * Makes a scope over `manager`.
   *
   * @param manager The manager its tasks run through.
   * @param options What each task gets where its own options say nothing.
   * @throws {TypeError} `manager` is not a TaskManager, or `options` is not an object.
   */
  constructor(manager: TaskManager, options: TaskScopeOptions = {}) {
    const where = "Cannot create TaskScope";
    const scheduler = schedulerOf(where, manager, "the scope");
    checkOptions(where, options);
    BOOLEAN.check(where, "hold", options.hold);
    this.#scheduler = scheduler;
    this.#manager = manager;
    this.#origin = new ScopeOrigin(
      options,
      options.hold === true && scheduler.hold(),
    );
  }

  /**
   * Whether the scope holds the manager: made with `hold: true` while the
   * manager was open, and not released yet.
   *
   * @example Held until released
   * ```ts
   * import { TaskManager, TaskScope } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const scope = new TaskScope(new TaskManager(), { hold: true });
   * assert.equal(scope.held, true);
   * scope.release();
   * assert.equal(scope.held, false);
   * ```
   */
  get held(): boolean {
    return this.#origin.held;
  }

  /**
   * Stops holding the manager (see the `hold` option): a shutdown no longer
   * waits for this scope, and once the manager is closed the scope's new
   * tasks are refused as the manager's are. Calling it again does nothing.
   * The scope's tasks already accepted are not affected.
   *
   * @example A request that holds a shutdown until it is answered
   * ```ts
   * import { TaskManager, TaskScope } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * const request = new TaskScope(tasks, { hold: true });
   * const shutdown = tasks.shutdown({ timeout: 1000 });
   * // The shutdown began, but this request is still in its handler:
   * request.run("send-confirmation", () => {});
   * request.release(); // the response is out
   * const report = await shutdown;
   * assert.equal(report.completed, 1);
   * ```
   */
  release(): void {
    if (this.#origin.held) {
      this.#origin.held = false;
      this.#scheduler.release();
    }
  }

  /**
   * `using scope = new TaskScope(tasks, { hold: true })`: releases the scope
   * when the block ends.
   *
   * @example Release at the end of a block
   * ```ts
   * import { TaskManager, TaskScope } from "@background/tasks";
   * import assert from "node:assert/strict";
   *
   * const scope = new TaskScope(new TaskManager(), { hold: true });
   * scope[Symbol.dispose]();
   * assert.equal(scope.held, false);
   * ```
   */
  [Symbol.dispose](): void {
    this.release();
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
   * @throws {ManagerClosedError} The manager is closed (see `closed`).
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
    return this.#scheduler.accept("run", name, fn, options, this.#origin);
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
   * @throws {ManagerClosedError} The manager is closed (see `closed`).
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
      this.#origin,
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
      defaults: this.#origin.defaults,
      holder: this.#origin,
    };
    return new TaskGroup({ ...options, [SETUP]: setup } as TaskGroupOptions);
  }
}

/**
 * A scope as the scheduler sees each of its tasks' origin: its defaults, read
 * from the options each time (and checked), and whether it holds the manager.
 */
class ScopeOrigin implements TaskOrigin {
  readonly group: undefined = undefined;
  readonly #options: TaskScopeOptions;
  held: boolean;

  constructor(options: TaskScopeOptions, held: boolean) {
    this.#options = options;
    this.held = held;
  }

  /** The scope's options, read now and checked. */
  get defaults(): TaskDefaults {
    const { timeout, waitUntil } = this.#options;
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
