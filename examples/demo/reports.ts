// POST /reports and GET /reports/:id: a report made in the background with
// `runWithResult`, polled by its task id. Reports live in memory only (the
// last 100); they are cheap to make again after a restart.

import type { Task } from "@background/tasks";
import type { BackgroundTasksEnv } from "@background/tasks/hono";
import { Hono } from "hono";
import { jsonError, messageOf, show } from "./http.ts";
import type { EmailStatus, OrderStore } from "./orders.ts";
import type { PhotoStatus, PhotoStore } from "./storage.ts";

/** What a report holds. */
export interface Report {
  generatedAt: string;
  orders: {
    count: number;
    quantity: number;
    email: Record<EmailStatus, number>;
  };
  photos: { count: number; status: Record<PhotoStatus, number> };
}

/**
 * Orders read per chunk: a chunk takes about half a millisecond, then the
 * report yields to the event loop (a report over 20,000 orders read at once
 * blocked every request for about 0.5 s).
 */
export const REPORT_CHUNK = 500;

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
      ({ signal, progress }) => generate(orders, photos, signal, progress),
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

  app.get("/", (c) =>
    c.json({
      reports: [...reports.values()].reverse().slice(0, 20).map((entry) => ({
        taskId: entry.task.id,
        status: entry.task.status,
        ...(entry.result === undefined ? {} : { result: entry.result }),
        ...(entry.error === undefined ? {} : { error: entry.error }),
      })),
    }));

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

/** The end of the line of chunks waiting for their turn, all reports together. */
let turns: Promise<void> = Promise.resolve();

/**
 * Waits for this report's next turn to read a chunk: one chunk per turn of
 * the event loop across all the reports running, each turn a macrotask (a
 * timer), so that requests are read between any two chunks. (With a timer
 * per report, the 20 timers due at once ran 20 chunks back to back: a health
 * check waited about 70 ms.)
 */
function nextTurn(): Promise<void> {
  const mine = turns.then(() =>
    new Promise<void>((resolve) => setTimeout(resolve, 0))
  );
  turns = mine;
  return mine;
}

async function generate(
  orders: OrderStore,
  photos: PhotoStore,
  signal: AbortSignal,
  progress: (value: unknown) => void,
): Promise<Report> {
  const status: Record<PhotoStatus, number> = {
    processing: 0,
    ready: 0,
    failed: 0,
  };
  const list = await photos.list();
  signal.throwIfAborted();
  for (const photo of list) status[photo.status]++;
  const totals: Report["orders"] = {
    count: 0,
    quantity: 0,
    email: { pending: 0, sent: 0, failed: 0 },
  };
  // Progress: the share of the orders read (the table may grow meanwhile).
  const total = Math.max(1, orders.count());
  for (let after: number | undefined = 0; after !== undefined;) {
    const chunk = orders.summaryChunk(after, REPORT_CHUNK);
    totals.count += chunk.count;
    progress(Math.min(1, totals.count / total));
    totals.quantity += chunk.quantity;
    for (const key of Object.keys(totals.email) as EmailStatus[]) {
      totals.email[key] += chunk.email[key];
    }
    after = chunk.last;
    await nextTurn();
    signal.throwIfAborted();
  }
  return {
    generatedAt: new Date().toISOString(),
    orders: totals,
    photos: { count: list.length, status },
  };
}
