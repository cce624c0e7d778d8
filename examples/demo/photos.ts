// POST /photos, GET /photos/:id, GET /photos/:id/:size.
//
// An upload is checked (size, then a full decode in the worker pool), stored
// with the status "processing", and answered at once with 201. Its three
// thumbnails are made in the background as one TaskGroup whose tasks each run
// in the worker pool; a last task marks the photo "ready" or "failed". A
// photo whose thumbnails were cut short (shutdown, crash) is still
// "processing" on disk, and `resumePhotos` starts it again at the next start.
//
// In durable mode (durable.ts) the thumbnails are a task of the durable
// queue instead, run by whichever process takes it (`thumbnailPhoto`): the
// upload is answered 201 only once the task is stored, and the photo folder
// then records it (`queued`). At start, a photo still "processing" without
// that record (its process died between storing and queueing) is queued.

import type {
  RunOptions,
  Task,
  TaskFunction,
  TaskHandle,
  TaskResult,
} from "@background/tasks";
import type { BackgroundTasksEnv } from "@background/tasks/hono";
import type { DurableContext } from "@background/tasks/durable";
import { Hono } from "hono";
import {
  hasContentType,
  jsonError,
  limitBody,
  messageOf,
  show,
  unavailable,
  unreadable,
} from "./http.ts";
import {
  CONTENT_TYPES,
  type ImageType,
  isUuid,
  type PhotoMeta,
  type PhotoStore,
  THUMBNAIL_WIDTHS,
  type ThumbnailWidth,
} from "./storage.ts";
import type { ImageJob, ImageResult } from "./thumbnail_worker.ts";

/**
 * Where the image work runs: the worker pool, or the main thread when
 * `IMAGES_ON_MAIN_THREAD=1` (see main_thread_images.ts). The part of a
 * `WorkerPool` the demo uses.
 */
export interface ImagePool {
  run(
    job: ImageJob,
    options?: { signal?: AbortSignal; transfer?: Transferable[] },
  ): Promise<ImageResult>;
  close(): Promise<void>;
}

/** What the photo routes and the thumbnail pipeline need. */
export interface PhotoDeps {
  store: PhotoStore;
  /** Aborted once the server shuts down. */
  closing: AbortSignal;
  pool: ImagePool;
  /** The largest request body accepted by `POST /photos`, in bytes. */
  maxUploadBytes: number;
  /**
   * Durable mode: stores the photo's thumbnails task in the queue and
   * resolves with the task's id, or rejects (the queue cannot be reached).
   * Without it, the thumbnails are made by tasks of this process.
   */
  enqueue?: (photoId: string) => Promise<string>;
}

/** The part of a TaskGroup the pipeline uses (a request's group or a manager's). */
interface Group {
  add<T>(name: string, fn: TaskFunction<T>, options?: RunOptions): Task<T>;
  awaitAll(): Promise<TaskResult<unknown>[]>;
}

/** Where background work starts: `c.var.tasks` in a request, the manager otherwise. */
export interface Spawner {
  run(
    name: string,
    fn: TaskFunction<unknown>,
    options?: RunOptions,
  ): TaskHandle;
  group(options?: { failFast?: boolean; signal?: AbortSignal }): Group;
}

/** No thumbnail may take longer than this, in milliseconds. */
const THUMBNAIL_TIMEOUT = 60_000;
/** Nor the decode that checks an upload. */
const PROBE_TIMEOUT = 30_000;
/** The largest image accepted, in pixels (width times height): 50 megapixels. */
const MAX_PIXELS = 50_000_000;

