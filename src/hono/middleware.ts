import type { Context, MiddlewareHandler } from "hono";
import { checkBoolean, checkOptions, show } from "../core/_validate.ts";
import type {
  TaskGroup,
  TaskGroupOptions,
  TaskResult,
} from "../core/task_group.ts";
import { TaskManager } from "../core/task_manager.ts";
import type {
  RunOptions,
  Task,
  TaskFunction,
  TaskHandle,
} from "../core/types.ts";

/**
 * The per-request facade at `c.var.tasks`: the shared manager's methods, with
 * the request's `waitUntil` added to every task where the host has one.
 *
 * @example Generate a report and answer with its id at once
 * ```ts
 * import { Hono } from "hono";
 * import { TaskManager } from "@background/tasks";
 * import { backgroundTasks, type BackgroundTasksEnv } from "@background/tasks/hono";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const reports = new Map<string, Promise<string>>();
 * const app = new Hono<BackgroundTasksEnv>();
 * app.use(backgroundTasks(tasks));
 * app.post("/reports", (c) => {
 *   const report = c.var.tasks.runWithResult("report", async () => "/reports/7.pdf");
 *   reports.set(report.id, report.value);
 *   return c.json({ id: report.id }, 202);
 * });
 *
 * const response = await app.request("/reports", { method: "POST" });
 * const { id } = await response.json();
 * assert.equal(await reports.get(id), "/reports/7.pdf");
 * ```
 */
export interface RequestTasks {
  /** The shared manager, for everything the facade does not wrap. */
  readonly manager: TaskManager;
  /**
   * Starts a fire-and-forget task, as {@linkcode TaskManager.prototype.run}
   * does, registered with the request's `waitUntil` where there is one.
   *
   * @param name What the task does.
   * @param fn The work; it receives `{ signal, id, name }`.
   * @param options A signal that cancels it, a timeout, a `waitUntil`. A
   * `waitUntil` given here is used instead of the request's.
   * @returns A handle with the task's `id`, `status` and `cancel()`.
   */
  run(
    name: string,
    fn: TaskFunction<unknown>,
    options?: RunOptions,
  ): TaskHandle;
  /**
   * Starts a task whose result you want, as
   * {@linkcode TaskManager.prototype.runWithResult} does, registered with the
   * request's `waitUntil` where there is one.
   *
   * @param name What the task does.
   * @param fn The work; it receives `{ signal, id, name }`.
   * @param options A signal that cancels it, a timeout, a `waitUntil`. A
   * `waitUntil` given here is used instead of the request's.
   * @returns A {@linkcode Task} with a `value` promise.
   */
  runWithResult<T>(
    name: string,
    fn: TaskFunction<T>,
    options?: RunOptions,
  ): Task<T>;
  /**
   * Makes a group on the shared manager, as
   * {@linkcode TaskManager.prototype.group} does, whose `add` registers each
   * task with the request's `waitUntil` where there is one.
   *
   * @param options `failFast`, a `signal` that cancels the group, a `concurrency` within the group.
   * @returns The group.
   */
  group(options?: Omit<TaskGroupOptions, "manager">): RequestTaskGroup;
}

/**
 * A {@linkcode TaskGroup} made through `c.var.tasks.group()`: its `add`
 * registers each task with the request's `waitUntil` where there is one.
 * `group` is the `TaskGroup` itself, for anything else.
 *
 * @example Thumbnails of one upload, cancelled together on the first failure
 * ```ts
 * import { Hono } from "hono";
 * import { TaskManager } from "@background/tasks";
 * import { backgroundTasks, type BackgroundTasksEnv } from "@background/tasks/hono";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const app = new Hono<BackgroundTasksEnv>();
 * app.use(backgroundTasks(tasks));
 * let done: Promise<string[]> | undefined;
 * app.post("/upload", (c) => {
 *   const thumbnails = c.var.tasks.group({ failFast: true });
 *   for (const size of [150, 300]) {
 *     thumbnails.add(`thumb-${size}`, () => `photo-${size}.jpg`);
 *   }
 *   done = thumbnails.awaitAll().then((results) => results.map((r) => r.status));
 *   return c.body(null, 202);
 * });
 *
 * await app.request("/upload", { method: "POST" });
 * assert.deepEqual(await done, ["fulfilled", "fulfilled"]);
 * ```
 */
