// WorkerPool: a pool of module workers, each running _host.js, that call one
// exported function of one module (the messages: _protocol.ts).

import {
  FROM,
  type RemoteError,
  type WorkerReply,
  type WorkerRequest,
} from "./_protocol.ts";
import { Queue } from "../core/_queue.ts";
import { type TransferItem, transferList } from "./transfer.ts";
import { checkOptions, COUNT, show, SIGNAL } from "../core/_validate.ts";

/**
 * Options for {@linkcode WorkerPool}.
 *
 * @example Two workers calling a named export
 * ```ts
 * import { WorkerPool, type WorkerPoolOptions } from "@background/tasks/worker";
 * import assert from "node:assert/strict";
 *
 * const options: WorkerPoolOptions = { size: 2, export: "area" };
 * await using pool = new WorkerPool<{ w: number; h: number }, number>(
 *   "data:text/javascript,export const area = ({ w, h }) => w * h;",
 *   options,
 * );
 * assert.equal(pool.size, 2);
 * assert.equal(await pool.run({ w: 3, h: 4 }), 12);
 * ```
 */
export interface WorkerPoolOptions {
  /**
   * How many workers the pool may start: a positive integer. Workers start
   * one at a time, when a run finds no idle worker.
   *
   * @default {one less than `navigator.hardwareConcurrency`, between 1 and 4}
   */
  size?: number;
  /**
   * The name of the module's export to call with each input. It must be a
   * function; it may be async.
   *
   * @default {"default"}
   */
  export?: string;
}

/**
 * Options for {@linkcode WorkerPool.prototype.run}.
 *
 * @example Give a run a deadline
 * ```ts
 * import { WorkerPool } from "@background/tasks/worker";
 * import assert from "node:assert/strict";
 *
 * await using pool = new WorkerPool<number, number>(
 *   "data:text/javascript,export default (n) => n * 2;",
 *   { size: 1 },
 * );
 * const doubled = await pool.run(21, { signal: AbortSignal.timeout(10_000) });
 * assert.equal(doubled, 42);
 * ```
 */
export interface WorkerRunOptions {
  /**
   * Cancels the run: the promise rejects with `signal.reason`. A queued run
   * leaves the queue; a running one has its worker terminated, which stops
   * even a busy loop, and a new worker takes its place when one is needed.
   */
  signal?: AbortSignal;
  /**
   * Objects of `input` to transfer to the worker instead of copying: an
   * `ArrayBuffer`, a typed array (its buffer moves), anything `postMessage`
   * transfers. After the call they are detached here. A typed array over
   * part of a larger buffer is copied when it is `input` itself (else the
   * call throws and says what to do); a buffer the runtime refuses to
   * transfer is copied instead.
   *
   * @default {[]}
   */
  transfer?: readonly TransferItem[];
}

interface Slot {
  readonly worker: Worker;
  job: Job | undefined;
}

interface Job {
  /** The caller's input; for a run that waits, a copy taken at `run()`. */
  input: unknown;
  transfer: Transferable[];
  readonly signal: AbortSignal | undefined;
  readonly resolve: (value: never) => void;
  readonly reject: (reason: unknown) => void;
  onAbort: (() => void) | undefined;
  /** The worker running it; `undefined` while queued. */
  slot: Slot | undefined;
  settled: boolean;
}

const ERRORS: Record<string, new (message: string) => Error> = {
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
};

/** Rebuilds an error thrown in a worker, with its name, message and stack. */
function revive(remote: RemoteError): Error {
  let error: Error;
  if (remote.dom) {
    error = new DOMException(remote.message, remote.name);
  } else {
    const ErrorClass = Object.hasOwn(ERRORS, remote.name)
      ? ERRORS[remote.name]
      : Error;
    error = new ErrorClass(remote.message);
    if (error.name !== remote.name) define(error, "name", remote.name);
  }
  if (remote.stack !== undefined) define(error, "stack", remote.stack);
  return error;
}

