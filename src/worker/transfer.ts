// transfer(): how a worker function hands its buffers back without a copy,
// and the one rule for what may be listed to transfer, shared with
// WorkerPool.run. The brand is read by _host.js, which cannot import this file.

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
  /** The objects of `value` to transfer: typed arrays given are replaced by their buffers. */
  readonly transfer: readonly Transferable[];
}

/**
 * What may be listed to transfer: anything `postMessage` transfers (an
 * `ArrayBuffer`, a `MessagePort`, a stream), an `ArrayBuffer` typed as
 * `ArrayBufferLike` (what `bytes.buffer` is in TypeScript), or a typed array
 * or `DataView`, whose buffer is transferred.
 */
export type TransferItem = Transferable | ArrayBufferLike | ArrayBufferView;

/** The brand of a {@linkcode Transferred}; the worker host checks the same key. */
const TRANSFER = Symbol.for("@background/tasks/worker.transfer");

/**
 * Marks a worker function's result so that the listed objects (the bytes of
 * an encoded image, say) are transferred to the calling thread instead of
 * copied. Use it inside the module a {@linkcode WorkerPool} runs; `run()`
 * resolves with `value` itself.
 *
 * List what you have: a typed array (its buffer is transferred), or its
 * `buffer`. A typed array that covers only part of its buffer (a view into a
 * larger one, such as WebAssembly memory) cannot move alone: when it is the
 * result itself it is copied into a buffer of its own first, and otherwise
 * `transfer` throws and says what to do. A buffer the runtime refuses to
 * transfer (Bun marks some, such as imagescript's encoder output) is copied
 * instead, without an error.
 *
 * @param value The result.
 * @param transferables The objects of `value` to transfer; they are detached
 * in the worker once sent.
 * @returns A marked result, for the function to return.
 * @throws {TypeError} `transferables` is not an array, or lists a
 * `SharedArrayBuffer` (shared, never transferred), or a partial view that is
 * not the result itself.
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
 *     return transfer(bytes, [bytes]);
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
  transferables: readonly TransferItem[],
): Transferred<T> {
  const prepared = transferList(
    "Cannot mark a result for transfer",
    "transferables",
    value,
    transferables,
  );
  return {
    [TRANSFER]: true,
    value: prepared.value,
    transfer: prepared.transfer,
  } as Transferred<T>;
}

/**
 * The list `postMessage` is given for `items`: each typed array replaced by
 * its buffer. A view that covers only part of its buffer is copied into one
 * of its own when it is `value` itself (the copy is returned as `value`);
 * anywhere else it throws, as a `SharedArrayBuffer` does.
 */
export function transferList<T>(
  where: string,
  argument: string,
  value: T,
  items: unknown,
): { value: T; transfer: Transferable[] } {
  if (!Array.isArray(items)) {
    throw new TypeError(
      `${where}: '${argument}' must be an array, received ${show(items)}`,
    );
  }
  const transfer: Transferable[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (
      typeof SharedArrayBuffer === "function" &&
      item instanceof SharedArrayBuffer
    ) {
      throw new TypeError(
        `${where}: '${argument}[${i}]' is a SharedArrayBuffer: it is shared between threads as it is, never transferred; leave it out of the list`,
      );
    }
    if (!ArrayBuffer.isView(item)) {
      transfer.push(item as Transferable);
      continue;
    }
    const buffer = item.buffer;
    if (
      typeof SharedArrayBuffer === "function" &&
      buffer instanceof SharedArrayBuffer
    ) {
      throw new TypeError(
        `${where}: '${argument}[${i}]' is a view of a SharedArrayBuffer: it is shared between threads as it is, never transferred; leave it out of the list`,
      );
    }
    if (item.byteOffset === 0 && item.byteLength === buffer.byteLength) {
      transfer.push(buffer as ArrayBuffer);
    } else if (item === value) {
      const copy = copyView(item);
      value = copy as T;
      transfer.push(copy.buffer as ArrayBuffer);
    } else {
      throw new TypeError(
        `${where}: '${argument}[${i}]' is ${
          show(item)
        } over ${item.byteLength} of the ${buffer.byteLength} bytes of its buffer: transferring the buffer would move the rest too. Put a copy in its place (view.slice()) and list the copy`,
      );
    }
  }
  return { value, transfer };
}

/** A copy of a view, over a buffer of its own. */
function copyView(view: ArrayBufferView): ArrayBufferView {
  const bytes = (view.buffer as ArrayBuffer).slice(
    view.byteOffset,
    view.byteOffset + view.byteLength,
  );
  if (view instanceof DataView) return new DataView(bytes);
  const Typed = view.constructor as new (
    buffer: ArrayBuffer,
  ) => ArrayBufferView;
  return new Typed(bytes);
}