export interface RequestTaskGroup {
  /** The group itself. */
  readonly group: TaskGroup;
  /** How many of the group's tasks are running. */
  readonly activeCount: number;
  /**
   * Adds a task, as {@linkcode TaskGroup.prototype.add} does.
   *
   * @param name What the task does.
   * @param fn The work; it receives `{ signal, id, name }`.
   * @param options A signal that cancels it, a timeout, a `waitUntil`. A
   * `waitUntil` given here is used instead of the request's.
   * @returns A {@linkcode Task} with a `value` promise.
   */
  add<T>(name: string, fn: TaskFunction<T>, options?: RunOptions): Task<T>;
  /**
   * Waits until every task of the group has settled, as
   * {@linkcode TaskGroup.prototype.awaitAll} does. It never rejects.
   *
   * @returns One `{ id, name, status, value | error | reason }` per task.
   */
  awaitAll(): Promise<TaskResult<unknown>[]>;
  /**
   * Cancels every unsettled task of the group, as
   * {@linkcode TaskGroup.prototype.cancel} does.
   *
   * @param reason The abort reason; by default a `DOMException` named `AbortError`.
   * @returns How many tasks this call cancelled.
   */
  cancel(reason?: unknown): number;
}

/**
 * The Hono environment the middleware provides: type your app with it
 * (`new Hono<BackgroundTasksEnv>()`) to get a typed `c.var.tasks`.
 *
 * @example Combine with your own bindings
 * ```ts
 * import { Hono } from "hono";
 * import type { BackgroundTasksEnv } from "@background/tasks/hono";
 * import assert from "node:assert/strict";
 *
 * type Env = BackgroundTasksEnv & { Bindings: { MAIL_FROM: string } };
 * const app = new Hono<Env>();
 * app.get("/", (c) => c.text(typeof c.var.tasks));
 * assert.equal(typeof app.fetch, "function");
 * ```
 */
export type BackgroundTasksEnv = { Variables: { tasks: RequestTasks } };

/** Options for {@linkcode backgroundTasks}. */
export interface BackgroundTasksOptions {
  /**
   * Whether a request's tasks look for its execution context
   * (`c.executionCtx`) to register with its `waitUntil`. Leave it on wherever
   * the host may give one: Cloudflare Workers, Vercel and Netlify handlers,
   * `app.request(path, init, env, ctx)` in tests. Turn it off in a server
   * that never does (`Deno.serve`, `Bun.serve`, Node): there Hono's getter
   * throws, and the error it makes costs every request with a task about
   * 2–8 µs on Deno and 0.6 µs on Bun (bench/request.ts). Off, tasks are
   * never registered with an execution context, even when a request has one.
   *
   * @default {true}
   */
  executionContext?: boolean;
}

type WaitUntil = (promise: Promise<void>) => void;

/**
 * The request's `waitUntil`, if the host gave an execution context. Hono's
 * `c.executionCtx` getter throws where there is none (Deno, Bun, Node).
 */
function waitUntilOf(c: Context): WaitUntil | undefined {
  let ctx: unknown;
  try {
    ctx = c.executionCtx;
  } catch {
    return undefined;
  }
  const target = ctx as { waitUntil?: unknown } | null | undefined;
  if (typeof target?.waitUntil !== "function") return undefined;
  return (promise) =>
    (target as { waitUntil(promise: Promise<unknown>): void }).waitUntil(
      promise,
    );
}

/** Adds the request's `waitUntil` to a task's options, unless it has one. */
function withWaitUntil(
  waitUntil: WaitUntil | undefined,
  options: RunOptions | undefined,
): RunOptions | undefined {
  if (waitUntil === undefined) return options;
  if (options === undefined) return { waitUntil };
  // Leave options of the wrong type, and a caller's own waitUntil, as given:
  // the manager reports the former.
  if (options === null || typeof options !== "object") return options;
  if (options.waitUntil !== undefined) return options;
  // Read, not spread: a getter or an inherited option counts, as it does for
  // the manager.
  return { signal: options.signal, timeout: options.timeout, waitUntil };
}

class Facade implements RequestTasks {
  readonly manager: TaskManager;
  readonly #c: Context;
  #probed: boolean;
  #waitUntil: WaitUntil | undefined = undefined;

  constructor(manager: TaskManager, c: Context, probe: boolean) {
    this.manager = manager;
    this.#c = c;
    this.#probed = !probe;
  }

