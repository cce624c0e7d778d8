// transfer(): how a worker function hands its buffers back without a copy.
// The brand is read by _host.js, which cannot import this file.

import { show } from "../core/_validate.ts";

/**
 * What {@linkcode transfer} returns: a result whose listed objects move to
 * the calling thread instead of being copied. The pool unwraps it: `run()`
 * resolves with `value`.
 *
 * @example What a worker function returns
 * ```ts
 * import { transfer, type Transferred } from "@background/tasks/worker";
 * import assert from "node:assert/strict";
 *
 * const pixels = new Uint8Array(16);
 * const result: Transferred<Uint8Array> = transfer(pixels, [pixels.buffer]);
 * assert.equal(result.value, pixels);
 * assert.deepEqual(result.transfer, [pixels.buffer]);
 * ```
 */
export interface Transferred<T> {
  /** The result `run()` resolves with. */
  readonly value: T;
  /** The objects of `value` to transfer. */
  readonly transfer: readonly Transferable[];
}

/** The brand of a {@linkcode Transferred}; the worker host checks the same key. */
const TRANSFER = Symbol.for("@background/tasks/worker.transfer");

/**
 * Marks a worker function's result so that the listed objects (the
 * `ArrayBuffer`s of an encoded image, say) are transferred to the calling
 * thread instead of copied. Use it inside the module a
 * {@linkcode WorkerPool} runs; `run()` resolves with `value` itself.
 *
 * @param value The result.
 * @param transferables The objects of `value` to transfer; they are detached
 * in the worker once sent.
 * @returns A marked result, for the function to return.
 * @throws {TypeError} `transferables` is not an array.
 *
 * @example Return an encoded image without copying it
 * ```ts
 * import { WorkerPool } from "@background/tasks/worker";
 * import assert from "node:assert/strict";
 *
 * // The module the pool runs (usually a file of its own):
 * const encode = `
 *   import { transfer } from "@background/tasks/worker";
 *   export default (size) => {
 *     const bytes = new Uint8Array(size).fill(7);
 *     return transfer(bytes, [bytes.buffer]);
 *   };`;
 * await using pool = new WorkerPool<number, Uint8Array>(
 *   `data:text/javascript,${encodeURIComponent(encode)}`,
 *   { size: 1 },
 * );
 * const bytes = await pool.run(4);
 * assert.deepEqual([...bytes], [7, 7, 7, 7]);
 * ```
 */
export function transfer<T>(
  value: T,
  transferables: Transferable[],
): Transferred<T> {
  if (!Array.isArray(transferables)) {
    throw new TypeError(
      `Cannot mark a result for transfer: 'transferables' must be an array, received ${
        show(transferables)
      }`,
    );
  }
  return { [TRANSFER]: true, value, transfer: transferables } as Transferred<T>;
}
