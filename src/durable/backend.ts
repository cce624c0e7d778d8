/**
 * The contract between {@linkcode DurableQueue} and the engines that store its
 * tasks: what a backend is given, what it must do, and the rules every backend
 * applies the same way (the retry delay, the longest delay, how a dead letter
 * keeps its error). Each engine (memory.ts, deno_kv.ts, redis.ts) imports this
 * file and nothing else of the queue; the queue imports it too.
 *
 * @module
 */

/** A task that ran out of attempts, as {@linkcode DurableQueue.prototype.deadLetters} lists it. */
export interface DeadLetter {
  /** The id `enqueue` returned. */
  readonly id: string;
  /** The handler's name. */
  readonly name: string;
  /** The payload, as stored. */
  readonly payload: unknown;
  /** How many attempts were made. */
  readonly attempts: number;
  /** The last attempt's error message, or why no attempt finished. */
  readonly error: string;
  /**
   * When it became a dead letter. With {@linkcode DenoKvBackend}, for a task
   * that Deno KV itself gave up redelivering (its own retries ran out before
   * an attempt could be recorded), when `deadLetters()` first listed it.
   */
  readonly failedAt: Date;
}

/** A task as a backend stores it. */
export interface DurableMessage {
  /** Unique: a random UUID. */
  readonly id: string;
  /** The handler's name. */
  readonly name: string;
  /** The payload, already checked and copied through JSON. */
  readonly payload: unknown;
  /** How many attempts it has in all. */
  readonly attempts: number;
  /** Milliseconds before the first retry; doubled for each later one. */
  readonly backoff: number;
  /** When it was enqueued, in milliseconds since the epoch. */
  readonly enqueuedAt: number;
}

/** One delivery of a task to a consumer. */
export interface DurableDelivery {
  /** The task. */
  readonly message: DurableMessage;
  /** This attempt's number, from 1; interrupted attempts count. */
  readonly attempt: number;
}

/**
 * How a delivery ended, as the consumer reports it to the backend:
 *
 * - `"fulfilled"`: done; the backend forgets the task.
 * - `"rejected"`: the attempt failed; the backend retries it after
 *   `backoff * 2 ** (attempt - 1)` milliseconds, or, after the last attempt,
 *   keeps it as a dead letter.
 * - `"released"`: not run to its end (cancelled, or its consumer is
 *   stopping); the backend delivers it again without counting the attempt.
 */
export type DurableOutcome =
  | { readonly status: "fulfilled" }
  | { readonly status: "rejected"; readonly error: unknown }
  | { readonly status: "released" };

/** What a backend calls for each delivery; resolves with its outcome, never rejects. */
export type DurableReceiver = (
  delivery: DurableDelivery,
) => Promise<DurableOutcome>;

/** Options a {@linkcode DurableBackend} receives from `listen`. */
export interface ListenOptions {
  /** The most deliveries to have in the receiver at once. */
  readonly concurrency: number;
  /** Where to report errors that belong to no call. */
  readonly onError: (error: unknown) => void;
}

/** A running `listen`: stop it to take no more deliveries. */
export interface DurableListener {
  /**
   * Takes no more deliveries for this listener. Deliveries already in the
   * receiver still have their outcome recorded. Resolves once the backend
   * stopped fetching.
   */
  stop(): Promise<void>;
}

/**
 * The small interface a queue engine is adapted to. {@linkcode DurableQueue}
 * checks the arguments, runs the handlers and reports outcomes; the backend
 * stores, delivers, retries and keeps dead letters. Implemented by
 * {@linkcode MemoryBackend}, {@linkcode DenoKvBackend} and
 * {@linkcode RedisBackend}.
 *
 * A backend delivers at least once: a delivery whose process dies before it
 * reports an outcome is delivered again.
 */
export interface DurableBackend {
  /** Stores a task, to be delivered once `delay` milliseconds have passed. */
  enqueue(message: DurableMessage, delay: number): Promise<void>;
  /** Starts delivering tasks to `receiver`, at most `concurrency` at once. */
  listen(receiver: DurableReceiver, options: ListenOptions): DurableListener;
  /** The most recent dead letters first, at most `limit`. */
  deadLetters(limit: number): Promise<DeadLetter[]>;
  /**
   * Stops every listener and lets go of the connection or file. Deliveries
   * still in a receiver are left unacknowledged, to be delivered again.
   */
  close(): Promise<void>;
}

/** The longest delay a task may be enqueued with: 30 days, Deno KV's limit. */
export const MAX_DELAY = 30 * 24 * 60 * 60 * 1000;

/**
 * The delay before retry `attempt + 1`, after attempt `attempt` failed:
 * `backoff`, then twice that, four times, and so on, up to 30 days.
 */
export function retryDelay(backoff: number, attempt: number): number {
  return Math.min(backoff * 2 ** (attempt - 1), MAX_DELAY);
}

/** What a dead letter keeps of an error: its message, or the value as text. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === "string") return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

/** The error a dead letter records when no attempt ever reported back. */
export function interrupted(attempts: number): string {
  return `The task was interrupted ${attempts} time(s) (its process died, ` +
    `or stopped before the task finished) and has no attempts left`;
}
