// The image work of the demo: decode an upload and make one thumbnail of
// it. It runs in an image process (image_process.ts), never in the server's
// process, except with the benchmark knob `IMAGES_ON_MAIN_THREAD=1`.
//
// A photo's three thumbnails are three jobs, run one after the other (a
// group with concurrency 1), widest first: the decoded image is kept between
// them and made smaller in place, so a photo is decoded once, not three times
// (or four, with the check the upload used to get). The job reads the original from
// disk and writes the thumbnail there itself: no image bytes cross between
// the server and the image process.

import { readFile } from "node:fs/promises";
import { Image } from "imagescript";
import { Image as Framebuffer } from "imagescript/v2/index.js";
import { ImageScanner } from "./image_header.ts";
import { writeFileAtomic } from "./storage.ts";

/** Make one thumbnail `width` pixels wide (never wider than the original). */
export interface ThumbnailJob {
  /** The original's path. */
  input: string;
  /** Where to write the thumbnail (atomically). */
  output: string;
  format: "jpeg" | "png";
  width: number;
  /** Whether it is the photo's last job: the decoded original is then let go. */
  last: boolean;
}

/** What a job answers: the thumbnail's size, and the original's. */
export interface ThumbnailResult {
  width: number;
  height: number;
  original: { width: number; height: number };
}

/**
 * The photo whose jobs run now: its original's size, and its image at the
 * last width made. The jobs come widest first, so each thumbnail is made
 * from the one before, in place: no copy of the full-size bitmap.
 */
let cached:
  | { input: string; original: { width: number; height: number }; image: Image }
  | undefined;

/**
 * Runs one job. Throws what imagescript throws for a file it cannot decode
 * (truncated or corrupt data): the photo is then `failed` with that reason.
 */
export async function makeThumbnail(
  job: ThumbnailJob,
): Promise<ThumbnailResult> {
  if (cached?.input !== job.input || cached.image.width < job.width) {
    cached = undefined;
    const image = await decodeImage(await readFile(job.input));
    const original = { width: image.width, height: image.height };
    cached = { input: job.input, original, image };
  }
  const { image, original } = cached;
  if (image.width > job.width) image.resize(job.width, Image.RESIZE_AUTO);
  if (job.last) cached = undefined;
  const encoded = job.format === "jpeg"
    ? await image.encodeJPEG(82)
    : await image.encode(1);
  await writeFileAtomic(job.output, encoded);
  return {
    width: image.width,
    height: image.height,
    original,
  };
}

/**
 * Decodes an original. A grey or YCbCr JPEG goes through imagescript's v2
 * decoder and is copied into a v1 `Image` once: v1's `Image.decode` widens
 * each RGB pixel to RGBA with a `subarray` of its own, 2.7 million
 * short-lived views for a 1900x1400 photo, which on Bun held ~180 MB of heap
 * until the next collection and tripled the decode's time (measured in
 * bench/demo_decode.ts). Both decoders share the same WebAssembly and write
 * the same pixels for these. A CMYK JPEG (v2 converts CMYK by another
 * formula) and a PNG keep v1's decode.
 */
export async function decodeImage(
  bytes: Uint8Array<ArrayBuffer>,
): Promise<Image> {
  const components = jpegComponents(bytes);
  if (components !== 1 && components !== 3) return await Image.decode(bytes);
  const frame = await Framebuffer.decode("jpeg", bytes);
  const image = new Image(frame.width, frame.height);
  image.bitmap.set(frame.u8);
  return image;
}

/** A JPEG's number of components, from its header; `undefined` for anything else. */
function jpegComponents(bytes: Uint8Array): number | undefined {
  const scanner = new ImageScanner();
  try {
    scanner.push(bytes);
    const header = scanner.finish();
    return header.format === "jpeg" ? header.components : undefined;
  } catch {
    return undefined; // not what the upload accepted: v1's decode says why
  }
}
