// POST /reports and GET /reports/:id: a report made in the background with
// `runWithResult`, polled by its task id. Reports live in memory only (the
// last 100); they are cheap to make again after a restart.

import type { Task } from "@background/tasks";
import type { BackgroundTasksEnv } from "@background/tasks/hono";
import { Hono } from "hono";
import { jsonError, messageOf, show } from "./http.ts";
import type { OrderStore } from "./orders.ts";
import type { PhotoStatus, PhotoStore } from "./storage.ts";

/** What a report holds. */
export interface Report {
  generatedAt: string;
  orders: ReturnType<OrderStore["summary"]>;
  photos: { count: number; status: Record<PhotoStatus, number> };
}

interface Entry {
  task: Task<Report>;
  result?: Report;
  error?: string;
}

const KEEP = 100;

/** The routes under `/reports`. */
export function reportRoutes(
  orders: OrderStore,
  photos: PhotoStore,
): Hono<BackgroundTasksEnv> {
  const app = new Hono<BackgroundTasksEnv>();
  const reports = new Map<string, Entry>();

  app.post("/", (c) => {
    const task = c.var.tasks.runWithResult<Report>(
      "generate report",
      ({ signal }) => generate(orders, photos, signal),
      { timeout: 30_000 },
    );
    const entry: Entry = { task };
    reports.set(task.id, entry);
    // Reading `value` takes the failure: it is kept here and logged.
    task.value.then(
      (report) => entry.result = report,
      (error) => {
        entry.error = messageOf(error);
        console.error(`report ${task.id} failed: ${entry.error}`);
      },
    );
    for (const [id, old] of reports) {
      if (reports.size <= KEEP) break;
      if (old.result !== undefined || old.error !== undefined) {
        reports.delete(id);
      }
    }
    c.header("Location", `/reports/${task.id}`);
    return c.json({ taskId: task.id }, 202);
  });

  app.get("/:id", (c) => {
    const id = c.req.param("id");
    const entry = reports.get(id);
    if (entry === undefined) {
      return jsonError(c, 404, `There is no report with id ${show(id)}`);
    }
    return c.json({
      status: entry.task.status,
      ...(entry.result === undefined ? {} : { result: entry.result }),
      ...(entry.error === undefined ? {} : { error: entry.error }),
    });
  });

  return app;
}

async function generate(
  orders: OrderStore,
  photos: PhotoStore,
  signal: AbortSignal,
): Promise<Report> {
  const status: Record<PhotoStatus, number> = {
    processing: 0,
    ready: 0,
    failed: 0,
  };
  const list = await photos.list();
  signal.throwIfAborted();
  for (const photo of list) status[photo.status]++;
  return {
    generatedAt: new Date().toISOString(),
    orders: orders.summary(),
    photos: { count: list.length, status },
  };
}
