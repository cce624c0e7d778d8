// POST /photos, GET /photos, GET /photos/:id, GET /photos/:id/:size.
//
// An upload is admitted only while fewer than `maxUploads` are in flight
// (else 503 with Retry-After). Its multipart body is read as a stream
// (multipart.ts: bounded parts, header bytes and body bytes) and the photo's
// bytes go straight to disk, through an ImageScanner (image_header.ts) that
// reads the format, size and structure as they pass: nothing is decoded and
// the bytes are never whole in memory. What the header declares must fit the
// decode budget (`maxWork`). The photo is then committed (one rename),
// answered 201 with the status "processing", and its thumbnails are made in
// the background.
//
// The background work: a task `photo <id>` of the server's manager runs the
// three thumbnails, widest first, as one fail-fast group of the image
// manager (`deps.images`), whose concurrency is the number of image
// processes: the one place where CPU work waits. A thumbnail's timeout runs
// from the moment it starts, never while it waits. Each thumbnail is a job
// in an image process (image_processes.ts) that a timeout or a cancel
// kills. A file that does not decode ends `failed` with the decoder's
// reason; a try that failed for a transient reason (its timeout, a process
// that died) is tried again, up to 3 tries; a try cut short by the shutdown
// leaves the photo "processing", and `resumePhotos` starts it again at the
// next start.
//
// In durable mode (durable.ts) the thumbnails are a task of the durable
// queue instead, run by whichever process takes it (`thumbnailPhoto`): the
// upload is answered 201 only once the task is stored, and the photo folder
// then records it (`queued`). At start, a photo still "processing" without
// that record (its process died between storing and queueing) is queued.

import type {
  RunOptions,
  TaskFunction,
  TaskHandle,
  TaskManager,
  TaskResult,
} from "@background/tasks";
import type { BackgroundTasksEnv } from "@background/tasks/hono";
import type { DurableContext } from "@background/tasks/durable";
import { type Context, Hono } from "hono";
import {
  hasContentType,
  jsonError,
  messageOf,
  show,
  unavailable,
  unreadable,
} from "./http.ts";
import { decodeWork, ImageRefusal, ImageScanner } from "./image_header.ts";
import type { ImagePool } from "./image_processes.ts";
import {
  boundaryOf,
  MultipartError,
  type PartInfo,
  readMultipart,
} from "./multipart.ts";
import {
  CONTENT_TYPES,
  isUuid,
  type PhotoMeta,
  type PhotoStore,
  THUMBNAIL_WIDTHS,
  type ThumbnailWidth,
} from "./storage.ts";

export type { ImagePool };

/** What the photo routes and the thumbnail pipeline need. */
export interface PhotoDeps {
  store: PhotoStore;
  /** Aborted once the server shuts down. */
  closing: AbortSignal;
  /** Where the image jobs run. */
  pool: ImagePool;
  /**
   * The manager where image work waits and runs: its concurrency is the
   * pool's size, so a thumbnail task starts only when a process is free.
   */
  images: TaskManager;
  /** The largest request body accepted by `POST /photos`, in bytes. */
  maxUploadBytes: number;
  /** Uploads in flight at once; beyond, 503 with Retry-After. */
  uploads: UploadGate;
  /** The most decode work an upload may declare (image_header.ts, `decodeWork`). */
  maxWork: number;
  /** A thumbnail's timeout in ms; by default 10 s plus 1 µs per unit of decode work. */
  imageTimeout?: number;
  /**
   * Durable mode: stores the photo's thumbnails task in the queue and
   * resolves with the task's id, or rejects (the queue cannot be reached).
   * Without it, the thumbnails are made by tasks of this process.
   */
  enqueue?: (photoId: string) => Promise<string>;
  /** Told of every thumbnail task as it is queued (the operator's page lists them). */
  onQueued?: (task: TaskHandle) => void;
}

/** Where background work starts: `c.var.tasks` in a request, the manager otherwise. */
export interface Spawner {
  run(
    name: string,
    fn: TaskFunction<unknown>,
    options?: RunOptions,
  ): TaskHandle;
}

/**
 * Counts the uploads in flight and refuses one over the limit. Admission is
 * checked before a byte of the body is read.
 */
export class UploadGate {
  readonly limit: number;
  #inFlight = 0;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(
        `Cannot create UploadGate: 'limit' must be a positive integer, received ${limit}`,
      );
    }
    this.limit = limit;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Takes a place if one is free; the caller must `leave()` once done. */
  enter(): boolean {
    if (this.#inFlight >= this.limit) return false;
    this.#inFlight++;
    return true;
  }

  leave(): void {
    this.#inFlight--;
  }
}

