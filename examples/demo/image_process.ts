// The program each image process runs (image_processes.ts starts it with
// the server's own runtime): it reads one JSON job per line on stdin, runs
// it, and writes one JSON reply per line on stdout. It ends when stdin
// closes. The server kills it with SIGKILL to stop a job: that stops a
// WebAssembly decode at once, which `Worker.terminate()` does not do on
// Deno or Bun (bench/demo_cancel.ts).
//
// Once a photo's last job is answered, it collects garbage: a photo leaves
// tens of MB of large buffers (the original, its bitmap, the decoder's
// WebAssembly memory), which the collector would otherwise let pile up
// across photos. With that, the decode of image_job.ts and the order of
// photos.ts, 100 uploads of a 4.2 MB JPEG took this process's peak RSS from
// 166 MB (Deno) and 333 MB (Bun) to 146 and 110 MB (bench/demo_upload.ts).

import process from "node:process";
import { createInterface } from "node:readline";
import { makeThumbnail, type ThumbnailJob } from "./image_job.ts";

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let reply: unknown;
  let job: ThumbnailJob | undefined;
  try {
    job = JSON.parse(line) as ThumbnailJob;
    reply = { ok: true, value: await makeThumbnail(job) };
  } catch (error) {
    const { name, message } = error instanceof Error
      ? error
      : { name: "Error", message: String(error) };
    reply = { ok: false, error: { name, message } };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  if (job?.last) collectGarbage();
}

/** A full collection, where the runtime lets a program ask for one. */
function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(sync: boolean): void } }).Bun;
  if (bun) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}