/** The routes under `/photos`. */
export function photoRoutes(deps: PhotoDeps): Hono<BackgroundTasksEnv> {
  const { store, pool } = deps;
  const app = new Hono<BackgroundTasksEnv>();

  app.post("/", limitBody(deps.maxUploadBytes), async (c) => {
    if (!hasContentType(c, "multipart/form-data")) {
      return jsonError(
        c,
        415,
        `POST /photos takes multipart/form-data with a 'photo' file field, received Content-Type ${
          show(c.req.header("content-type") ?? "(none)")
        }`,
      );
    }
    let form: Record<string, string | File>;
    try {
      form = await c.req.parseBody();
    } catch (error) {
      return unreadable(c, deps.closing, "The multipart body", error);
    }
    const file = form.photo;
    if (!(file instanceof File)) {
      return jsonError(
        c,
        400,
        "The multipart field 'photo' is missing or is not a file",
      );
    }
    if (file.size === 0) {
      return jsonError(c, 400, "The file in 'photo' is empty");
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    const type = sniff(bytes);
    if (type === undefined) {
      return jsonError(
        c,
        415,
        `The file in 'photo' (${show(file.name)}) is not a JPEG or PNG image`,
      );
    }
    const pixels = declaredPixels(bytes, type);
    if (pixels === undefined || pixels > MAX_PIXELS) {
      // Checked before decoding: a small file may claim a huge image.
      return jsonError(
        c,
        422,
        pixels === undefined
          ? `The file in 'photo' (${
            show(file.name)
          }) has no readable ${type.toUpperCase()} header (truncated or corrupt)`
          : `The image in 'photo' has ${pixels} pixels; the most accepted is ${MAX_PIXELS}`,
      );
    }
    let size: ImageResult;
    try {
      // A full decode, off the event loop: it catches truncated and corrupt files.
      size = await pool.run({ op: "probe", bytes }, {
        signal: AbortSignal.timeout(PROBE_TIMEOUT),
      });
    } catch (error) {
      // The pool closed under the request: the server is shutting down (503).
      if (c.var.tasks.manager.closed) throw error;
      return jsonError(
        c,
        422,
        `The file in 'photo' (${
          show(file.name)
        }) could not be decoded as a ${type.toUpperCase()} image (truncated or corrupt): ${
          messageOf(error)
        }`,
      );
    }
    const meta: PhotoMeta = {
      id: crypto.randomUUID(),
      status: "processing",
      type,
      width: size.width,
      height: size.height,
      createdAt: new Date().toISOString(),
    };
    await store.create(meta, bytes);
    if (deps.enqueue !== undefined) {
      let taskId: string;
      try {
        taskId = await deps.enqueue(meta.id);
      } catch (error) {
        // Not accepted: nothing is kept. (Had the task been stored after
        // all, it finds no photo and does nothing.)
        console.error(
          `photo ${meta.id}: its thumbnails could not be queued: ${
            messageOf(error)
          }`,
        );
        await store.remove(meta.id);
        return unavailable(
          c,
          "The photo could not be queued for processing; try again later",
        );
      }
      await markQueued(store, meta.id, taskId);
    } else {
      try {
        makeThumbnails(c.var.tasks, deps, meta);
      } catch (error) {
        // The manager is shutting down: the photo is stored as "processing"
        // and its thumbnails are made at the next start.
        console.warn(
          `photo ${meta.id}: thumbnails deferred to the next start: ${
            messageOf(error)
          }`,
        );
      }
    }
    c.header("Location", `/photos/${meta.id}`);
    return c.json({ photoId: meta.id, status: meta.status }, 201);
  });

  app.get("/:id", async (c) => {
    const id = c.req.param("id");
    const meta = isUuid(id) ? await store.meta(id) : undefined;
    if (meta === undefined) {
      return jsonError(c, 404, `There is no photo with id ${show(id)}`);
    }
    return c.json({
      photoId: meta.id,
      status: meta.status,
      thumbnails: Object.fromEntries(
        THUMBNAIL_WIDTHS.map((width) => [width, `/photos/${meta.id}/${width}`]),
      ),
      ...(meta.error === undefined ? {} : { error: meta.error }),
    });
  });

  app.get("/:id/:size", async (c) => {
    const id = c.req.param("id");
    const width = Number(c.req.param("size"));
    const meta = isUuid(id) ? await store.meta(id) : undefined;
    if (meta === undefined) {
      return jsonError(c, 404, `There is no photo with id ${show(id)}`);
    }
    if (
      !THUMBNAIL_WIDTHS.includes(width as ThumbnailWidth) ||
      c.req.param("size") !== String(width)
    ) {
      return jsonError(
        c,
        404,
        `There is no thumbnail size ${show(c.req.param("size"))}; sizes are ${
          THUMBNAIL_WIDTHS.join(", ")
        }`,
      );
    }
    const bytes = await store.thumbnail(meta, width as ThumbnailWidth);
    if (bytes === undefined) {
      return jsonError(
        c,
        404,
        `The ${width} px thumbnail of photo ${meta.id} is not there: the photo is ${meta.status}`,
      );
    }
    return c.body(bytes, 200, {
      "Content-Type": CONTENT_TYPES[meta.type],
      "Cache-Control": "public, max-age=3600",
    });
  });

  return app;
}

/**
 * Starts the three thumbnails of a photo as one fail-fast group, each in the
 * worker pool, and a task that records the outcome in `meta.json`: "ready"
 * when all three were made, "failed" (with the error) when one failed. When
 * they were cancelled (shutdown), the photo stays "processing" for the next
 * start.
 *
 * @throws {Error} The task manager is shut down.
 */
export function makeThumbnails(
  spawner: Spawner,
  deps: PhotoDeps,
  meta: PhotoMeta,
): void {
  const { store } = deps;
  const group = spawner.group({ failFast: true });
  addThumbnails(group, deps, meta);
  spawner.run(`finish photo ${meta.id}`, async () => {
    const results = await group.awaitAll();
    const failures = failuresOf(results);
    if (failures.length > 0) {
      console.error(`photo ${meta.id} failed: ${failures.join("; ")}`);
      await store.saveMeta({
        ...meta,
        status: "failed",
        error: failures.join("; "),
      });
    } else if (results.every((result) => result.status === "fulfilled")) {
      await store.saveMeta({ ...meta, status: "ready" });
    }
  });
}

/** Adds the three thumbnail tasks of a photo to `group`, each in the worker pool. */
function addThumbnails(group: Group, deps: PhotoDeps, meta: PhotoMeta): void {
  const { store, pool } = deps;
  for (const width of THUMBNAIL_WIDTHS) {
    group.add(`thumbnail ${width}px ${meta.id}`, async ({ signal }) => {
      const original = await store.original(meta);
      const result = await pool.run(
        { op: "thumbnail", bytes: original, type: meta.type, width },
        { signal, transfer: ownBuffer(original) },
      );
      signal.throwIfAborted();
      await store.saveThumbnail(meta, width, result.bytes!);
      return { width: result.width, height: result.height };
    }, { timeout: THUMBNAIL_TIMEOUT });
  }
}

/** One line per failed task of a group: its name and its error. */
function failuresOf(results: TaskResult<unknown>[]): string[] {
  return results.flatMap((result) =>
    result.status === "rejected"
      ? [`${result.name}: ${messageOf(result.error)}`]
      : []
  );
}

/**
 * Durable mode: the handler of the `make-thumbnails` task. Runs the same
 * fail-fast group of three thumbnails in the worker pool, as tasks of
 * `spawner` (the manager the queue delivers to), and marks the photo "ready";
 * when one fails, the attempt fails (the queue retries it), and after the
 * last attempt the photo is marked "failed". A photo no longer "processing"
 * is left as it is (a task may be delivered twice), and so is one that is
 * not there.
 *
 * @throws {Error} A thumbnail failed, or `signal` aborted them (the queue
 * hands the task back).
 */
export async function thumbnailPhoto(
  spawner: Spawner,
  deps: PhotoDeps,
  photoId: unknown,
  { signal, attempt, attempts }: DurableContext,
): Promise<void> {
  if (typeof photoId !== "string" || !isUuid(photoId)) {
    throw new TypeError(
      `make-thumbnails: 'photoId' must be a photo's UUID, received ${
        JSON.stringify(photoId) ?? "nothing"
      }`,
    );
  }
  const meta = await deps.store.meta(photoId);
  if (meta === undefined) {
    console.warn(`photo ${photoId}: not found; no thumbnails to make`);
    return;
  }
  if (meta.status !== "processing") return;
  const group = spawner.group({ failFast: true, signal });
  addThumbnails(group, deps, meta);
  const results = await group.awaitAll();
  signal.throwIfAborted();
  const failures = failuresOf(results);
  if (failures.length === 0) {
    if (results.every((result) => result.status === "fulfilled")) {
      await deps.store.saveMeta({ ...meta, status: "ready" });
      return;
    }
    failures.push("a thumbnail was cancelled");
  }
  const error = failures.join("; ");
  if (attempt < attempts) {
    console.warn(
      `photo ${meta.id}: thumbnails try ${attempt} of ${attempts} failed: ${error}`,
    );
  } else {
    console.error(`photo ${meta.id} failed: ${error}`);
    await deps.store.saveMeta({ ...meta, status: "failed", error });
  }
  throw new Error(error);
}

/**
 * Durable mode, at start: queues the thumbnails of every photo left
 * "processing" that has no task in the queue (its process died between
 * storing the upload and queueing it); returns how many. The others are
 * left to the queue, which still holds their tasks.
 */
export async function queueUnqueuedPhotos(deps: PhotoDeps): Promise<number> {
  const { store, enqueue } = deps;
  if (enqueue === undefined) return 0;
  let queued = 0;
  for (const meta of await store.list()) {
    if (meta.status !== "processing" || await store.isQueued(meta.id)) {
      continue;
    }
    await markQueued(store, meta.id, await enqueue(meta.id));
    queued++;
  }
  return queued;
}

/**
 * Records that a photo's task is queued. A failure is only logged: the task
 * is stored, and at worst the photo is queued again at the next start.
 */
async function markQueued(
  store: PhotoStore,
  photoId: string,
  taskId: string,
): Promise<void> {
  try {
    await store.markQueued(photoId, taskId);
  } catch (error) {
    console.warn(
      `photo ${photoId}: could not record its queued task ${taskId}: ${
        messageOf(error)
      }`,
    );
  }
}

/** Starts again the thumbnails of every photo left "processing"; returns how many. */
export async function resumePhotos(
  spawner: Spawner,
  deps: PhotoDeps,
): Promise<number> {
  let resumed = 0;
  for (const meta of await deps.store.list()) {
    if (meta.status !== "processing") continue;
    makeThumbnails(spawner, deps, meta);
    resumed++;
  }
  return resumed;
}

/** The image format, from the file's first bytes; `undefined` for anything else. */
function sniff(bytes: Uint8Array): ImageType | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "jpeg";
  }
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (png.every((byte, i) => bytes[i] === byte)) return "png";
  return undefined;
}

/**
 * Width times height, as the image's header declares them (the PNG IHDR
 * chunk, the JPEG SOF segment), without decoding anything; `undefined` when
 * the header is not there.
 */
function declaredPixels(
  bytes: Uint8Array,
  type: ImageType,
): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type === "png") {
    if (bytes.length < 24) return undefined;
    return view.getUint32(16) * view.getUint32(20);
  }
  // JPEG: walk the segments after SOI up to a start-of-frame marker.
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) return undefined;
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 &&
      marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) return view.getUint16(i + 5) * view.getUint16(i + 7);
    i += 2 + view.getUint16(i + 2);
  }
  return undefined;
}

/** The buffer to transfer, when the bytes own all of it (not a pooled slice). */
function ownBuffer(bytes: Uint8Array): ArrayBuffer[] {
  const buffer = bytes.buffer;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 &&
      bytes.byteLength === buffer.byteLength
    ? [buffer]
    : [];
}
