/**
 * Hono middleware that gives every request a way to start background tasks
 * with a shared {@linkcode TaskManager}, at `c.var.tasks`: a `TaskScope` of
 * the manager, whose `run`, `runWithResult` and `group` are the manager's own.
 *
 * On hosts with an execution context (Cloudflare Workers), every task started
 * through `c.var.tasks` is registered with `c.executionCtx.waitUntil`, so the
 * isolate lives until the task settles, after the response is sent. Elsewhere
 * (Deno, Bun, Node) the process lives on anyway and nothing is registered:
 * drain the manager with `shutdown()` when the server stops.
 *
 * Tasks are not tied to the request's signal: background work outlives the
 * response on purpose. Pass `c.req.raw.signal` as a task's `signal` yourself
 * for work that should stop when the client goes away.
 *
 * @example Send the confirmation email after answering
 * ```ts
 * import { Hono } from "hono";
 * import { TaskManager } from "@background/tasks";
 * import { backgroundTasks, type BackgroundTasksEnv } from "@background/tasks/hono";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * const sent: string[] = [];
 * const app = new Hono<BackgroundTasksEnv>();
 * app.use(backgroundTasks(tasks));
 * app.post("/orders/:id", (c) => {
 *   const id = c.req.param("id");
 *   c.var.tasks.run("send-confirmation", () => { sent.push(id); });
 *   return c.json({ id }, 201);
 * });
 *
 * const response = await app.request("/orders/A-1", { method: "POST" });
 * assert.equal(response.status, 201);
 * await tasks.idle();
 * assert.deepEqual(sent, ["A-1"]);
 * ```
 *
 * @module
 */

export {
  backgroundTasks,
  type BackgroundTasksEnv,
  type BackgroundTasksOptions,
} from "./middleware.ts";
