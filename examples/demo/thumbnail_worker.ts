// The image work, run in a WorkerPool so that decoding a 10 MB upload never
// blocks the server's event loop. Imported only by the pool's workers.

import { transfer, type Transferred } from "@background/tasks/worker";
import { Image } from "imagescript";
import type { ImageType } from "./storage.ts";

/** Decode an upload to check it is a whole image, and read its size. */
export interface ProbeJob {
  op: "probe";
  bytes: Uint8Array;
}

/** Make one thumbnail `width` pixels wide (never wider than the original). */
export interface ThumbnailJob {
  op: "thumbnail";
  bytes: Uint8Array;
  type: ImageType;
  width: number;
}

/** What the main thread sends to a worker. */
export type ImageJob = ProbeJob | ThumbnailJob;

/** What a worker answers: the image's size, and the encoded thumbnail. */
export interface ImageResult {
  width: number;
  height: number;
  bytes?: Uint8Array;
}

/**
 * Runs one job. A probe throws when the bytes are not a whole JPEG or PNG
 * (imagescript rejects truncated and corrupt data). A thumbnail's bytes are
 * transferred back to the main thread, not copied.
 */
export default async function processImage(
  job: ImageJob,
): Promise<ImageResult | Transferred<ImageResult>> {
  const image = await Image.decode(job.bytes);
  if (job.op === "probe") return { width: image.width, height: image.height };
  if (job.width < image.width) image.resize(job.width, Image.RESIZE_AUTO);
  const encoded = job.type === "jpeg"
    ? await image.encodeJPEG(82)
    : await image.encode(1);
  // A copy that owns its whole buffer, so that the buffer can be transferred.
  const bytes = encoded.slice();
  return transfer({ width: image.width, height: image.height, bytes }, [
    bytes.buffer,
  ]);
}
