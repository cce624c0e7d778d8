/**
 * The contract between {@linkcode DurableQueue} and the engines that store its
 * tasks: what a backend is given, what it must do, and the rules every backend
 * applies the same way (the retry delay, the longest delay, how a dead letter
 * keeps its error, the order in which waiting tasks are delivered). Each engine
 * (memory.ts, deno_kv.ts, redis.ts, sqlite.ts) imports this file and nothing
 * else of the queue; the queue imports it too.
 *
 * The rules every backend applies the same way:
 *
 * - **Attempts.** An attempt counts once it starts: the consumer calls
 *   {@linkcode DurableDelivery.start} when the task starts in its manager,
 *   and the backend records it before the handler runs. A task its consumer
 *   took but had not started (it waited in the manager for a slot) is
 *   delivered again with its count unchanged, whether the consumer handed it
 *   back or died. An attempt that started and then died with its process
 *   counts; one handed back (`"released"`) does not.
 * - **Backoff.** After attempt `n` fails, the task waits
 *   {@linkcode retryDelay}`(backoff, n)` = `backoff * 2 ** (n - 1)` ms (at
 *   most 30 days), where `n` counts the started attempts, interrupted ones
 *   included.
 * - **Order.** Tasks enqueued without a delay wait in the order they were
 *   enqueued. A task that comes due (its delay ran out, its retry's backoff
 *   ran out, or it was handed back or its consumer died) goes ahead of all
 *   of those: it is delivered at the next free slot. Among themselves, tasks
 *   that came due go in the order they came due.
 *
 * @module
 */

import { backoffDelay } from "../core/_backoff.ts";

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
  /**
   * The number this attempt has once it starts, from 1: the attempts started
   * before it (interrupted ones included), plus one.
   */
  readonly attempt: number;
  /**
   * Records that the attempt starts, in the store, and resolves once it is
   * recorded. The consumer calls it once, when the task starts in its
   * manager, before the handler runs; a delivery never started is not
   * counted. Rejects (and the handler must not run) when the delivery is no
   * longer this consumer's (its lease lapsed and another took it) or the
   * backend is closed.
   */
  start(): Promise<void>;
}

/**
 * How a delivery ended, as the consumer reports it to the backend:
 *
 * - `"fulfilled"`: done; the backend forgets the task.
 * - `"rejected"`: the attempt failed; the backend retries it after
 *   `backoff * 2 ** (attempt - 1)` milliseconds, or, after the last attempt,
 *   keeps it as a dead letter.
 * - `"released"`: not run to its end (cancelled, or its consumer is
 *   stopping), or never started; the backend delivers it again without
 *   counting the attempt.
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
 * What a retried dead letter's fresh task takes from the queue: everything but
 * its name and its payload, which it keeps.
 */
export type FreshTask = Omit<DurableMessage, "name" | "payload">;

/**
 * The small interface a queue engine is adapted to. {@linkcode DurableQueue}
 * checks the arguments, runs the handlers and reports outcomes; the backend
 * stores, delivers, retries and keeps dead letters. Implemented by
 * {@linkcode MemoryBackend}, {@linkcode DenoKvBackend},
 * {@linkcode SqliteBackend} and {@linkcode RedisBackend}.
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
   * Replaces the dead letter `id` by a fresh task with its name and payload
   * and `fresh`'s id, attempts and backoff, delivered at once. Resolves
   * `false` when there is no dead letter `id` (never was, or already retried
   * or deleted).
   */
  retryDeadLetter(id: string, fresh: FreshTask): Promise<boolean>;
  /** Removes the dead letter `id`; resolves `false` when there is none. */
  deleteDeadLetter(id: string): Promise<boolean>;
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
 * `backoff`, then twice that, four times, and so on, up to 30 days. The
 * core's rule for in-process retries (`RetryOptions`), capped at the
 * longest delay a backend keeps: a task moved between the two keeps its
 * meaning.
 */
export function retryDelay(backoff: number, attempt: number): number {
  return backoffDelay(backoff, attempt, MAX_DELAY);
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
