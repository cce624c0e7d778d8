// The demo's one Hono app, the same on Deno and Bun; main.ts serves it.

import { type TaskEvent, TaskManager } from "@background/tasks";
import {
  backgroundTasks,
  type BackgroundTasksEnv,
} from "@background/tasks/hono";
import type { DurableQueue } from "@background/tasks/durable";
import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { streamSSE } from "hono/streaming";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { TaskBoard } from "./board.ts";
import { deadLetterActions } from "./dead_letters.ts";
import { jsonError, messageOf, show, unavailable } from "./http.ts";
import { type ImagePool, ImageProcesses } from "./image_processes.ts";
import { type MailTransport, OutboxTransport } from "./mail.ts";
import {
  type OrderDeps,
  orderRoutes,
  OrderStore,
  resumeOrders,
} from "./orders.ts";
import { MainThreadImages } from "./main_thread_images.ts";
import { PAGE } from "./page.ts";
import {
  type PhotoDeps,
  photoRoutes,
  queueUnqueuedPhotos,
  resumePhotos,
  UploadGate,
} from "./photos.ts";
import {
  type DurableDeps,
  type DurableSettings,
  enqueueWithin,
  MAKE_THUMBNAILS,
  openQueue,
  SEND_CONFIRMATION,
  settleDeadLetters,
  THUMBNAIL_ATTEMPTS,
} from "./durable.ts";
import { reportRoutes } from "./reports.ts";
import { PhotoStore, removeTemporaryFiles } from "./storage.ts";

/** How the demo is set up; main.ts reads it from the environment. */
export interface DemoConfig {
  /** Where photos, the outbox and the database live. */
  dataDir: string;
  /** The largest `POST /photos` body, in bytes. */
  maxUploadBytes: number;
  /** Uploads received at once; beyond, 503 with Retry-After. @default {32} */
  maxUploads?: number;
  /**
   * The most decode work an upload may declare, in pixel-equivalents
   * (image_header.ts, `decodeWork`). @default {24000000}
   */
  maxImageWork?: number;
  /** A thumbnail's timeout in ms; by default 10 s plus 1 µs per unit of decode work. */
  imageTimeout?: number;
  /** How many image processes run at once; by default one less than the cores, 1 to 4. */
  workers?: number;
  /** Tries per confirmation email, the first included. */
  mailAttempts: number;
  /** The first wait between email tries, in ms; it doubles each time. */
  mailRetryDelay: number;
  /** Sends the emails; by default `.eml` files in `DATA_DIR/outbox/`. */
  transport?: MailTransport;
  /**
   * Benchmark knob: `false` makes `POST /orders` send no confirmation email;
   * `"noop"` starts an empty task in its place (bench/server.ts).
   */
  sendEmails?: boolean | "noop";
  /**
   * Aborted when the server starts shutting down (main.ts passes the
   * shutdown hook's signal): the event streams end, and a body the shutdown
   * made unreadable gets a 503 instead of a 400.
   */
  closing?: AbortSignal;
  /** Benchmark knob: `true` does the image work on the main thread, not in workers. */
  imagesOnMainThread?: boolean;
  /**
   * Durable mode: the emails and thumbnails go through a durable queue
   * (durable.ts), shared with the other processes that use the same backend.
   */
  durable?: DurableSettings;
}

/** The app and what main.ts needs to run and stop it. */
export interface Demo {
  app: Hono<BackgroundTasksEnv>;
  manager: TaskManager;
  /**
   * Starts again the work the last run left: thumbnails, unsent emails. In
   * durable mode the queue holds that work: this queues only the photos that
   * never reached it, and starts taking tasks from the queue.
   */
  resume(): Promise<{ photos: number; orders: number }>;
  /**
   * Closes, in order, what the tasks used: the queue (its last outcomes
   * written), the worker pool and the database. For after the manager
   * drained (main.ts hands it to `gracefulShutdown`).
   */
  closeResources(): Promise<void>;
}

/** A heartbeat comment on idle event streams, in ms. */
const HEARTBEAT = 15_000;
/** An event stream whose client reads slower than this many events behind is closed. */
const MAX_BACKLOG = 1000;
/** What a reconnecting page waits before it tries again, in ms (the SSE `retry` field). */
const RECONNECT_MS = 1000;

/** Image processes by default: leave one core to the server; at most 4. */
function defaultWorkers(): number {
  const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } })
    .navigator?.hardwareConcurrency ?? 2;
  return Math.max(1, Math.min(4, cores - 1));
}