function define(error: Error, key: string, value: string): void {
  Object.defineProperty(error, key, {
    value,
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

/** The default size: leave one core to the main thread; at most 4. */
function defaultSize(): number {
  const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } })
    .navigator?.hardwareConcurrency;
  return Math.max(1, Math.min(4, (cores ?? 2) - 1));
}

/**
 * A pool of module workers that call one exported function of one module:
 * `run(input)` resolves with what `fn(input)` returns in a worker.
 *
 * It exists because CPU-bound work on the main thread stalls every request
 * of a server: resizing one large photo takes a few hundred milliseconds of
 * CPU, during which nothing else is answered. In a worker, the main thread
 * stays free.
 *
 * The invariant: at most `size` workers exist and each runs at most one
 * input at a time; the other runs wait in a FIFO queue, and every run settles
 * exactly once (with the function's result, its error, its signal's reason, or
 * the pool's closing). Workers start lazily, when a run finds none idle, and
 * are reused; constructing a pool starts nothing, so one may live at module
 * top level. Idle workers keep the process alive until
 * {@linkcode WorkerPool.prototype.close}.
 *
 * Tracking and cancelling stay separate, as in the rest of this package:
 * wrap runs in a `TaskManager` task and pass the task's `signal` on;
 * cancelling the task then terminates the worker running it. Compared with a
 * cooperative `AbortSignal` alone, termination also stops code that never
 * looks at a signal, such as a decoder in a tight loop. (Deno 2.9 has a bug
 * here: `terminate()` does not interrupt a worker stuck in synchronous
 * JavaScript. The run still rejects at once and the pool moves on with a new
 * worker, but the old thread runs until its function returns.)
 *
 * Inputs and results cross threads by structured clone: plain data, typed
 * arrays, `Map`, `Date` and the like, but no functions. An error thrown in
 * the worker rejects the run with an `Error` of the same name, message and
 * stack. A worker that dies (an uncaught error outside the function) or whose
 * module cannot be loaded rejects its run with an error naming the module,
 * and is replaced; the pool keeps working.
 *
 * The module is given as a `URL` or an absolute URL string, usually
 * `new URL("./work.ts", import.meta.url)`; TypeScript modules work where the
 * runtime runs TypeScript in workers (Deno, Bun).
 *
 * @typeParam I The input type.
 * @typeParam O The result type.
 *
 * @example Run a function in two workers
 * ```ts
 * import { WorkerPool } from "@background/tasks/worker";
 * import assert from "node:assert/strict";
 *
 * const sum = "export default (n) => { let s = 0; for (let i = 1; i <= n; i++) s += i; return s; };";
 * await using pool = new WorkerPool<number, number>(
 *   `data:text/javascript,${encodeURIComponent(sum)}`,
 *   { size: 2 },
 * );
 * const results = await Promise.all([pool.run(10), pool.run(100), pool.run(1000)]);
 * assert.deepEqual(results, [55, 5050, 500500]);
 * ```
 *
 * @example Stop a busy worker
 * ```ts
 * import { WorkerPool } from "@background/tasks/worker";
 * import assert from "node:assert/strict";
 *
 * const spin = "export default (flag) => { while (Atomics.load(flag, 0) === 0); return 'done'; };";
 * await using pool = new WorkerPool<Int32Array, string>(
 *   `data:text/javascript,${encodeURIComponent(spin)}`,
 *   { size: 1 },
 * );
 * const flag = new Int32Array(new SharedArrayBuffer(4));
 * const controller = new AbortController();
 * const run = pool.run(flag, { signal: controller.signal });
 * controller.abort(new Error("too slow"));
 * await assert.rejects(run, { message: "too slow" });
 * Atomics.store(flag, 0, 1); // let the loop end where terminate() cannot
 * assert.equal(pool.busyCount, 0);
 * ```
 */
