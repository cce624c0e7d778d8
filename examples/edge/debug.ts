// Routes that tests/edge/edge_test.ts drives inside workerd and the edge runtime.
// They show what the docs warn about and what the core does in a sandbox;
// leave them out of a real app.

import { Hono } from "hono";
import { TaskManager } from "@background/tasks";
import type { Api, AppEnv } from "./env.ts";
import { probeGlobals, runScenario } from "./scenario.ts";

/** What the debug routes need from the app. */
export interface DebugDeps {
  /** The app's module-level manager. */
  tasks: TaskManager;
  /** The orders "table" of the app. */
  orders: Map<string, "received" | "confirmed">;
  /** The background work of an order. */
  confirmOrder: (api: Api, id: string, signal: AbortSignal) => Promise<void>;
}

/** Makes the debug routes, mounted by the app under `/debug`. */
export function debugRoutes(deps: DebugDeps): Hono<AppEnv> {
  const { tasks, orders, confirmOrder } = deps;
  const debug = new Hono<AppEnv>();

  // The mistake the docs warn about: the same work as `POST /orders`, started
  // on the manager directly, bypassing the middleware, with no `waitUntil`.
  // On Workers it is cancelled once the response is sent.
  debug.post("/unregistered-orders", async (c) => {
    const { id } = await c.req.json<{ id: string }>();
    orders.set(id, "received");
    const api = c.env.API;
    tasks.run(
      "send-confirmation",
      ({ signal }) => confirmOrder(api, id, signal),
    );
    return c.json({ id, status: "received" }, 201);
  });

  // A task that would outlive the host's budget, given a budget of its own
  // (`timeout`) below the host's limit: the manager aborts its signal with a
  // TimeoutError, and its cleanup runs while the host still lets it.
  debug.post("/budget", async (c) => {
    const { id, ms } = await c.req.json<{ id: string; ms: number }>();
    const api = c.env.API;
    c.var.tasks.run("build-export", async ({ signal }) => {
      try {
        const response = await api.fetch("https://api.example/slow", {
          method: "POST",
          body: JSON.stringify({ job: id }),
          signal,
        });
        await response.body?.cancel();
      } catch (error) {
        // Cleanup: release what the job held. Not under the aborted signal.
        const reason = signal.reason as Error | undefined;
        const cleaned = await api.fetch("https://api.example/cleanup", {
          method: "POST",
          body: JSON.stringify({
            job: id,
            aborted: signal.aborted,
            reason: reason?.name,
          }),
        });
        await cleaned.body?.cancel();
        throw error;
      }
    }, { timeout: ms });
    return c.json({ id, status: "started" }, 202);
  });

  // What not to do on Workers: a concurrency limit on a manager shared by
  // requests. A queued task starts when another request's task settles, so
  // it runs in that request's I/O context, which workerd ends (and cancels
  // the task's I/O with) once that request is done.
  const limited = new TaskManager({ concurrency: 1 });
  debug.post("/limited-orders", async (c) => {
    const { id } = await c.req.json<{ id: string }>();
    orders.set(id, "received");
    const api = c.env.API;
    const ctx = c.executionCtx;
    limited.run(
      "send-confirmation",
      ({ signal }) => confirmOrder(api, id, signal),
      {
        waitUntil: (promise) => ctx.waitUntil(promise),
      },
    );
    return c.json({ id, status: "received" }, 201);
  });
  debug.get("/limited-orders", (c) =>
    c.json({
      running: limited.activeTasks.length,
      pending: limited.pendingCount,
    }));

  // The core API, scripted, on the module-level manager.
  debug.post("/scenario", async (c) => {
    const report = await runScenario(tasks);
    return c.json({ globals: probeGlobals(), report });
  });

  return debug;
}
