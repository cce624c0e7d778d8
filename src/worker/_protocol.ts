// The messages between a WorkerPool (worker_pool.ts) and the script each of its
// workers runs (_host.js, whose typedefs mirror these).
//
// The pool sends a worker one request at a time; the worker answers each with
// exactly one reply, or tells that it is ending itself.

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

/**
 * What every reply carries in its `from` field, so that a message the user's
 * own code posts from the worker is never taken for a reply.
 */
export const FROM = "@background/tasks/worker";

/** A reply to the pool. */
export type WorkerReply =
  & { from: typeof FROM }
  & (
    /** The function returned (or resolved with) `value`. */
    | { ok: true; value: unknown }
    /** It threw (or rejected with) an Error. */
    | { ok: false; error: RemoteError }
    /** It threw something else, cloned as is. */
    | { ok: false; thrown: unknown }
    /** The module could not be imported, or its export is not a function. */
    | { ok: false; load: RemoteError }
    /** The worker is ending itself (`close()`, `Deno.exit()`): how. */
    | { ok: false; exit: string }
  );