export class WorkerPool<I = unknown, O = unknown> implements AsyncDisposable {
  readonly #module: string;
  readonly #export: string;
  readonly #size: number;
  readonly #slots: Set<Slot> = new Set();
  /** Idle workers; the most recently used is reused first. */
  readonly #idle: Slot[] = [];
  readonly #queue: Queue<Job> = new Queue();
  #pending = 0;
  #busy = 0;
  #closed = false;

  /**
   * Makes a pool. It starts no worker until `run` is called.
   *
   * @param module The module to run: a `URL` or an absolute URL string, such
   * as `new URL("./work.ts", import.meta.url)`.
   * @param options `size` (how many workers) and `export` (which function).
   * @throws {TypeError} A relative or malformed module URL, or an option of
   * the wrong type.
   * @throws {RangeError} A `size` that is not a positive integer.
   */
  constructor(module: string | URL, options: WorkerPoolOptions = {}) {
    const where = "Cannot create WorkerPool";
    this.#module = moduleUrl(where, module);
    checkOptions(where, options);
    const size = options.size;
    COUNT.check(where, "size", size);
    const name = options.export;
    if (name !== undefined && (typeof name !== "string" || name === "")) {
      throw new TypeError(
        `${where}: 'export' must be a non-empty string, received ${show(name)}`,
      );
    }
    this.#size = size ?? defaultSize();
    this.#export = name ?? "default";
  }

