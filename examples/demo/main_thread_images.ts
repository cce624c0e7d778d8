// The image work on the main thread, for comparison only: what the demo does
// with `IMAGES_ON_MAIN_THREAD=1` (bench/health.ts measures `GET /health`
// both ways). Every decode and resize then blocks the event loop.

import type { ImagePool } from "./photos.ts";
import type { ImageJob, ImageResult } from "./thumbnail_worker.ts";

/** The brand that `transfer()` of `@background/tasks/worker` puts on a result. */
const TRANSFER = Symbol.for("@background/tasks/worker.transfer");

type ProcessImage = (job: ImageJob) => Promise<unknown>;

/**
 * An {@linkcode ImagePool} that calls thumbnail_worker.ts's default export
 * in this thread, and unwraps its `transfer()` marker as the pool would. A
 * signal is checked before and after each job: a job cannot be stopped
 * halfway, as a worker can.
 */
export class MainThreadImages implements ImagePool {
  #process: Promise<ProcessImage> | undefined;
  #closed = false;

  async run(
    job: ImageJob,
    options: { signal?: AbortSignal } = {},
  ): Promise<ImageResult> {
    if (this.#closed) throw new Error("The main-thread image pool is closed");
    options.signal?.throwIfAborted();
    // Loaded on first use, as a worker would: imagescript stays out of a
    // server that never makes a thumbnail.
    this.#process ??= import("./thumbnail_worker.ts").then((module) =>
      module.default
    );
    const result = await (await this.#process)(job);
    options.signal?.throwIfAborted();
    return (isTransferred(result) ? result.value : result) as ImageResult;
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

function isTransferred(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null &&
    (value as Record<symbol, unknown>)[TRANSFER] === true;
}