/** Tries of a photo's thumbnails before a transient failure counts. */
export const THUMBNAIL_TRIES = 3;
/** A thumbnail's timeout: this, plus {@linkcode TIMEOUT_PER_WORK} per unit of decode work. */
const TIMEOUT_BASE = 10_000;
/** 1 µs per pixel-equivalent: about 4 times the slowest decode measured (Bun). */
const TIMEOUT_PER_WORK = 0.001;
/** The bounds of an upload's multipart body besides its size. */
const MAX_PARTS = 16;
const MAX_PART_HEADER_BYTES = 8 * 1024;
/** How long a client told 503 (too many uploads) should wait, in seconds. */
const BUSY_RETRY_AFTER = 1;

/** The routes under `/photos`. */
export function photoRoutes(
  deps: PhotoDeps,
  spawnerOf: (c: { var: BackgroundTasksEnv["Variables"] }) => Spawner = (c) =>
    c.var.tasks,
): Hono<BackgroundTasksEnv> {
  const { store } = deps;
  const app = new Hono<BackgroundTasksEnv>();

  app.post("/", async (c) => {
    const contentType = c.req.header("content-type") ?? "";
    if (!hasContentType(c, "multipart/form-data")) {
      return jsonError(
        c,
        415,
        `POST /photos takes multipart/form-data with a 'photo' file field, received Content-Type ${
          show(contentType || "(none)")
        }`,
      );
    }
    const boundary = boundaryOf(contentType);
    if (boundary === undefined || c.req.raw.body === null) {
      return jsonError(
        c,
        400,
        `POST /photos needs a multipart body with a boundary, received Content-Type ${
          show(contentType)
        }`,
      );
    }
    const declared = Number(c.req.header("content-length"));
    if (declared > deps.maxUploadBytes) {
      return jsonError(
        c,
        413,
        `The request body is larger than ${deps.maxUploadBytes} bytes`,
      );
    }
    if (!deps.uploads.enter()) {
      c.header("Retry-After", String(BUSY_RETRY_AFTER));
      return jsonError(
        c,
        503,
        `The server is receiving ${deps.uploads.limit} uploads already; try again in ${BUSY_RETRY_AFTER} s`,
      );
    }
    try {
      return await receive(c, boundary);
    } finally {
      deps.uploads.leave();
    }
  });

  /** Reads the upload to disk, checks it, commits it, answers. */
  async function receive(
    c: Context<BackgroundTasksEnv>,
    boundary: string,
  ): Promise<Response> {
    const id = crypto.randomUUID();
    const incoming = await store.receive(id);
    let committed = false;
    try {
      const scanner = new ImageScanner();
      let photo: PartInfo | undefined;
      let refusal: ImageRefusal | undefined;
      const started = performance.now();
      try {
        await readMultipart(c.req.raw.body!, boundary, (part) => {
          if (part.name !== "photo") return undefined;
          if (photo !== undefined) {
            throw new MultipartError(
              400,
              "The multipart field 'photo' is there twice",
            );
          }
          photo = part;
          if (part.filename === undefined) return undefined;
          return {
            write: async (chunk) => {
              if (refusal !== undefined) return; // read on, keep nothing
              try {
                scanner.push(chunk);
              } catch (error) {
                if (!(error instanceof ImageRefusal)) throw error;
                refusal = error;
                return;
              }
              await incoming.write(chunk);
            },
          };
        }, {
          maxParts: MAX_PARTS,
          maxHeaderBytes: MAX_PART_HEADER_BYTES,
          maxBytes: deps.maxUploadBytes,
        });
      } catch (error) {
        if (error instanceof MultipartError) {
          return jsonError(c, error.status, error.message);
        }
        if (c.req.raw.signal.aborted && !deps.closing.aborted) {
          // The client went away mid-upload: nobody reads this answer, and
          // it is not the server's error.
          return jsonError(
            c,
            400,
            "The client closed the connection during the upload",
          );
        }
        return unreadable(c, deps.closing, "The multipart body", error);
      }
      const bodyEnd = performance.now();
      if (photo === undefined || photo.filename === undefined) {
        return jsonError(
          c,
          400,
          "The multipart field 'photo' is missing or is not a file",
        );
      }
      const name = photo.filename;
      if (scanner.bytes === 0) {
        return jsonError(c, 400, "The file in 'photo' is empty");
      }
      let header;
      try {
        if (refusal !== undefined) throw refusal;
        header = scanner.finish();
      } catch (error) {
        if (!(error instanceof ImageRefusal)) throw error;
        return jsonError(
          c,
          error.status,
          `The file in 'photo' (${show(name)}) ${error.message}`,
        );
      }
      const work = decodeWork(header, scanner.bitDepth);
      if (work > deps.maxWork) {
        return jsonError(
          c,
          422,
          `The image in 'photo' (${
            show(name)
          }) declares ${header.width}x${header.height} pixels in ${header.scans} scan(s): ${work} units of decode work (pixels x (1 + scans/100)); the most accepted is ${deps.maxWork}`,
        );
      }
      const meta: PhotoMeta = {
        id,
        status: "processing",
        type: header.format,
        width: header.width,
        height: header.height,
        createdAt: new Date().toISOString(),
        name: name.length > 80 ? `${name.slice(0, 80)}…` : name,
        bytes: scanner.bytes,
        scans: header.scans,
        work,
      };
      await incoming.commit(meta);
      committed = true;
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
          processPhoto(spawnerOf(c), deps, meta);
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
      // How long the body took to arrive, and then the answer (bench/demo_upload.ts).
      c.header(
        "Server-Timing",
        `body;dur=${(bodyEnd - started).toFixed(2)}, store;dur=${
          (performance.now() - bodyEnd).toFixed(2)
        }`,
      );
      return c.json({ photoId: meta.id, status: meta.status }, 201);
    } finally {
      if (!committed) await incoming.discard();
    }
  }

  app.get("/", async (c) => {
    const photos = (await store.list())
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, 50);
    return c.json({ photos: photos.map(describe) });
  });

  app.get("/:id", async (c) => {
    const id = c.req.param("id");
    const meta = isUuid(id) ? await store.meta(id) : undefined;
    if (meta === undefined) {
      return jsonError(c, 404, `There is no photo with id ${show(id)}`);
    }
    return c.json(describe(meta));
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
    const bytes = meta.status === "ready"
      ? await store.thumbnail(meta, width as ThumbnailWidth)
      : undefined;
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

/** A photo as the API shows it. */
function describe(meta: PhotoMeta): Record<string, unknown> {
  return {
    photoId: meta.id,
    status: meta.status,
    thumbnails: Object.fromEntries(
      THUMBNAIL_WIDTHS.map((width) => [width, `/photos/${meta.id}/${width}`]),
    ),
    type: meta.type,
    width: meta.width,
    height: meta.height,
    createdAt: meta.createdAt,
    ...(meta.name === undefined ? {} : { name: meta.name }),
    ...(meta.attempts === undefined ? {} : { attempts: meta.attempts }),
    ...(meta.error === undefined ? {} : { error: meta.error }),
  };
}

/** A thumbnail's timeout for this photo, in ms. */
function timeoutOf(deps: PhotoDeps, meta: PhotoMeta): number {
  if (deps.imageTimeout !== undefined) return deps.imageTimeout;
  const work = meta.work ?? meta.width * meta.height;
  return Math.round(TIMEOUT_BASE + work * TIMEOUT_PER_WORK);
}

/** How one try of a photo's thumbnails ended. */
type TryOutcome =
  | { ok: true }
  | { ok: false; error: string; transient: boolean };

/**
 * One try of a photo's three thumbnails: a fail-fast group of the image
 * manager with concurrency 1, widest first (the image process makes each
 * from the one before). `signal` cancels the try.
 *
 * The thumbnails after the first have priority 1, so a photo under way goes
 * ahead of photos not yet begun: its next thumbnail joins the image
 * manager's queue only when the one before settles, behind every other
 * photo's first, and without the priority each of its thumbnails would find
 * the image process holding another photo and decode the original again
 * (under load, three decodes per photo instead of one). The same priority
 * for both keeps them widest first in the group.
 */
async function thumbnailsOnce(
  deps: PhotoDeps,
  meta: PhotoMeta,
  signal: AbortSignal,
  progress: (value: number) => void,
): Promise<TryOutcome> {
  const { store, pool } = deps;
  const group = deps.images.group({ failFast: true, concurrency: 1, signal });
  const widths = [...THUMBNAIL_WIDTHS].sort((a, b) => b - a);
  const input = store.originalPath(meta);
  const timeout = timeoutOf(deps, meta);
  for (const [i, width] of widths.entries()) {
    const task = group.add(
      `thumbnail ${width}px ${meta.id}`,
      ({ signal }) =>
        pool.run({
          input,
          output: store.thumbnailPath(meta, width),
          format: meta.type,
          width,
          last: i === widths.length - 1,
        }, { signal }),
      { timeout, priority: i === 0 ? 0 : 1 },
    );
    deps.onQueued?.(task);
    // The photo's progress: the share of its thumbnails made. An operator's
    // cancel of one thumbnail cancels the photo's others too (fail-fast only
    // reacts to failures).
    task.value.then(
      () => progress((i + 1) / widths.length),
      (reason) => {
        if (task.status === "cancelled") group.cancel(reason);
      },
    );
  }
  const results = await group.awaitAll();
  const failures = results.filter((result) => result.status !== "fulfilled");
  if (failures.length === 0) return { ok: true };
  const rejected = failures.filter((result) =>
    result.status === "rejected"
  ) as (TaskResult<unknown> & { status: "rejected" })[];
  if (rejected.length === 0) {
    const [first] =
      failures as (TaskResult<unknown> & { status: "cancelled" })[];
    return {
      ok: false,
      error: `${first.name} was cancelled: ${messageOf(first.reason)}`,
      transient: false,
    };
  }
  return {
    ok: false,
    error: rejected.map((r) => `${r.name}: ${messageOf(r.error)}`).join("; "),
    transient: rejected.every((r) => isTransient(r.error)),
  };
}

/** A timeout or a dead process may not happen again; a decode error will. */
function isTransient(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === "TimeoutError" || name === "ImageProcessExit";
}

/**
 * Starts the background work of a photo: a task `photo <id>` that makes its
 * thumbnails (up to {@linkcode THUMBNAIL_TRIES} tries when a try failed for
 * a transient reason) and records the outcome in `meta.json`: "ready", or
 * "failed" with the reason. Cancelled by the shutdown, the photo stays
 * "processing" for the next start; cancelled by an operator, it fails.
 *
 * @throws {Error} The task manager is shut down.
 */
export function processPhoto(
  spawner: Spawner,
  deps: PhotoDeps,
  meta: PhotoMeta,
): void {
  const { store } = deps;
  spawner.run(`photo ${meta.id}`, async ({ signal, progress }) => {
    for (let attempt = 1;; attempt++) {
      progress(0);
      const outcome = await thumbnailsOnce(deps, meta, signal, progress);
      const now = new Date().toISOString();
      if (outcome.ok) {
        await store.saveMeta({
          ...meta,
          status: "ready",
          attempts: attempt,
          updatedAt: now,
        });
        return;
      }
      if (signal.aborted && (deps.closing.aborted || deps.images.closed)) {
        // The shutdown: "processing" still, for the next start.
        throw signal.reason;
      }
      if (!signal.aborted && outcome.transient && attempt < THUMBNAIL_TRIES) {
        console.warn(
          `photo ${meta.id}: thumbnails try ${attempt} of ${THUMBNAIL_TRIES} failed, trying again: ${outcome.error}`,
        );
        continue;
      }
      const error = signal.aborted
        ? `cancelled: ${messageOf(signal.reason)}`
        : outcome.error;
      console.error(`photo ${meta.id} failed: ${error}`);
      await store.saveMeta({
        ...meta,
        status: "failed",
        error,
        attempts: attempt,
        updatedAt: now,
      });
      return;
    }
  });
}

/**
 * Durable mode: the handler of the `make-thumbnails` task. Makes the
 * photo's thumbnails once (the queue retries), as tasks of the image
 * manager, and marks the photo "ready"; after the last attempt fails the
 * photo is marked "failed". A photo no longer "processing" is left as it is
 * (a task may be delivered twice), and so is one that is not there.
 *
 * @param _spawner The manager the queue delivers to; the thumbnails run in
 * `deps.images`, where image work waits.
 * @throws {Error} A thumbnail failed, or `signal` aborted them (the queue
 * hands the task back).
 */
export async function thumbnailPhoto(
  _spawner: unknown,
  deps: PhotoDeps,
  photoId: unknown,
  { signal, attempt, attempts, progress }: DurableContext,
): Promise<void> {
  if (typeof photoId !== "string" || !isUuid(photoId)) {
    throw new TypeError(
      `make-thumbnails: 'photoId' must be a photo's UUID, received ${
        show(JSON.stringify(photoId) ?? "nothing")
      }`,
    );
  }
  const meta = await deps.store.meta(photoId);
  if (meta === undefined) {
    console.warn(`photo ${photoId}: not found; no thumbnails to make`);
    return;
  }
  if (meta.status !== "processing") return;
  const outcome = await thumbnailsOnce(deps, meta, signal, progress);
  signal.throwIfAborted();
  const now = new Date().toISOString();
  if (outcome.ok) {
    await deps.store.saveMeta({
      ...meta,
      status: "ready",
      attempts: attempt,
      updatedAt: now,
    });
    return;
  }
  if (attempt < attempts) {
    console.warn(
      `photo ${meta.id}: thumbnails try ${attempt} of ${attempts} failed: ${outcome.error}`,
    );
  } else {
    console.error(`photo ${meta.id} failed: ${outcome.error}`);
    await deps.store.saveMeta({
      ...meta,
      status: "failed",
      error: outcome.error,
      attempts: attempt,
      updatedAt: now,
    });
  }
  throw new Error(outcome.error);
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
    processPhoto(spawner, deps, meta);
    resumed++;
  }
  return resumed;
}