  /**
   * Calls the module's function with `input` in a worker and resolves with
   * its result. When every worker is busy the run waits, in FIFO order.
   *
   * Aborting `options.signal` rejects the promise with `signal.reason`: a
   * queued run leaves the queue, and a running one has its worker terminated
   * (a new one starts when needed). An already aborted signal rejects at once,
   * without using a worker.
   *
   * Otherwise the promise rejects with the function's error (same name and
   * message); with an error naming the module when its worker dies, or when
   * the module or its export cannot be loaded; with the `DataCloneError` of an
   * input or result that cannot be cloned; with an `AbortError` when the pool
   * is closed before the run finishes; and with an `Error` when the pool is
   * already closed or the runtime has no `Worker`.
   *
   * @param input The function's argument; it is cloned (or transferred, see
   * `options.transfer`).
   * @param options A `signal` that cancels the run; objects to `transfer`.
   * @returns The function's result (unwrapped if it used {@linkcode transfer}).
   * @throws {TypeError} Options of the wrong type (thrown, not rejected).

   *
   * @example Transfer an input buffer instead of copying it
   * ```ts
   * import { WorkerPool } from "@background/tasks/worker";
   * import assert from "node:assert/strict";
   *
   * const length = "export default (buffer) => buffer.byteLength;";
   * await using pool = new WorkerPool<ArrayBuffer, number>(
   *   `data:text/javascript,${encodeURIComponent(length)}`,
   *   { size: 1 },
   * );
   * const buffer = new ArrayBuffer(1024);
   * assert.equal(await pool.run(buffer, { transfer: [buffer] }), 1024);
   * assert.equal(buffer.byteLength, 0); // detached: it moved to the worker
   * ```
   */
  run(input: I, options: WorkerRunOptions = {}): Promise<O> {
    const where = "Cannot run in WorkerPool";
    checkOptions(where, options);
    const signal = options.signal;
    SIGNAL.check(where, "signal", signal);
    const prepared = transferList(
      where,
      "transfer",
      input,
      options.transfer ?? [],
    );
    input = prepared.value;
    const transfer = prepared.transfer;
    if (this.#closed) {
      return Promise.reject(
        new Error(`${where}: the pool for "${this.#module}" is closed`),
      );
    }
    if (typeof Worker !== "function") {
      return Promise.reject(
        new Error(
          `${where}: this runtime has no web Worker (WorkerPool runs on Deno, Bun and in browsers)`,
        ),
      );
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<O>();
    const job: Job = {
      input,
      transfer,
      signal,
      resolve,
      reject,
      onAbort: undefined,
      slot: undefined,
      settled: false,
    };
    if (signal !== undefined) {
      job.onAbort = () => this.#abort(job);
      signal.addEventListener("abort", job.onAbort, { once: true });
    }
    this.#queue.push(job);
    this.#pending++;
    this.#pump();
    if (job.slot === undefined && !job.settled) {
      // It waits for a worker: take its input now, as `postMessage` would,
      // so that the caller's later changes do not reach it and `transfer`
      // detaches the buffers when `run()` returns, as it says.
      try {
        job.input = cloneOrCopy(input, transfer);
        job.transfer = [];
      } catch (error) {
        this.#pending--;
        this.#settle(job, false, error);
      }
    }
    return promise;
  }

  /**
   * How many workers the pool may start.
   *
   * @example The size given
   * ```ts
   * import { WorkerPool } from "@background/tasks/worker";
   * import assert from "node:assert/strict";
   *
   * await using pool = new WorkerPool("data:text/javascript,export default () => 1", { size: 3 });
   * assert.equal(pool.size, 3);
   * ```
   */
  get size(): number {
    return this.#size;
  }

  /**
   * How many runs are in a worker now.
   *
   * @example Busy while it runs
   * ```ts
   * import { WorkerPool } from "@background/tasks/worker";
   * import assert from "node:assert/strict";
   *
   * await using pool = new WorkerPool("data:text/javascript,export default () => 1", { size: 1 });
   * const run = pool.run(undefined);
   * assert.equal(pool.busyCount, 1);
   * await run;
   * assert.equal(pool.busyCount, 0);
   * ```
   */
  get busyCount(): number {
    return this.#busy;
  }

  /**
   * How many runs wait for a worker.
   *
   * @example Queued behind a busy worker
   * ```ts
   * import { WorkerPool } from "@background/tasks/worker";
   * import assert from "node:assert/strict";
   *
   * await using pool = new WorkerPool("data:text/javascript,export default () => 1", { size: 1 });
   * const runs = [pool.run(undefined), pool.run(undefined)];
   * assert.equal(pool.busyCount, 1);
   * assert.equal(pool.pendingCount, 1);
   * await Promise.all(runs);
   * assert.equal(pool.pendingCount, 0);
   * ```
   */
  get pendingCount(): number {
    return this.#pending;
  }

  /**
   * Terminates every worker and closes the pool: queued and running runs
   * reject with a `DOMException` named `AbortError`, and later calls to `run`
   * reject. Calling it again does nothing. (On Deno 2.9 a worker busy in
   * synchronous code keeps its thread until its function returns; see
   * {@linkcode WorkerPool}.)
   *
   * @returns A promise that resolves once the workers are terminated.
   *
   * @example Close a pool
   * ```ts
   * import { WorkerPool } from "@background/tasks/worker";
   * import assert from "node:assert/strict";
   *
   * const pool = new WorkerPool("data:text/javascript,export default () => 1", { size: 1 });
   * const run = assert.rejects(pool.run(undefined), { name: "AbortError" });
   * await pool.close();
   * await run;
   * await assert.rejects(pool.run(undefined), /closed/);
   * ```
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const reason = new DOMException(
      `The WorkerPool for "${this.#module}" was closed before the run finished`,
      "AbortError",
    );
    for (let job = this.#queue.shift(); job; job = this.#queue.shift()) {
      this.#settle(job, false, reason);
    }
    this.#pending = 0;
    for (const slot of [...this.#slots]) {
      const job = slot.job;
      this.#retire(slot);
      if (job !== undefined) this.#settle(job, false, reason);
    }
    return Promise.resolve();
  }

  /**
   * `await using pool = new WorkerPool(...)`: closes the pool when the scope
   * ends.
   *
   * @returns A promise that resolves once the workers are terminated.
   *
   * @example Scope a pool
   * ```ts
   * import { WorkerPool } from "@background/tasks/worker";
   * import assert from "node:assert/strict";
   *
   * let pool: WorkerPool<number, number>;
   * {
   *   await using scoped = new WorkerPool<number, number>(
   *     "data:text/javascript,export default (n) => n + 1",
   *     { size: 1 },
   *   );
   *   pool = scoped;
   *   assert.equal(await pool.run(1), 2);
   * }
   * await assert.rejects(pool.run(1), /closed/);
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Starts queued runs while a worker is idle or may be started. */
  #pump(): void {
    while (this.#pending > 0) {
      let slot = this.#idle.pop();
      if (slot === undefined) {
        if (this.#slots.size >= this.#size) return;
        try {
          slot = this.#spawn();
        } catch (error) {
          const job = this.#next();
          this.#settle(
            job,
            false,
            new Error(
              `Cannot start a worker for "${this.#module}": ${
                (error as Error)?.message ?? String(error)
              }`,
              { cause: error },
            ),
          );
          continue;
        }
      }
      this.#dispatch(slot, this.#next());
    }
  }

