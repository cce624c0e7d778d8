// backgroundTasks(): puts a TaskScope of the shared manager at `c.var.tasks`,
// one per request, with the request's `waitUntil` where the host gives an
// execution context. Everything else is the core's own API.

import type { Context, MiddlewareHandler } from "hono";
import { schedulerOf } from "../core/_registry.ts";
import { BOOLEAN, checkOptions } from "../core/_validate.ts";
import type { TaskManager } from "../core/task_manager.ts";
import { TaskScope, type TaskScopeOptions } from "../core/task_scope.ts";

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
 * app.get("/", (c) => c.text(typeof c.var.tasks.run));
 * assert.equal(typeof app.fetch, "function");
 * ```
 */
export type BackgroundTasksEnv = { Variables: { tasks: TaskScope } };

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

/**
 * Makes the middleware that sets `c.var.tasks` for every request: a
 * {@linkcode TaskScope} of `manager`, whose `run`, `runWithResult` and
 * `group` are the manager's, with the request's `waitUntil` added.
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
  schedulerOf(where, manager, "the middleware");
  checkOptions(where, options);
  BOOLEAN.check(where, "executionContext", options?.executionContext);
  if (options?.executionContext === false) {
    // Nothing differs between requests: one scope serves them all.
    const scope = new TaskScope(manager);
    return function backgroundTasks(c, next) {
      c.set("tasks", scope);
      return next();
    };
  }
  return function backgroundTasks(c, next) {
    c.set("tasks", new TaskScope(manager, new RequestOptions(c)));
    return next();
  };
}

/**
 * A request's scope options: its `waitUntil`, looked up on its first task
 * only, so that requests that start none pay nothing. (Hono's
 * `c.executionCtx` getter throws where there is no execution context.)
 */
class RequestOptions implements TaskScopeOptions {
  readonly #c: Context;
  #probed = false;
  #waitUntil: ((promise: Promise<void>) => void) | undefined = undefined;

  constructor(c: Context) {
    this.#c = c;
  }

  get waitUntil(): ((promise: Promise<void>) => void) | undefined {
    if (!this.#probed) {
      this.#probed = true;
      this.#waitUntil = waitUntilOf(this.#c);
    }
    return this.#waitUntil;
  }
}

/** The request's `waitUntil`, if the host gave an execution context. */
function waitUntilOf(
  c: Context,
): ((promise: Promise<void>) => void) | undefined {
  let ctx: { waitUntil?: unknown } | null | undefined;
  try {
    ctx = c.executionCtx;
  } catch {
    return undefined;
  }
  if (typeof ctx?.waitUntil !== "function") return undefined;
  const host = ctx as { waitUntil(promise: Promise<unknown>): void };
  return (promise) => host.waitUntil(promise);
}
