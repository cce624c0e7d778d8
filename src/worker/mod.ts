/**
 * Runs CPU-bound work (resizing images, parsing big files, compressing) in a
 * pool of module workers, so that it does not stall the server's event loop,
 * and stops it for real when it is cancelled.
 *
 * {@linkcode WorkerPool} calls one exported function of one module in a small
 * number of workers; {@linkcode transfer} lets that function hand its
 * `ArrayBuffer`s back without a copy. Built on the web-standard `Worker` and
 * `postMessage` only: it works on Deno, Bun and in browsers. Node 22 has no
 * global `Worker`, and edge hosts (Cloudflare Workers, Vercel Edge) have none
 * either: there `run()` rejects with an error that says so.
 *
 * @example Make a thumbnail off the main thread, as a background task
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import { WorkerPool } from "@background/tasks/worker";
 * import assert from "node:assert/strict";
 *
 * // In an app: new WorkerPool(new URL("./thumbnail.ts", import.meta.url))
 * const thumbnail = "export default ({ width }) => ({ width: Math.round(width / 10) });";
 * await using pool = new WorkerPool<{ width: number }, { width: number }>(
 *   `data:text/javascript,${encodeURIComponent(thumbnail)}`,
 *   { size: 1 },
 * );
 * const tasks = new TaskManager();
 * const thumb = tasks.runWithResult("thumbnail", ({ signal }) =>
 *   pool.run({ width: 3000 }, { signal }));
 * assert.deepEqual(await thumb.value, { width: 300 });
 * ```
 *
 * @module
 */

export { transfer, type TransferItem, type Transferred } from "./transfer.ts";
export {
  WorkerPool,
  type WorkerPoolOptions,
  type WorkerRunOptions,
} from "./worker_pool.ts";
