// The Redis DurableBackend, on BullMQ (its queues, locks, stalled-job checks,
// retries with exponential backoff and failed set) over an ioredis
// connection. Both packages are loaded by `RedisBackend.open`, never by the
// mere import of `@background/tasks/durable`.
//
// Attempts: BullMQ counts failed attempts (`attemptsMade`) and, apart, jobs
// whose worker died (`stalledCounter`), whether their handler had started or
// not. Neither is ours: the job's `progress` field (which we use for nothing
// else) counts the attempts started, raised by a delivery's `start()` (a
// small script that checks the worker still holds the job's lock) before the
// handler runs, and lowered when a started attempt is handed back. So a task
// that kills its worker every time ends as a dead letter as a failing one
// does, and a task its worker took but never started keeps its attempts.
// BullMQ's own stall limit is set out of the way for that, and the retry's
// backoff is computed from our count.
//
// Order: tasks enqueued without a delay are BullMQ jobs of priority 1 (its
// prioritized set, FIFO within a priority); a delayed task is a job of no
// priority, and `start()` sets a job's priority to none. BullMQ serves its
// wait list (jobs of no priority: due delayed jobs, retries, stalled and
// handed-back jobs) before its prioritized set, so a task that comes due goes
// ahead of every task waiting without a delay.

