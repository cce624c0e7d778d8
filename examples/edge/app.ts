// The example app for edge hosts: `POST /orders` answers 201 at once, and a
// background task sends the confirmation after the response has gone out.
// The same app is packaged for Cloudflare Workers (worker.ts) and for Vercel's
// edge runtime (vercel.ts); tests/edge/edge_test.ts runs both locally.

import { Hono } from "hono";
import { TaskManager } from "@background/tasks";
import { backgroundTasks } from "@background/tasks/hono";
import { debugRoutes } from "./debug.ts";
import type { Api, AppEnv } from "./env.ts";

export type { Api, AppEnv, Bindings } from "./env.ts";

/**
 * Made at module top level, as apps do. Constructing a manager makes no
 * timer, controller or random value, so this is allowed even in Workers,
 * which refuse those outside a request.
 *
 * `timeout` is the budget of every task: 25 s, under the 30 s Cloudflare
 * gives `waitUntil` work after the response. A task that runs over is aborted
 * through its signal with a `TimeoutError` and can clean up, instead of being
 * killed mid-write by the host.
 */
export const tasks: TaskManager = new TaskManager({
  timeout: 25_000,
  onError: (error, task) =>
    console.error(`task ${task.name} (${task.id}) failed:`, error),
});

/** The budget of a whole batch of `POST /orders/batch`, under the host's 30 s. */
const BATCH_BUDGET_MS = 25_000;

/** The orders this isolate has seen; a stand-in for a database. */
export const orders: Map<string, "received" | "confirmed"> = new Map();

/**
 * The background work of an order: send the confirmation email, then mark
 * the order confirmed. Both calls take the task's signal, so a cancellation
 * or a timeout stops them.
 */
export async function confirmOrder(
  api: Api,
  id: string,
  signal: AbortSignal,
): Promise<void> {
  const body = JSON.stringify({ order: id });
  const sent = await api.fetch("https://api.example/emails", {
    method: "POST",
    body,
    signal,
  });
  if (!sent.ok) throw new Error(`The email API answered ${sent.status}`);
  await sent.body?.cancel();
  orders.set(id, "confirmed");
  const marked = await api.fetch("https://api.example/confirmed", {
    method: "POST",
    body,
    signal,
  });
  await marked.body?.cancel();
}

/** Reads `{ "id": "..." }`, or makes an id. */
export async function orderId(request: Request): Promise<string> {
  const body = await request.json().catch(() => ({})) as { id?: unknown };
  return typeof body.id === "string" && body.id !== ""
    ? body.id
    : crypto.randomUUID();
}

/** The app. */
export const app: Hono<AppEnv> = new Hono<AppEnv>();

// `c.var.tasks` starts tasks on the shared manager and registers each with
// the request's `waitUntil` (`c.executionCtx`), so the host keeps the isolate
// alive until the task settles: on Workers and Vercel it would otherwise be
// cancelled or frozen once the response is sent.
app.use(backgroundTasks(tasks));

app.post("/orders", async (c) => {
  const id = await orderId(c.req.raw);
  orders.set(id, "received");
  const api = c.env.API;
  c.var.tasks.run(
    "send-confirmation",
    ({ signal }) => confirmOrder(api, id, signal),
  );
  return c.json({ id, status: "received" }, 201);
});

// Several orders at once, confirmed one at a time. On Workers, limit
// concurrency per request with a group, not with the shared manager's
// `concurrency`: a task queued by one request and started when another
// request's task ends would run in that other request's I/O context, and
// workerd drops it when that request is done.
app.post("/orders/batch", async (c) => {
  const { ids } = await c.req.json<{ ids: string[] }>();
  const api = c.env.API;
  // One budget for the whole batch: each task's own timeout counts from its
  // start, so one at a time they would add up past the host's limit.
  const group = c.var.tasks.group({
    concurrency: 1,
    signal: AbortSignal.timeout(BATCH_BUDGET_MS),
  });
  for (const id of ids) {
    orders.set(id, "received");
    group.add(`confirm-${id}`, ({ signal }) => confirmOrder(api, id, signal));
  }
  // The summary waits for the whole batch: a little longer than its budget,
  // so that it reports a batch cut off rather than time out itself.
  c.var.tasks.run("log-batch", async () => {
    const results = await group.awaitAll();
    console.log(`batch done: ${results.map((r) => r.status).join(", ")}`);
  }, { timeout: BATCH_BUDGET_MS + 2_000 });
  return c.json({ ids, status: "received" }, 202);
});

app.get("/orders/:id", (c) => {
  const id = c.req.param("id");
  const status = orders.get(id);
  return status === undefined
    ? c.json({ id, error: "unknown order" }, 404)
    : c.json({ id, status });
});

// Routes the edge test suite drives; leave them out of a real app.
app.route("/debug", debugRoutes({ tasks, orders, confirmOrder }));