  /** Takes the first queued run that is still waiting; `#pending > 0`. */
  #next(): Job {
    let job = this.#queue.shift()!;
    while (job.settled) job = this.#queue.shift()!;
    this.#pending--;
    return job;
  }

  #spawn(): Slot {
    const worker = new Worker(new URL("./_host.js", import.meta.url), {
      type: "module",
      name: `WorkerPool ${this.#module}`,
    });
    const slot: Slot = { worker, job: undefined };
    worker.onmessage = (event: MessageEvent<unknown>) => {
      const data = event.data as Partial<WorkerReply> | null;
      // Not a reply: something the user's code posted itself. Ignored: a
      // run settles only by its reply.
      if (data?.from === FROM) this.#reply(slot, data as WorkerReply);
    };
    // Bun: the worker ended itself (`process.exit()`, `close()`).
    worker.addEventListener("close", () => this.#exited(slot, "exited"));
    worker.onmessageerror = () => this.#unreadable(slot);
    worker.onerror = (event: ErrorEvent) => {
      // Unhandled, it would be reported as the main thread's own error.
      event.preventDefault();
      this.#crash(slot, event);
    };
    this.#slots.add(slot);
    return slot;
  }

  #dispatch(slot: Slot, job: Job): void {
    slot.job = job;
    job.slot = slot;
    this.#busy++;
    const request: WorkerRequest = {
      module: this.#module,
      export: this.#export,
      input: job.input,
    };
    try {
      postOrCopy(slot.worker, request, job.transfer);
    } catch (error) {
      // An input that cannot be cloned or transferred: the worker stays idle.
      slot.job = undefined;
      this.#busy--;
      this.#rest(slot);
      this.#settle(job, false, error);
      return;
    }
    // A busy worker keeps the process alive; see #rest.
    (slot.worker as Refable).ref?.();
  }

  /**
   * Makes a worker idle. On Bun an idle worker no longer keeps the process
   * alive (`unref`), so a script whose work is done ends without `close()`;
   * Deno's web `Worker` has no `unref`: there, close the pool.
   */
  #rest(slot: Slot): void {
    this.#idle.push(slot);
    (slot.worker as Refable).unref?.();
  }

  #reply(slot: Slot, reply: WorkerReply): void {
    if ("exit" in reply) return this.#exited(slot, `called ${reply.exit}`);
    const job = slot.job;
    if (job === undefined) return;
    slot.job = undefined;
    this.#busy--;
    if (reply.ok) {
      this.#rest(slot);
      this.#settle(job, true, reply.value);
    } else if ("load" in reply) {
      // Replace the worker, so a later run tries the import again.
      this.#retire(slot);
      this.#settle(
        job,
        false,
        new Error(
          `Cannot load export "${this.#export}" of "${this.#module}": ${reply.load.message}`,
          { cause: revive(reply.load) },
        ),
      );
    } else {
      this.#rest(slot);
      this.#settle(
        job,
        false,
        "error" in reply ? revive(reply.error) : reply.thrown,
      );
    }
    this.#pump();
  }

  /** The worker's reply could not be deserialized. */
  #unreadable(slot: Slot): void {
    const job = slot.job;
    if (job === undefined) return;
    slot.job = undefined;
    this.#busy--;
    this.#rest(slot);
    this.#settle(
      job,
      false,
      new Error(
        `The result of "${this.#module}" could not be deserialized`,
      ),
    );
    this.#pump();
  }

  /** An uncaught error in the worker, outside the function's own promise. */
  #crash(slot: Slot, event: ErrorEvent): void {
    this.#lost(slot, `crashed: ${event.message || "unknown error"}`, {
      cause: event.error,
    });
  }

  /** The worker ended itself. */
  #exited(slot: Slot, how: string): void {
    this.#lost(slot, `${how} before its function returned`);
  }

  /** The worker is gone, and so is its run: rejected with what happened. */
  #lost(slot: Slot, what: string, options?: ErrorOptions): void {
    if (!this.#slots.has(slot)) return; // retired already
    const job = slot.job;
    this.#retire(slot);
    if (job !== undefined) {
      this.#settle(
        job,
        false,
        new Error(`The worker running "${this.#module}" ${what}`, options),
      );
    }
    this.#pump();
  }

  /** The run's signal aborted. */
  #abort(job: Job): void {
    if (job.settled) return;
    const slot = job.slot;
    if (slot === undefined) this.#pending--;
    else this.#retire(slot);
    this.#settle(job, false, job.signal!.reason);
    // After the signal's other listeners: queued runs on the same signal
    // leave the queue first, rather than start in a worker that is then
    // terminated.
    queueMicrotask(() => this.#pump());
  }

  /** Terminates a worker and forgets it; a new one starts when needed. */
  #retire(slot: Slot): void {
    if (slot.job !== undefined) {
      slot.job = undefined;
      this.#busy--;
    }
    this.#slots.delete(slot);
    const index = this.#idle.indexOf(slot);
    if (index !== -1) this.#idle.splice(index, 1);
    const worker = slot.worker;
    worker.onmessage = null;
    worker.onmessageerror = null;
    worker.onerror = null;
    worker.terminate();
  }

  #settle(job: Job, ok: boolean, value: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.slot = undefined;
    if (job.onAbort !== undefined) {
      job.signal!.removeEventListener("abort", job.onAbort);
    }
    if (ok) job.resolve(value as never);
    else job.reject(value);
  }
}