/** Makes the app, its task manager, its worker pool and its stores. */
export async function createDemo(config: DemoConfig): Promise<Demo> {
  await mkdir(config.dataDir, { recursive: true });
  const store = new PhotoStore(config.dataDir);
  await store.init();
  // What a crash left mid-write in the outbox (the photos' are removed by
  // store.init()).
  const outbox = join(config.dataDir, "outbox");
  await removeTemporaryFiles(outbox);
  const orders = new OrderStore(join(config.dataDir, "orders.db"));
  const workers = config.workers ?? defaultWorkers();
  const pool: ImagePool = config.imagesOnMainThread
    ? new MainThreadImages()
    : new ImageProcesses({ size: workers, dataDir: config.dataDir });
  const onError = (error: unknown, task: { name: string; id: string }) =>
    console.error(
      `task "${task.name}" (${task.id}) failed: ${messageOf(error)}`,
    );
  const manager = new TaskManager({ onError });
  // The one place where image work waits: as many run as there are image
  // processes; a task's timeout starts when it runs.
  const images = new TaskManager({ concurrency: workers, onError });
  const board = new TaskBoard();
  board.watch(manager);
  board.watch(images);
  const closing = config.closing ?? new AbortController().signal;
  const uploads = new UploadGate(config.maxUploads ?? 32);
  const photoDeps: PhotoDeps = {
    store,
    closing,
    pool,
    images,
    maxUploadBytes: config.maxUploadBytes,
    uploads,
    maxWork: config.maxImageWork ?? 24_000_000,
    imageTimeout: config.imageTimeout,
    onQueued: (task) => board.track(task),
  };
  const orderDeps: OrderDeps = {
    orders,
    closing,
    transport: config.transport ?? new OutboxTransport(outbox),
    mailAttempts: config.mailAttempts,
    mailRetryDelay: config.mailRetryDelay,
    sendEmails: config.sendEmails ?? true,
  };
  const durable = config.durable;
  const durableDeps: DurableDeps = {
    manager,
    orders: orderDeps,
    photos: photoDeps,
  };
  let queue: DurableQueue | undefined;
  if (durable !== undefined) {
    let opened: DurableQueue;
    try {
      opened = await openQueue(durable, durableDeps);
    } catch (error) {
      await pool.close();
      orders.close();
      throw error;
    }
    queue = opened;
    orderDeps.enqueue = (orderId) =>
      enqueueWithin(opened, SEND_CONFIRMATION, { orderId }, {
        attempts: config.mailAttempts,
      });
    photoDeps.enqueue = (photoId) =>
      enqueueWithin(opened, MAKE_THUMBNAILS, { photoId }, {
        attempts: THUMBNAIL_ATTEMPTS,
      });
  }
  let streams = 0;
  let requests = 0;
  const deadLetters = queue === undefined
    ? undefined
    : deadLetterActions(queue);

  const app = new Hono<BackgroundTasksEnv>();
  app.use(async (c, next) => {
    requests++;
    try {
      await next();
    } finally {
      requests--;
    }
    if (c.req.method === "HEAD") await headOf(c);
  });
  // From the moment the manager shuts down: 503 for new requests (JSON, as
  // every error here), with Retry-After and Connection: close; /health stays
  // up (liveness), /ready turns 503 (readiness). Requests already in their
  // handlers finish, the tasks they start included. main.ts serves the app
  // with Deno.serve or Bun.serve, which never give an execution context: no
  // request needs to look for one.
  app.use(backgroundTasks(manager, {
    executionContext: false,
    allow: ["/health"],
    readiness: "/ready",
    unavailable: (c) => jsonError(c, 503, "The server is shutting down"),
  }));

  app.get("/", (c) => {
    // The page loads nothing from elsewhere; say so to the browser.
    c.header(
      "Content-Security-Policy",
      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'",
    );
    return c.html(PAGE);
  });
  app.get("/favicon.ico", (c) => c.body(null, 204));
  app.get("/health", (c) => c.json({ ok: true }));

  const snapshot = () => ({
    active: [...manager.activeTasks, ...images.activeTasks],
    queued: board.queued(),
    activeCount: manager.activeCount + images.activeCount,
    pendingCount: manager.pendingCount + images.pendingCount,
  });

  app.get("/tasks", (c) =>
    c.json({
      ...snapshot(),
      failures: board.failures(),
      eventStreams: streams,
      // Besides this one.
      requestsInFlight: requests - 1,
      uploadsInFlight: uploads.inFlight,
      imageProcesses: pool.processes,
      durable: queue !== undefined,
    }));

  // An operator cancels a task: a queued one never starts, a running one's
  // signal aborts (an image job's process is killed).
  app.delete("/tasks/:id", (c) => {
    const id = c.req.param("id");
    const known = /^\d{1,15}$/.test(id);
    if (known && (manager.cancel(id) || images.cancel(id))) {
      return c.json({ cancelled: id }, 202);
    }
    return jsonError(
      c,
      404,
      `There is no running or queued task with id ${show(id)}`,
    );
  });

  // Durable mode: the tasks that used up their attempts.
  app.get("/dead-letters", async (c) => {
    if (queue === undefined) {
      return jsonError(c, 404, "There are dead letters in durable mode only");
    }
    const letters = await queue.deadLetters({ limit: 50 });
    return c.json({
      deadLetters: letters,
      actions: {
        retry: deadLetters?.retry !== undefined,
        delete: deadLetters?.remove !== undefined,
      },
    });
  });
  app.post("/dead-letters/:id/retry", async (c) => {
    if (deadLetters?.retry === undefined) {
      return jsonError(c, 404, "Retrying a dead letter is not available");
    }
    return c.json({ retried: await deadLetters.retry(c.req.param("id")) });
  });
  app.delete("/dead-letters/:id", async (c) => {
    if (deadLetters?.remove === undefined) {
      return jsonError(c, 404, "Deleting a dead letter is not available");
    }
    return c.json({ deleted: await deadLetters.remove(c.req.param("id")) });
  });

  app.get("/tasks/events", (c) =>
    streamSSE(c, async (stream) => {
      const done = Promise.withResolvers<void>();
      const stop = () => done.resolve();
      let backlog = 0;
      const forward = (event: TaskEvent) => {
        if (backlog >= MAX_BACKLOG) return stop();
        backlog++;
        stream.writeSSE({
          event: event.type,
          data: JSON.stringify(describe(event)),
        }).then(() => backlog--, stop);
      };
      const types = [
        "start",
        "settle",
        "cancel",
        "retry",
        "progress",
      ] as const;
      streams++;
      for (const type of types) {
        manager.addEventListener(type, forward);
        images.addEventListener(type, forward);
      }
      closing.addEventListener("abort", stop);
      stream.onAbort(stop);
      if (closing.aborted) stop();
      const heartbeat = setInterval(() => {
        stream.write(": heartbeat\n\n").catch(stop);
      }, HEARTBEAT);
      try {
        await stream.writeSSE({
          event: "snapshot",
          data: JSON.stringify(snapshot()),
          retry: RECONNECT_MS,
        });
        await done.promise;
      } finally {
        clearInterval(heartbeat);
        for (const type of types) {
          manager.removeEventListener(type, forward);
          images.removeEventListener(type, forward);
        }
        closing.removeEventListener("abort", stop);
        streams--;
      }
    }));

  app.route("/photos", photoRoutes(photoDeps));
  app.route("/orders", orderRoutes(orderDeps));
  app.route("/reports", reportRoutes(orders, store));

  app.notFound((c) =>
    jsonError(c, 404, `There is no route ${c.req.method} ${c.req.path}`)
  );
  app.onError((error, c) => {
    if (error instanceof HTTPException && error.status < 500) {
      return c.json({ error: error.message || "Bad request" }, error.status);
    }
    if (closing.aborted || manager.closed) {
      // Most likely the shutdown's doing (a body made unreadable, say).
      return unavailable(c, "The server is shutting down");
    }
    console.error(`${c.req.method} ${c.req.path} failed:`, error);
    return jsonError(c, 500, "Internal server error");
  });

  return {
    app,
    manager,
    async resume() {
      if (queue === undefined) {
        return {
          photos: await resumePhotos(manager, photoDeps),
          orders: resumeOrders(manager, orderDeps),
        };
      }
      const failed = await settleDeadLetters(queue, durableDeps);
      if (failed > 0) {
        console.warn(
          `marked ${failed} order(s) or photo(s) failed: their task died on its last attempt`,
        );
      }
      const photos = await queueUnqueuedPhotos(photoDeps);
      const concurrency = durable?.concurrency ?? 0;
      if (concurrency > 0) queue.consume(manager, { concurrency });
      return { photos, orders: 0 };
    },
    async closeResources() {
      try {
        // The tasks have settled or been abandoned: do not wait for the
        // abandoned ones, which the backend delivers again anyway.
        await queue?.close({ timeout: 0 });
        // The manager drained; what image work is left is cancelled (its
        // photos stay "processing" for the next start).
        await images.shutdown({ timeout: 0, grace: 500 });
        await pool.close();
      } finally {
        orders.close();
      }
    },
  };
}

/**
 * A HEAD request: Hono answers it with the GET response without its body,
 * and the runtimes then said `content-length: 0`. Give the length the GET
 * body has (an event stream has none: it is not read).
 */
async function headOf(c: Context): Promise<void> {
  const response = c.res;
  if (response.body === null) return;
  const type = response.headers.get("content-type") ?? "";
  if (type.startsWith("text/event-stream")) return;
  const length = (await response.clone().arrayBuffer()).byteLength;
  response.headers.set("content-length", String(length));
}

/** A task event as JSON: the task, and the error or reason as a message. */
function describe(event: TaskEvent): Record<string, unknown> {
  return {
    type: event.type,
    task: event.task,
    ...(event.error === undefined ? {} : { error: messageOf(event.error) }),
    ...(event.reason === undefined ? {} : { reason: messageOf(event.reason) }),
  };
}
