// Makes a 300 px thumbnail of a photo in a worker, as a background task.
//
//   deno run -A examples/worker/main.ts [photo.jpg]    bun examples/worker/main.ts [photo.jpg]
//
// Without a path it makes a 1600×1200 photo to resize. It prints the sizes,
// and exits once the pool is closed (`await using`: Deno keeps an idle worker,
// and so the process, alive until then).

import { readFile } from "node:fs/promises";
import process from "node:process";
import { Image } from "imagescript";
import { TaskManager } from "@background/tasks";
import { WorkerPool } from "@background/tasks/worker";
import type { Input } from "./thumbnail.ts";

const path = process.argv[2];
const photo: Uint8Array = path === undefined
  ? await new Image(1600, 1200).fill(0x3366ccff).encodeJPEG(85)
  : await readFile(path);
const size = photo.byteLength;

const tasks = new TaskManager();
await using pool = new WorkerPool<Input, Uint8Array>(
  new URL("./thumbnail.ts", import.meta.url),
  { size: 2 },
);
const thumb = tasks.runWithResult(
  "thumb-300",
  ({ signal }) =>
    pool.run({ bytes: photo, width: 300 }, { signal, transfer: [photo] }),
);
const bytes = await thumb.value;
const { width, height } = await Image.decode(bytes);
console.log(
  JSON.stringify({
    photoBytes: size,
    thumbBytes: bytes.byteLength,
    width,
    height,
  }),
);
