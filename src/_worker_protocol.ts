// The messages between a WorkerPool (src/worker.ts) and the script each of its
// workers runs (src/_worker_host.js, whose typedefs mirror these). Types only.
//
// The pool sends a worker one request at a time; the worker answers each with
// exactly one reply.

/** A request from the pool. */
export interface WorkerRequest {
  /** The absolute URL of the user's module. */
  module: string;
  /** The name of the function to call. */
  export: string;
  /** Its argument. */
  input: unknown;
}

/** An error as it crosses the thread boundary. */
export interface RemoteError {
  name: string;
  message: string;
  stack: string | undefined;
  /** It was a `DOMException` (a `DataCloneError`, say). */
  dom: boolean;
}

/** A reply to the pool. */
export type WorkerReply =
  /** The function returned (or resolved with) `value`. */
  | { ok: true; value: unknown }
  /** It threw (or rejected with) an Error. */
  | { ok: false; error: RemoteError }
  /** It threw something else, cloned as is. */
  | { ok: false; thrown: unknown }
  /** The module could not be imported, or its export is not a function. */
  | { ok: false; load: RemoteError };
