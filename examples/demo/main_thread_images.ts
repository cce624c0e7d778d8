// The image work on the main thread, for comparison only: what the demo does
// with `IMAGES_ON_MAIN_THREAD=1` (bench/health.ts measures `GET /health`
// both ways). Every decode and resize then blocks the event loop.

import type { ImagePool } from "./image_processes.ts";
import type { ThumbnailJob, ThumbnailResult } from "./image_job.ts";

type MakeThumbnail = (job: ThumbnailJob) => Promise<ThumbnailResult>;

/**
 * An {@linkcode ImagePool} that calls image_job.ts's `makeThumbnail` in this
 * thread. A signal is checked before and after each job: a job cannot be
 * stopped halfway, as a process can.
 */
export class MainThreadImages implements ImagePool {
  #make: Promise<MakeThumbnail> | undefined;
  #closed = false;

  readonly processes: { pid: number; busy: boolean }[] = [];

  async run(
    job: ThumbnailJob,
    options: { signal?: AbortSignal } = {},
  ): Promise<ThumbnailResult> {
    if (this.#closed) throw new Error("The main-thread image pool is closed");
    options.signal?.throwIfAborted();
    // Loaded on first use, as a process would: imagescript stays out of a
    // server that never makes a thumbnail.
    this.#make ??= import("./image_job.ts").then((module) =>
      module.makeThumbnail
    );
    const result = await (await this.#make)(job);
    options.signal?.throwIfAborted();
    return result;
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
