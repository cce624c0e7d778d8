// backgroundTasks(): puts a TaskScope of the shared manager at `c.var.tasks`,
// one per request, holding the manager while the handler runs, with the
// request's `waitUntil` where the host gives an execution context; and
// answers 503 from the moment the manager shuts down. Everything else is the
// core's own API.

import type { Context, MiddlewareHandler } from "hono";
import { schedulerOf } from "../core/_registry.ts";
import {
  BOOLEAN,
  checkOptions,
  FUNCTION,
  NumberRule,
  Rule,
} from "../core/_validate.ts";
import { ManagerClosedError } from "../core/manager_closed_error.ts";
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
  /**
   * Seconds in the `Retry-After` header of the 503 answered while the
   * manager shuts down: a whole number from 0.
   *
   * @default {5}
   */
  retryAfter?: number;
  /**
   * Requests that still reach their handler while the manager shuts down:
   * exact paths (`["/health"]`, a liveness probe that should not fail while
   * the process drains), or a function of the context. They run without
   * holding the manager: a task they start then is refused.
   *
   * @default {none}
   */
  allow?: readonly string[] | ((c: Context) => boolean);
  /**
   * A path the middleware answers itself, for a load balancer's readiness
   * probe: 200 `{"ready":true}` while the manager is open, 503 (with
   * `Retry-After` and `Connection: close`) from the moment it shuts down.
   *
   * @default {none}
   */
  readiness?: string;
  /**
   * Makes the 503 answered while the manager shuts down (a JSON error, say);
   * the middleware has already set `Retry-After` and `Connection: close` on
   * `c`, which `c.json()` and `c.text()` keep.
   *
   * @default {a plain-text "Service Unavailable: the server is shutting down"}
   */
  unavailable?: (c: Context) => Response | Promise<Response>;
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
 * From the moment the manager shuts down (`tasks.shutdown()`, or
 * `gracefulShutdown` of `@background/tasks/shutdown`), every new request is
 * answered `503` with `Retry-After` and `Connection: close` before its handler
 * runs, except the `allow`ed ones; `readiness` turns 503 too. A request
 * already in its handler holds the shutdown and finishes normally, the tasks
 * it starts included, unless the shutdown's timeout ran out first; a task it
 * starts after that throws a `ManagerClosedError`, and the answer is a 503,
 * not a 500.
 *
 * @param manager The manager the tasks run through.
 * @param options Whether to look for an execution context; what to answer,
 * and to whom, while the manager shuts down.
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
 *
 * @example Answer 503 while the server drains, and keep /health up
 * ```ts
 * import { Hono } from "hono";
 * import { TaskManager } from "@background/tasks";
 * import { backgroundTasks, type BackgroundTasksEnv } from "@background/tasks/hono";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const app = new Hono<BackgroundTasksEnv>();
 * app.use(backgroundTasks(tasks, { executionContext: false, allow: ["/health"] }));
 * app.get("/health", (c) => c.json({ ok: true }));
 * app.post("/orders", (c) => c.json({ ok: true }, 201));
 *
 * await tasks.shutdown();
 * const refused = await app.request("/orders", { method: "POST" });
 * assert.equal(refused.status, 503);
 * assert.equal(refused.headers.get("retry-after"), "5");
 * assert.equal(refused.headers.get("connection"), "close");
 * assert.equal((await app.request("/health")).status, 200);
 * ```
 */
export function backgroundTasks(
  manager: TaskManager,
  options: BackgroundTasksOptions = {},
): MiddlewareHandler<BackgroundTasksEnv> {
  const where = "Cannot create backgroundTasks middleware";
  schedulerOf(where, manager, "the middleware");
  checkOptions(where, options);
  BOOLEAN.check(where, "executionContext", options.executionContext);
  RETRY_AFTER.check(where, "retryAfter", options.retryAfter);
  ALLOW.check(where, "allow", options.allow);
  PATH.check(where, "readiness", options.readiness);
  FUNCTION.check(where, "unavailable", options.unavailable);
  const { allow, readiness } = options;
  const answer = options.unavailable ??
    ((c: Context) =>
      c.text("Service Unavailable: the server is shutting down\n", 503));
  const retryAfter = String(options.retryAfter ?? 5);
  const allowed = typeof allow === "function"
    ? allow
    : allow === undefined
    ? () => false
    : (c: Context) => allow.includes(c.req.path);
  const unavailable = (c: Context): Response | Promise<Response> => {
    c.header("Retry-After", retryAfter);
    c.header("Connection", "close");
    return answer(c);
  };
  const probe = options.executionContext ?? true;
  return async function backgroundTasks(c, next) {
    if (readiness !== undefined && c.req.path === readiness) {
      return manager.closed ? unavailable(c) : c.json({ ready: true });
    }
    if (manager.closed && !allowed(c)) return unavailable(c);
    const scope = new TaskScope(
      manager,
      probe ? new RequestOptions(c) : HOLD,
    );
    c.set("tasks", scope);
    try {
      await next();
    } finally {
      scope.release();
    }
    // A task started once the shutdown stopped waiting: not a server error.
    if (c.error instanceof ManagerClosedError) c.res = await unavailable(c);
  };
}

/** `retryAfter`: whole seconds from 0. */
const RETRY_AFTER = new NumberRule(
  "a number of seconds",
  "a whole number of seconds from 0",
  (n) => Number.isSafeInteger(n) && n >= 0,
);

/** `allow`: paths, or a function of the context. */
const ALLOW = new Rule(
  "an array of paths or a function",
  (value) =>
    FUNCTION.test(value) ||
    (Array.isArray(value) && value.every((path) => PATH.test(path))),
);

/** A path: a string that starts with a slash. */
const PATH = new Rule(
  'a path that starts with "/"',
  (value) => typeof value === "string" && value.startsWith("/"),
);

/** The scope options of a request when no execution context is looked for. */
const HOLD: TaskScopeOptions = Object.freeze({ hold: true });

/**
 * A request's scope options: it holds the manager while its handler runs, and
 * its `waitUntil` is looked up on its first task only, so that requests that
 * start none pay nothing. (Hono's `c.executionCtx` getter throws where there
 * is no execution context.)
 */
class RequestOptions implements TaskScopeOptions {
  readonly hold = true;
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
