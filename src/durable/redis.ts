// The Redis DurableBackend, on BullMQ (its queues, locks, stalled-job checks,
// retries with exponential backoff and failed set) over an ioredis
// connection. Both packages are loaded by `RedisBackend.open`, never by the
// mere import of `@background/tasks/durable`.
//
// Attempts: BullMQ counts failed attempts (`attemptsMade`) and, apart,
// attempts whose worker died (`stalledCounter`); here both count, so a task
// that kills its worker every time ends as a dead letter as a failing one
// does. BullMQ's own stall limit is set out of the way for that.

import type { Job, Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import {
  type DeadLetter,
  type DurableBackend,
  type DurableListener,
  type DurableMessage,
  type DurableReceiver,
  errorText,
  interrupted,
  type ListenOptions,
  retryDelay,
} from "./backend.ts";
import {
  checkOptions,
  MAX_TIMEOUT,
  NumberRule,
  show,
} from "../core/_validate.ts";

/** Options for {@linkcode RedisBackend.open}. */
export interface RedisBackendOptions {
  /**
   * The BullMQ queue's name: backends with the same name on the same server
   * share their tasks.
   *
   * @default {"background-tasks"}
   */
  queue?: string;
  /**
   * How long, in milliseconds, a worker's lock on a task lasts (it renews
   * it every half of that while the task runs), and how often workers check
   * for tasks whose lock lapsed. When a worker dies, its tasks are delivered
   * again within about twice this.
   *
   * @default {30000}
   */
  lockDuration?: number;
}

/** A `lockDuration`: whole milliseconds from 1 to 2^31-1. */
const LOCK_DURATION = new NumberRule(
  "a number of milliseconds",
  `a whole number of milliseconds from 1 to ${MAX_TIMEOUT}`,
  (ms) => Number.isInteger(ms) && ms > 0 && ms <= MAX_TIMEOUT,
);

type BullMQ = typeof import("bullmq");

interface Listener {
  readonly worker: Worker;
  /** Deliveries in the receiver, whose outcome is not known yet. */
  pending: number;
  stopped: boolean;
}

/** BullMQ's stall limit, set so high that our attempt count decides. */
const NO_STALL_LIMIT = 1_000_000;

/**
 * A {@linkcode DurableBackend} on Redis, through BullMQ and ioredis: for
 * several machines. Works on Deno, Bun and Node (BullMQ 6 with ioredis 5).
 * Open it with {@linkcode RedisBackend.open}.
 *
 * What it guarantees:
 * - a task is stored (as a BullMQ job) when `enqueue` resolves;
 * - each task goes to one worker at a time, which holds a lock on it and
 *   renews it while the task runs; when the worker dies, the lock lapses and
 *   a live worker's stalled-job check delivers the task again, within about
 *   twice `lockDuration`; the interrupted attempt counts;
 * - a failed attempt is retried after `backoff * 2 ** (failures - 1)` ms,
 *   and after the last attempt the task is kept in BullMQ's failed set: the
 *   dead letters;
 * - a task handed back by a stopping worker goes back to the waiting list
 *   at once, for another worker, without counting the attempt.
 *
 * Completed tasks are removed; dead letters stay until you remove them (with
 * BullMQ's `Queue.clean` or its dashboard tools). Redis itself must keep its
 * data across restarts (AOF or RDB persistence) for tasks to survive a restart
 * of the server.
 *
 * @example Several workers on one Redis server
 * ```ts ignore
 * import { DurableQueue, RedisBackend } from "@background/tasks/durable";
 *
 * const queue = new DurableQueue(
 *   await RedisBackend.open("redis://127.0.0.1:6379", { queue: "emails" }),
 * );
 * ```
 */
export class RedisBackend implements DurableBackend {
  readonly #bullmq: BullMQ;
  readonly #client: Redis;
  readonly #queue: Queue;
  readonly #name: string;
  readonly #lockDuration: number;
  readonly #listeners: Set<Listener> = new Set();
  #onError: (error: unknown) => void = (error) =>
    console.error("@background/tasks/durable (Redis):", error);
  #closing: Promise<void> | undefined;

  /**
   * Connects to Redis and opens the BullMQ queue. Loads `bullmq` and
   * `ioredis`, which the application must have installed.
   *
   * @param url A Redis URL: `redis://[[user]:password@]host[:port][/db]`, or
   * `rediss://` for TLS.
   * @param options The queue's name and the lock duration.
   * @returns A promise of the backend, once the server answered.
   * @throws {TypeError} A URL that is not a string, an option of the wrong type.
   * @throws {RangeError} A `lockDuration` out of range.
   * @throws {Error} The server cannot be reached (the promise rejects).
   */
  static async open(
    url: string,
    options: RedisBackendOptions = {},
  ): Promise<RedisBackend> {
    const where = "Cannot open RedisBackend";
    if (typeof url !== "string" || !/^rediss?:\/\//.test(url)) {
      throw new TypeError(
        `${where}: 'url' must be a redis:// or rediss:// URL, received ${
          typeof url === "string"
            // The scheme only: a URL may hold a password.
            ? JSON.stringify(`${url.split("//")[0]}//...`)
            : show(url)
        }`,
      );
    }
    checkOptions(where, options);
    const name = options.queue ?? "background-tasks";
    if (typeof name !== "string" || name === "" || name.includes(":")) {
      throw new TypeError(
        `${where}: 'queue' must be a non-empty string without ':', received ${
          show(name)
        }`,
      );
    }
    // Redis takes the lock's length in whole milliseconds only.
    LOCK_DURATION.check(where, "lockDuration", options.lockDuration);
    const [bullmq, { Redis }] = await Promise.all([
      import("bullmq"),
      import("ioredis"),
    ]);
    // Reconnect after a lost connection, but fail at once if the first
    // connection fails.
    let opening = true;
    const client = new Redis(url, {
      maxRetriesPerRequest: null,
      lazyConnect: true,
      retryStrategy: (times: number) =>
        opening ? null : Math.min(times * 200, 5000),
    });
    // No unhandled 'error' events: a failed first connection rejects here;
    // later errors reach the DurableQueue's onError through BullMQ's queue
    // and workers, which re-emit them.
    let lastError: unknown;
    client.on("error", (error: unknown) => {
      if (opening) lastError = error;
    });
    try {
      await client.connect();
      opening = false;
    } catch (error) {
      const cause = lastError ?? error;
      throw new Error(
        `${where}: cannot connect to Redis: ${errorText(cause)}`,
        { cause },
      );
    }
    const queue = new bullmq.Queue(name, { connection: client });
    queue.on("error", (error: unknown) => backend.#onError(error));
    const backend = new RedisBackend(
      bullmq,
      client,
      queue,
      name,
      options.lockDuration ?? 30_000,
    );
    return backend;
  }

  private constructor(
    bullmq: BullMQ,
    client: Redis,
    queue: Queue,
    name: string,
    lockDuration: number,
  ) {
    this.#bullmq = bullmq;
    this.#client = client;
    this.#queue = queue;
    this.#name = name;
    this.#lockDuration = lockDuration;
  }

  /**
   * Adds the task as a BullMQ job, with its attempts and exponential backoff.
   *
   * @param message The task.
   * @param delay Milliseconds before it may be delivered.
   * @returns A promise that resolves once Redis stored it.
   */
  async enqueue(message: DurableMessage, delay: number): Promise<void> {
    if (this.#closing !== undefined) {
      throw new Error("The RedisBackend is closed");
    }
    await this.#queue.add(message.name, message.payload, {
      jobId: message.id,
      timestamp: message.enqueuedAt,
      delay,
      attempts: message.attempts,
      backoff: { type: BACKOFF, delay: message.backoff },
      removeOnComplete: true,
      removeOnFail: false,
    });
  }

  /**
   * Starts a BullMQ worker that holds at most `concurrency` tasks at once.
   *
   * @param receive Runs one delivery and resolves with its outcome.
   * @param options The concurrency, and where errors go.
   * @returns A listener to stop.
   */
  listen(receive: DurableReceiver, options: ListenOptions): DurableListener {
    if (this.#closing !== undefined) return { stop: () => Promise.resolve() };
    const { DelayedError, UnrecoverableError, WaitingError, Worker } =
      this.#bullmq;
    // deno-lint-ignore prefer-const
    let listener: Listener;
    const processor = async (job: Job, token?: string): Promise<void> => {
      const handBack = async (): Promise<never> => {
        if (listener.stopped) {
          await job.moveToWait(token);
          throw new WaitingError();
        }
        await job.moveToDelayed(Date.now() + backoffOf(job), token);
        throw new DelayedError();
      };
      if (listener.stopped) return handBack();
      const attempts = job.opts.attempts ?? 1;
      const attempt = job.attemptsMade + job.stalledCounter + 1;
      if (attempt > attempts) {
        throw new UnrecoverableError(interrupted(attempt - 1));
      }
      const message: DurableMessage = {
        id: job.id!,
        name: job.name,
        payload: job.data,
        attempts,
        backoff: backoffOf(job),
        enqueuedAt: job.timestamp,
      };
      listener.pending++;
      let outcome;
      try {
        outcome = await receive({ message, attempt });
      } finally {
        listener.pending--;
      }
      switch (outcome.status) {
        case "fulfilled":
          return;
        case "rejected": {
          // The dead letter keeps this text: an empty message gives the
          // error's name, as on the other backends.
          const text = errorText(outcome.error);
          // BullMQ would retry on its own count, which leaves out stalls.
          if (attempt >= attempts) throw new UnrecoverableError(text);
          throw outcome.error instanceof Error && outcome.error.message !== ""
            ? outcome.error
            : new Error(text);
        }
        case "released":
          return handBack();
      }
    };
    const worker = new Worker(this.#name, processor, {
      connection: this.#client,
      concurrency: options.concurrency,
      lockDuration: this.#lockDuration,
      stalledInterval: this.#lockDuration,
      maxStalledCount: NO_STALL_LIMIT,
      settings: {
        // BullMQ's own "exponential" has no cap; a retry waits 30 days at
        // most, as on the other backends.
        backoffStrategy: (
          attemptsMade: number,
          _type?: string,
          _error?: Error,
          job?: Pick<Job, "opts">,
        ) => retryDelay(job === undefined ? 0 : backoffOf(job), attemptsMade),
      },
    });
    listener = { worker, pending: 0, stopped: false };
    this.#onError = options.onError;
    worker.on("error", options.onError);
    this.#listeners.add(listener);
    return {
      stop: async () => {
        if (listener.stopped) return;
        listener.stopped = true;
        await worker.pause(true);
      },
    };
  }

  /**
   * The dead letters (BullMQ's failed set), most recent first.
   *
   * @param limit The most to return.
   * @returns A promise of them.
   */
  async deadLetters(limit: number): Promise<DeadLetter[]> {
    const jobs: (Job | undefined)[] = await this.#queue.getFailed(
      0,
      limit - 1,
    );
    return jobs.filter((job): job is Job => job !== undefined && job !== null)
      .map((job: Job) => ({
        id: job.id!,
        name: job.name,
        payload: job.data,
        attempts: Math.min(
          job.attemptsMade + job.stalledCounter,
          job.opts.attempts ?? 1,
        ),
        error: job.failedReason ?? "",
        failedAt: new Date(job.finishedOn ?? Date.now()),
      }));
  }

  /**
   * Closes the workers, the queue and the connection. A worker whose tasks
   * all reported back waits for their outcomes to be written; one with
   * tasks still running is closed at once, and those tasks are delivered
   * again once their locks lapse.
   *
   * @returns A promise that resolves once the connection is closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const listener of this.#listeners) listener.stopped = true;
      await Promise.all(
        [...this.#listeners].map((listener) =>
          listener.worker.close(listener.pending > 0)
        ),
      );
      this.#listeners.clear();
      await this.#queue.close();
      await this.#quit();
    })();
    return this.#closing;
  }

  /**
   * Ends the connection: politely if Redis answers, at once if it does not
   * (QUIT would wait for ever while Redis is unreachable, and the reconnect
   * timers would keep the process alive).
   */
  async #quit(): Promise<void> {
    const client = this.#client;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) =>
      timer = setTimeout(resolve, QUIT_WAIT)
    );
    if (client.status === "ready") {
      await Promise.race([client.quit().catch(() => {}), late]);
    }
    // With a socket open, resolves once it closed (and ioredis cleared the
    // timer it sets to destroy it); waiting to reconnect, there is none.
    const open = ["connecting", "connect", "ready"].includes(client.status);
    const ended = open
      ? new Promise<void>((resolve) => client.once("end", () => resolve()))
      : Promise.resolve();
    client.disconnect();
    await Promise.race([ended, late]);
    clearTimeout(timer);
  }
}

/**
 * The backoff type of the tasks we store: doubling from `delay`, capped at
 * 30 days (`retryDelay`); computed by the workers' `backoffStrategy`.
 */
const BACKOFF = "background-tasks-exponential";

/** How long `close()` waits for Redis to answer its QUIT, in ms. */
const QUIT_WAIT = 2000;

function backoffOf(job: Pick<Job, "opts">): number {
  const backoff = job.opts.backoff;
  return typeof backoff === "number" ? backoff : backoff?.delay ?? 0;
}
