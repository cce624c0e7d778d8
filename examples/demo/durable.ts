// Durable mode: the confirmation emails and the thumbnails become tasks of a
// DurableQueue (`@background/tasks/durable`) instead of tasks that live only
// in this process. A task is stored before the request that made it is
// answered, survives a crash or a restart, and is run by whichever process
// sharing the queue takes it, through that process's TaskManager.
//
// This module is what the web side and the consumer side share (in the demo,
// each process is both): it opens the backend and defines the handlers,
// whose code lives with the routes (orders.ts, photos.ts).
//
// Backends (main.ts reads the environment):
// - SQLite, with DURABLE=sqlite: no server, Deno and Bun; a file in DATA_DIR
//   (queue.sqlite) that every demo process of the machine sharing the
//   DATA_DIR shares, and they split the work.
// - Redis (BullMQ), when REDIS_URL is set: Deno and Bun; any number of
//   processes that share the Redis server and the DATA_DIR split the work.
// - Deno KV, with DURABLE=kv: Deno only, a file in DATA_DIR (tasks.sqlite);
//   the tasks survive a restart, for one process.

import type { TaskManager } from "@background/tasks";
import {
  DenoKvBackend,
  type DurableBackend,
  DurableQueue,
  type EnqueueOptions,
  RedisBackend,
  SqliteBackend,
} from "@background/tasks/durable";
import { messageOf } from "./http.ts";
import { confirmOrder, type OrderDeps } from "./orders.ts";
import { type PhotoDeps, thumbnailPhoto } from "./photos.ts";
import { isUuid } from "./storage.ts";

/** Where the durable tasks are kept, and how many this process runs at once. */
export type DurableSettings =
  & {
    /** How many queued tasks this process runs at once; 0 runs none (it only enqueues). */
    concurrency: number;
  }
  & (
    | {
      backend: "redis";
      /** `redis://[[user]:password@]host[:port][/db]` */
      url: string;
      /** How long a process's lock on a task lasts; a dead process's tasks come back within about twice this. */
      lockDuration: number;
    }
    | {
      backend: "sqlite";
      /** The SQLite file. */
      path: string;
      /** How long a process's lease on a task lasts; a dead process's tasks come back within this. */
      leaseDuration: number;
    }
    | {
      backend: "kv";
      /** The Deno KV file. */
      path: string;
    }
  );

/** The task that sends an order's confirmation email; payload `{ orderId }`. */
export const SEND_CONFIRMATION = "send-confirmation";
/** The task that makes a photo's three thumbnails; payload `{ photoId }`. */
export const MAKE_THUMBNAILS = "make-thumbnails";
/** Tries per photo: a thumbnail that fails is tried again this many times in all. */
export const THUMBNAIL_ATTEMPTS = 3;
/** The BullMQ queue that the demo processes sharing a Redis server share. */
const REDIS_QUEUE = "demo";
/**
 * How long a request waits for the backend to store a task before it
 * answers 503. (A lost Redis connection makes commands wait for the
 * reconnection rather than fail.)
 */
const ENQUEUE_TIMEOUT = 5000;

/** What the handlers need: the manager they run in, and the routes' dependencies. */
export interface DurableDeps {
  manager: TaskManager;
  orders: OrderDeps;
  photos: PhotoDeps;
}

/** Opens the backend and defines the demo's two durable tasks. */
export async function openQueue(
  settings: DurableSettings,
  deps: DurableDeps,
): Promise<DurableQueue> {
  const queue = new DurableQueue(await openBackend(settings), {
    attempts: deps.orders.mailAttempts,
    // The first wait before a retry; it doubles each time.
    backoff: deps.orders.mailRetryDelay,
    onError: (error) =>
      console.error(`durable queue (${settings.backend}): ${messageOf(error)}`),
  });
  queue.define<{ orderId: unknown }>(
    SEND_CONFIRMATION,
    (payload, context) => confirmOrder(deps.orders, payload?.orderId, context),
  );
  queue.define<{ photoId: unknown }>(
    MAKE_THUMBNAILS,
    (payload, context) =>
      thumbnailPhoto(deps.manager, deps.photos, payload?.photoId, context),
  );
  return queue;
}

function openBackend(settings: DurableSettings): Promise<DurableBackend> {
  switch (settings.backend) {
    case "redis":
      return RedisBackend.open(settings.url, {
        queue: REDIS_QUEUE,
        lockDuration: settings.lockDuration,
      });
    case "sqlite":
      return SqliteBackend.open(settings.path, {
        leaseDuration: settings.leaseDuration,
      });
    case "kv":
      return DenoKvBackend.open(settings.path);
  }
}

/**
 * At start: a task whose process died during its last attempt became a dead
 * letter without its handler saying so, and its order or photo still reads
 * "pending" or "processing". This marks those "failed", with the dead
 * letter's error; returns how many. (It reads the 100 most recent dead
 * letters; the others stay in the backend for its own tools.)
 */
export async function settleDeadLetters(
  queue: DurableQueue,
  deps: DurableDeps,
): Promise<number> {
  let settled = 0;
  for (const letter of await queue.deadLetters({ limit: 100 })) {
    const payload = letter.payload as Record<string, unknown> | null;
    const id = payload?.orderId ?? payload?.photoId;
    if (typeof id !== "string" || !isUuid(id)) continue;
    const { orders } = deps.orders;
    if (
      letter.name === SEND_CONFIRMATION &&
      orders.get(id)?.emailStatus === "pending"
    ) {
      orders.recordFailure(id, letter.error);
      orders.markFailed(id);
      settled++;
    } else if (letter.name === MAKE_THUMBNAILS) {
      const meta = await deps.photos.store.meta(id);
      if (meta?.status === "processing") {
        const error = letter.error;
        await deps.photos.store.saveMeta({ ...meta, status: "failed", error });
        settled++;
      }
    }
  }
  return settled;
}

/**
 * `queue.enqueue`, given up after {@linkcode ENQUEUE_TIMEOUT}: resolves with
 * the task's id once it is stored, rejects when it could not be stored in
 * time. (The task may still be stored after a timeout: the handlers do
 * nothing for an order already sent or a photo not "processing" or gone.)
 */
export async function enqueueWithin(
  queue: DurableQueue,
  name: string,
  payload: unknown,
  options: EnqueueOptions = {},
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `the queue did not store the task within ${ENQUEUE_TIMEOUT} ms`,
          ),
        ),
      ENQUEUE_TIMEOUT,
    );
  });
  const stored = queue.enqueue(name, payload, options);
  // Too late to matter once the timeout answered.
  stored.catch(() => {});
  try {
    return await Promise.race([stored, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