/** Checks `module` and returns it as an absolute URL string. */
function moduleUrl(where: string, module: unknown): string {
  if (module instanceof URL) return module.href;
  if (typeof module === "string") {
    try {
      return new URL(module).href;
    } catch {
      // fall through: a relative or malformed URL
    }
  }
  throw new TypeError(
    `${where}: 'module' must be a URL or an absolute URL string such as new URL("./work.ts", import.meta.url), received ${
      show(module)
    }`,
  );
}

/** Bun's `Worker` has `ref()` and `unref()`, as Node's worker threads do. */
interface Refable {
  ref?(): void;
  unref?(): void;
}

/**
 * A copy of `input` taken now, as `postMessage` would take it: `transfer`
 * moves into it. A buffer the runtime refuses to transfer (Bun marks some
 * as untransferable) makes it copy everything instead.
 */
function cloneOrCopy(input: unknown, transfer: Transferable[]): unknown {
  if (transfer.length === 0) return structuredClone(input);
  try {
    return structuredClone(input, { transfer });
  } catch (error) {
    if ((error as Error)?.name !== "DataCloneError") throw error;
    return structuredClone(input);
  }
}

/** `worker.postMessage(message, transfer)`, copying what cannot move (see cloneOrCopy). */
function postOrCopy(
  worker: Worker,
  message: unknown,
  transfer: Transferable[],
): void {
  if (transfer.length === 0) return worker.postMessage(message);
  try {
    worker.postMessage(message, transfer);
  } catch (error) {
    if ((error as Error)?.name !== "DataCloneError") throw error;
    worker.postMessage(message);
  }
}