  /**
   * A task's options with the request's `waitUntil` added; the execution
   * context is probed once, on the request's first task.
   */
  options(options: RunOptions | undefined): RunOptions | undefined {
    if (!this.#probed) {
      this.#probed = true;
      this.#waitUntil = waitUntilOf(this.#c);
    }
    return withWaitUntil(this.#waitUntil, options);
  }

  run(
    name: string,
    fn: TaskFunction<unknown>,
    options?: RunOptions,
  ): TaskHandle {
    return this.manager.run(name, fn, this.options(options));
  }

  runWithResult<T>(
    name: string,
    fn: TaskFunction<T>,
    options?: RunOptions,
  ): Task<T> {
    return this.manager.runWithResult(name, fn, this.options(options));
  }

  group(options?: Omit<TaskGroupOptions, "manager">): RequestTaskGroup {
    return new GroupFacade(this.manager.group(options), this);
  }
}

class GroupFacade implements RequestTaskGroup {
  readonly group: TaskGroup;
  readonly #tasks: Facade;

  constructor(group: TaskGroup, tasks: Facade) {
    this.group = group;
    this.#tasks = tasks;
  }

  get activeCount(): number {
    return this.group.activeCount;
  }

  add<T>(name: string, fn: TaskFunction<T>, options?: RunOptions): Task<T> {
    return this.group.add(name, fn, this.#tasks.options(options));
  }

  awaitAll(): Promise<TaskResult<unknown>[]> {
    return this.group.awaitAll();
  }

  cancel(reason?: unknown): number {
    return this.group.cancel(reason);
  }
}

/**
 * Makes the middleware that sets `c.var.tasks` for every request: a
 * {@linkcode RequestTasks} facade over `manager`.
 *
 * Every task started through it on a host with an execution context
 * (Cloudflare Workers) is registered with `c.executionCtx.waitUntil`, with a
 * promise that resolves when the task settles, unless the task's options
 * carry a `waitUntil` of their own; that replaces the manager's `waitUntil`
 * for the task, as any per-task `waitUntil` does. Elsewhere nothing is
 * registered. The execution context is looked up once per request, on its
 * first task, so requests that start none pay nothing; a server that never
 * has one can skip the lookup with `{ executionContext: false }`.
 *
 * The manager is shared by all requests: its concurrency limit, `onError`,
 * events and `shutdown()` cover every request's tasks.
 *
 * @param manager The manager the tasks run through.
 * @param options Whether to look for an execution context.
 * @returns A Hono middleware.
 * @throws {TypeError} `manager` is not a {@linkcode TaskManager}, or an
 * option has the wrong type.
 *
 * @example Keep a Cloudflare Worker alive until the task settles
 * ```ts
 * import { Hono } from "hono";
 * import type { ExecutionContext } from "hono";
 * import { TaskManager } from "@background/tasks";
 * import { backgroundTasks, type BackgroundTasksEnv } from "@background/tasks/hono";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const app = new Hono<BackgroundTasksEnv>();
 * app.use(backgroundTasks(tasks));
 * app.post("/upload", (c) => {
 *   const group = c.var.tasks.group();
 *   for (const size of [150, 300]) group.add(`thumb-${size}`, () => size);
 *   return c.body(null, 202);
 * });
 *
 * // What the Workers runtime passes to app.fetch(request, env, ctx):
 * const kept: Promise<unknown>[] = [];
 * const ctx: ExecutionContext = {
 *   waitUntil: (promise) => { kept.push(promise); },
 *   passThroughOnException: () => {},
 *   props: {},
 * };
 * const response = await app.request("/upload", { method: "POST" }, {}, ctx);
 * assert.equal(response.status, 202);
 * assert.equal(kept.length, 2);
 * await Promise.all(kept); // resolves once both thumbnails settled
 * assert.equal(tasks.activeCount + tasks.pendingCount, 0);
 * ```
 */
export function backgroundTasks(
  manager: TaskManager,
  options?: BackgroundTasksOptions,
): MiddlewareHandler<BackgroundTasksEnv> {
  const where = "Cannot create backgroundTasks middleware";
  if (!(manager instanceof TaskManager)) {
    const twin =
      (manager as object | null)?.constructor?.name === "TaskManager";
    throw new TypeError(
      `${where}: 'manager' must be a TaskManager, received ${show(manager)}${
        twin
          ? " from another copy of @background/tasks: import the manager and the middleware from the same one"
          : ""
      }`,
    );
  }
  checkOptions(where, options);
  checkBoolean(where, "executionContext", options?.executionContext);
  const probe = options?.executionContext ?? true;
  return (c, next) => {
    c.set("tasks", new Facade(manager, c, probe));
    return next();
  };
}