import type { Job, Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import {
  type DeadLetter,
  type DurableBackend,
  type DurableListener,
  type DurableMessage,
  type DurableReceiver,
  errorText,
  type FreshTask,
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
/** What the backend uses of `ioredis`. */
type IORedis = { Redis: typeof Redis };

interface Listener {
  readonly worker: Worker;
  /** Deliveries in the receiver, whose outcome is not known yet. */
  pending: number;
  stopped: boolean;
}

/** BullMQ's stall limit, set so high that our attempt count decides. */
const NO_STALL_LIMIT = 1_000_000;

/** The priority of tasks enqueued without a delay: after BullMQ's wait list. */
const FRESH_PRIORITY = 1;

/**
 * Counts a started attempt, if this worker still holds the job's lock:
 * KEYS[1] the job's hash, KEYS[2] its lock; ARGV[1] the lock's token,
 * ARGV[2] 1 to count an attempt, -1 to take one back. Returns the count, or
 * -1 without the lock. Counting also takes the job's priority away, so that
 * whatever brings it back (a retry, a stall, a hand-back) puts it with the
 * tasks that came due.
 */
const COUNT_ATTEMPT = `
if redis.call("GET", KEYS[2]) ~= ARGV[1] then return -1 end
if ARGV[2] == "1" then redis.call("HSET", KEYS[1], "priority", 0) end
return redis.call("HINCRBY", KEYS[1], "progress", ARGV[2])`;

/** Our client, with the script above as a command. */
type Client = Redis & {
  backgroundTasksCount(
    job: string,
    lock: string,
    token: string,
    change: string,
  ): Promise<number>;
};

/** The attempts a job has started, as `progress` keeps them. */
function startedOf(job: Pick<Job, "progress">): number {
  const started = Number(job.progress);
  return Number.isInteger(started) && started > 0 ? started : 0;
}

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
 *   twice `lockDuration`; the interrupted attempt counts if it had started
 *   (its start is recorded in the job's `progress` field before the handler
 *   runs), not if the task only waited in the worker's manager;
 * - a failed attempt is retried after `backoff * 2 ** (attempt - 1)` ms,
 *   counting every started attempt, and after the last attempt the task is
 *   kept in BullMQ's failed set: the dead letters;
 * - a delayed task, once due, goes ahead of the tasks waiting without a
 *   delay (those are BullMQ jobs of priority 1; see the file's header);
 * - a task handed back by a stopping worker goes back to the waiting list
 *   at once, for another worker, without counting the attempt.
 *
 * Completed tasks are removed; dead letters stay until you retry or delete
 * them (`queue.retryDeadLetter(id)`, `queue.deleteDeadLetter(id)`). Redis itself must keep its
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
  readonly #client: Client;
  readonly #queue: Queue;
  readonly #name: string;
  readonly #lockDuration: number;
  readonly #listeners: Set<Listener> = new Set();
  #onError: (error: unknown) => void = (error) =>
    console.error("@background/tasks/durable (Redis):", error);
  #closing: Promise<void> | undefined;

  /**
   * Connects to Redis and opens the BullMQ queue. Loads `bullmq` and
   * `ioredis`, peer dependencies that the application installs: on Bun and
   * Node `npm install bullmq ioredis`; on Deno, `npm:` specifiers for both in
   * the application's import map (`deno add npm:bullmq npm:ioredis`).
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
    const [bullmq, { Redis }] = await loadClients(where);
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
    client.defineCommand("backgroundTasksCount", {
      numberOfKeys: 2,
      lua: COUNT_ATTEMPT,
    });
    const queue = new bullmq.Queue(name, { connection: client });
    queue.on("error", (error: unknown) => backend.#onError(error));
    const backend = new RedisBackend(
      bullmq,
      client as Client,
      queue,
      name,
      options.lockDuration ?? 30_000,
    );
    return backend;
  }

  private constructor(
    bullmq: BullMQ,
    client: Client,
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
      // Delayed: no priority, so that it goes ahead of the waiting tasks
      // once due.
      priority: delay > 0 ? undefined : FRESH_PRIORITY,
      attempts: message.attempts,
      backoff: { type: BACKOFF, delay: message.backoff },
      removeOnComplete: true,
      removeOnFail: false,
    });
  }

  /**
   * Adds a fresh job with the dead letter's name and payload, then removes
   * the dead letter (a crash in between leaves both).
   *
   * @param id The dead letter's id.
   * @param fresh The new task's id, attempts and backoff.
   * @returns A promise of whether there was such a dead letter.
   */
  async retryDeadLetter(id: string, fresh: FreshTask): Promise<boolean> {
    const letter = await this.#deadLetter(id);
    if (letter === undefined) return false;
    await this.enqueue(
      { ...fresh, name: letter.name, payload: letter.data },
      0,
    );
    if (await this.#remove(letter)) return true;
    // Another call retried or deleted it in between: take ours back.
    await this.#queue.remove(fresh.id).catch(() => {});
    return false;
  }

  /**
   * Removes a dead letter (a job of BullMQ's failed set).
   *
   * @param id The dead letter's id.
   * @returns A promise of whether there was such a dead letter.
   */
  async deleteDeadLetter(id: string): Promise<boolean> {
    const letter = await this.#deadLetter(id);
    return letter !== undefined && await this.#remove(letter);
  }

  /** The failed job `id`, or `undefined`. */
  async #deadLetter(id: string): Promise<Job | undefined> {
    if (this.#closing !== undefined) {
      throw new Error("The RedisBackend is closed");
    }
    const job: Job | undefined = await this.#queue.getJob(id);
    if (job === undefined || job === null) return undefined;
    return await job.isFailed() ? job : undefined;
  }

  /** Removes a failed job; false if it was gone already. */
  async #remove(job: Job): Promise<boolean> {
    return await this.#queue.remove(job.id!) === 1;
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
      let started = false;
      const handBack = async (): Promise<never> => {
        if (listener.stopped || !started) {
          await job.moveToWait(token);
          throw new WaitingError();
        }
        await job.moveToDelayed(Date.now() + backoffOf(job), token);
        throw new DelayedError();
      };
      if (listener.stopped) return handBack();
      const attempts = job.opts.attempts ?? 1;
      const before = startedOf(job);
      if (before >= attempts) {
        throw new UnrecoverableError(interrupted(before));
      }
      const attempt = before + 1;
      const message: DurableMessage = {
        id: job.id!,
        name: job.name,
        payload: job.data,
        attempts,
        backoff: backoffOf(job),
        enqueuedAt: job.timestamp,
      };
      const lock = [
        this.#queue.toKey(job.id!),
        `${this.#queue.toKey(job.id!)}:lock`,
      ] as const;
      const start = async (): Promise<void> => {
        if (started) return;
        if (this.#closing !== undefined) {
          throw new Error("The RedisBackend is closed");
        }
        const count = await this.#client.backgroundTasksCount(
          ...lock,
          token ?? "",
          "1",
        );
        if (count < 0) {
          throw new Error(
            `Durable task ${job.id} cannot start here: this worker lost its ` +
              `lock on it, and another may have taken it`,
          );
        }
        started = true;
        // What the backoff strategy reads, if the attempt fails.
        job.progress = count;
      };
      listener.pending++;
      let outcome;
      try {
        outcome = await receive({ message, attempt, start });
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
          if (startedOf(job) >= attempts) throw new UnrecoverableError(text);
          throw outcome.error instanceof Error && outcome.error.message !== ""
            ? outcome.error
            : new Error(text);
        }
        case "released":
          if (started) {
            await this.#client.backgroundTasksCount(...lock, token ?? "", "-1");
          }
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
        // By our count of started attempts (BullMQ's `attemptsMade` leaves
        // out those whose worker died), capped at 30 days as on the other
        // backends (BullMQ's own "exponential" has no cap).
        backoffStrategy: (
          attemptsMade: number,
          _type?: string,
          _error?: Error,
          job?: Pick<Job, "opts" | "progress">,
        ) =>
          job === undefined
            ? 0
            : retryDelay(backoffOf(job), startedOf(job) || attemptsMade),
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
        attempts: Math.min(startedOf(job), job.opts.attempts ?? 1),
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
 * Loads the peer dependencies `bullmq` and `ioredis`, from the application:
 * - as bare specifiers first. On Deno the application's import map says
 *   where they are (`npm:` specifiers); on Bun and Node they resolve from
 *   this file's folder upward, which finds the application's `node_modules`
 *   when the library is installed in it;
 * - on Bun and Node, when that fails (the library's files are outside the
 *   application's folder: imported by path, or linked), from the folder of
 *   the application's entry script, then from the working directory.
 * Both come from the same place, so that BullMQ gets the ioredis it expects.
 */
async function loadClients(
  where: string,
): Promise<[BullMQ, IORedis]> {
  try {
    const [bullmq, ioredis] = await Promise.all([
      import("bullmq"),
      import("ioredis"),
    ]);
    return [bullmq, ioredis];
  } catch (error) {
    const fromApplication = await requireFromApplication();
    if (fromApplication !== undefined) return fromApplication;
    throw new Error(
      `${where}: RedisBackend needs the packages bullmq and ioredis, which ` +
        `the application installs (Bun, Node: npm install bullmq ioredis; ` +
        `Deno: deno add npm:bullmq npm:ioredis): ${errorText(error)}`,
      { cause: error },
    );
  }
}

async function requireFromApplication(): Promise<
  [BullMQ, IORedis] | undefined
> {
  const process = (globalThis as {
    process?: { argv?: string[]; cwd?: () => string };
  }).process;
  // Deno resolves through the import map only.
  if ((globalThis as { Deno?: unknown }).Deno !== undefined) return undefined;
  if (process === undefined) return undefined;
  const { createRequire } = await import("node:module");
  const places = [process.argv?.[1], `${process.cwd?.()}/`];
  for (const place of places) {
    if (typeof place !== "string" || place === "" || place === "undefined/") {
      continue;
    }
    try {
      const require = createRequire(place);
      return [require("bullmq"), require("ioredis")];
    } catch {
      // Not there: the next place.
    }
  }
  return undefined;
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
