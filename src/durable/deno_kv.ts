// The Deno KV DurableBackend: tasks go through `kv.enqueue` and
// `kv.listenQueue`, and a small state record per task, changed only by
// atomic operations that check its versionstamp, makes our attempts and dead
// letters hold whatever KV itself redelivers.
//
// The state record of a task, [ROOT, "task", id] = { seq, started, phase }:
// - `seq` numbers the queue message that currently stands for the task; a
//   delivery of any other message of the task is stale and acknowledged;
// - `started` counts the attempts started;
// - `phase` is "ready" (the message waits, waits in this process for a free
//   slot, or waits in the manager for the task to start) or "running" (the
//   delivery's `start()` recorded it, before the handler ran: if the message
//   comes back, its process died or closed the database first, and the
//   attempt counts).
// Every change of plan replaces the message by a new one (seq + 1) in the
// same transaction as the record: a retry (delayed by the backoff), a task
// handed back by a stopping consumer (delayed by HAND_BACK_DELAY, so that the
// stopping process does not take it again), a message back from a dead
// process (at once). So KV's own redelivery budget (5 retries,
// `backoffSchedule`) is spent only when processes die again and again before
// they can replace the message; when it is spent, KV writes the message to
// the dead-letter key (`keysIfUndelivered`): kept, never dropped.
// The record is deleted when the task is done or becomes a dead letter.
// Acknowledging a message (the handler resolves) is not transactional with
// these writes: a message acknowledged too late (the process died, or closed
// the database) comes back, finds a newer seq or no record, and is dropped.

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
import { Listeners } from "./_listeners.ts";

/** A `pollInterval`: a positive number of milliseconds up to 2^31-1, or Infinity. */
const POLL_INTERVAL = new NumberRule(
  "a number of milliseconds",
  `a positive number of milliseconds up to ${MAX_TIMEOUT}, or Infinity`,
  (ms) => ms === Infinity || (ms > 0 && ms <= MAX_TIMEOUT),
);

/** Deno KV's `backoffSchedule`: at most 5 intervals of at most one hour. */
const MAX_KV_INTERVAL = 60 * 60 * 1000;

/** A key of a {@linkcode KvDatabase}, as `Deno.KvKey`. */
export type KvKey =
  readonly (string | number | bigint | boolean | Uint8Array)[];

/** The options of `Deno.Kv.prototype.enqueue` that the backend uses. */
export interface KvEnqueueOptions {
  /** Milliseconds before the message may be delivered. */
  delay?: number;
  /** Where the message is written if it is never delivered with success. */
  keysIfUndelivered?: KvKey[];
  /** Milliseconds before each redelivery by KV itself. */
  backoffSchedule?: number[];
}

/** The part of an atomic operation of `Deno.Kv` that the backend uses. */
export interface KvAtomicOperation {
  /** Fails the commit unless the key's versionstamp is as given. */
  check(...checks: { key: KvKey; versionstamp: string | null }[]): this;
  /** Sets a key. */
  set(key: KvKey, value: unknown): this;
  /** Deletes a key. */
  delete(key: KvKey): this;
  /** Enqueues a message. */
  enqueue(value: unknown, options?: KvEnqueueOptions): this;
  /** Commits: `ok` is false when a check failed. */
  commit(): Promise<{ ok: boolean; versionstamp?: string }>;
}

/**
 * The part of `Deno.Kv` that {@linkcode DenoKvBackend} uses: what
 * `Deno.openKv()` returns satisfies it.
 */
export interface KvDatabase {
  /** Reads a key. */
  get(
    key: KvKey,
  ): Promise<{ readonly value: unknown; readonly versionstamp: string | null }>;
  /** Lists the keys under a prefix. */
  list(
    selector: { prefix: KvKey },
    options?: { limit?: number },
  ): AsyncIterable<
    {
      readonly key: KvKey;
      readonly value: unknown;
      readonly versionstamp: string;
    }
  >;
  /** Starts an atomic operation. */
  atomic(): KvAtomicOperation;
  /** Enqueues a message. */
  enqueue(value: unknown, options?: KvEnqueueOptions): Promise<unknown>;
  /** Calls `handler` for each message, until the database is closed. */
  listenQueue(handler: (value: unknown) => Promise<void> | void): Promise<void>;
  /** Closes the database. */
  close(): void;
}

/** Options for {@linkcode DenoKvBackend}. */
export interface DenoKvBackendOptions {
  /**
   * While this process consumes, how often it looks for tasks that another
   * process enqueued into the same file, in milliseconds, or `Infinity` to
   * rely on Deno KV alone. Deno KV wakes a listener at once only for messages
   * enqueued through its own process; for the others it looks about once a
   * minute. Each look is one small message through the queue.
   *
   * @default {1000}
   */
  pollInterval?: number;
}

const ROOT = "@background/tasks/durable";
const TICK = { kind: `${ROOT}#tick` };
/** The most dead letters read from the database at once. */
const DEAD_LETTER_SCAN = 10_000;
/** Errors kept in a dead letter are cut to this length (KV values are at most 64 KiB). */
const MAX_ERROR_LENGTH = 2000;

type Phase = "ready" | "running";
interface State {
  seq: number;
  started: number;
  phase: Phase;
}
interface TaskMessage {
  kind: typeof ROOT;
  seq: number;
  message: DurableMessage;
  /** Came due (a delay, a retry, a hand-back): served before fresh tasks. */
  due?: boolean;
}
interface StoredDeadLetter {
  id: string;
  name: string;
  payload: unknown;
  attempts: number;
  error: string;
  failedAt: number;
}
interface Check {
  key: KvKey;
  versionstamp: string | null;
}
interface Waiter {
  /** Whether the task came due (a delay, a retry, a hand-back). */
  readonly due: boolean;
  /** Hands the delivery a slot. */
  give(listener: Listener): void;
  /** Hands the task back: the backend is closing. */
  abandon(): void;
}
interface Listener {
  readonly receive: DurableReceiver;
  readonly concurrency: number;
  running: number;
  stopped: boolean;
}

const stateKey = (id: string): KvKey => [ROOT, "task", id];
const deadKey = (id: string): KvKey => [ROOT, "dead", id];

function isTaskMessage(value: unknown): value is TaskMessage {
  const candidate = value as Partial<TaskMessage> | null;
  return typeof candidate === "object" && candidate !== null &&
    candidate.kind === ROOT && typeof candidate.seq === "number" &&
    typeof candidate.message?.id === "string";
}

/**
 * A promise that never settles: once the database is closed, a delivery can
 * neither be recorded nor acknowledged; KV delivers it again.
 */
function park(): Promise<never> {
  return new Promise<never>(() => {});
}

/** What `#handBack` resolves with. */
const HANDED_BACK = Symbol("handed back");

/** How long a task handed back by a stopping consumer waits before it runs again. */
const HAND_BACK_DELAY = 1000;

/**
 * A {@linkcode DurableBackend} on Deno KV queues (`kv.enqueue`,
 * `kv.listenQueue`): on Deno, a local SQLite file and no server, the
 * embedded choice for one machine. Deno only, and it needs `--unstable-kv`
 * (or `"unstable": ["kv"]` in `deno.json`).
 *
 * What it guarantees:
 * - a task is stored when `enqueue` resolves, in the same transaction as its
 *   attempt counter;
 * - a task whose process dies while it runs is delivered again, and the
 *   interrupted attempt counts (one its process had taken but not started
 *   does not): by the next process that opens the file once
 *   5 seconds have passed, or within about a minute by a process already
 *   consuming (Deno KV's own lease and clean-up period);
 * - a failed attempt is retried after `backoff * 2 ** (attempt - 1)` ms, and
 *   after the last one the task is kept under the dead-letter key;
 * - a task handed back by a stopping consumer runs again after 1 s (so that
 *   the stopping process does not take it back), its attempt not counted;
 * - a task that came due (a delay, a retry, a hand-back) goes ahead of the
 *   tasks without a delay that Deno KV has already handed this process (up
 *   to 100), but not of those it has not: Deno KV delivers in the order
 *   tasks came due;
 * - several processes may share one file (on one machine): each task goes to
 *   one of them at a time. Deno KV wakes a listener at once only for
 *   messages enqueued by its own process, and finds the others' about once a
 *   minute; a consuming process therefore looks every `pollInterval`.
 *
 * Limits: Deno KV hands each process up to 100 messages at once, whatever
 * the consumer's `concurrency` (the rest wait in the process); a payload is
 * at most 64 KiB; a delay at most 30 days. Use one database per queue:
 * the backend reads every message of its queue.
 *
 * @example Open a file next to the app
 * ```ts ignore
 * import { DenoKvBackend, DurableQueue } from "@background/tasks/durable";
 *
 * const queue = new DurableQueue(await DenoKvBackend.open("./data/tasks.sqlite"));
 * ```
 */
export class DenoKvBackend implements DurableBackend {
  readonly #kv: KvDatabase;
  readonly #pollInterval: number;
  readonly #listeners: Listeners<Listener> = new Listeners();
  /**
   * Deliveries waiting for a free slot, oldest first: those that came due
   * (served first), and those enqueued without a delay.
   */
  readonly #waiting: { due: Waiter[]; fresh: Waiter[] } = {
    due: [],
    fresh: [],
  };
  /** Writes in progress, which `close` lets finish. */
  readonly #writes: Set<Promise<unknown>> = new Set();
  #onError: (error: unknown) => void = (error) =>
    console.error("@background/tasks/durable (Deno KV):", error);
  #listening: Promise<void> | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  /** No more deliveries to listeners; writes in progress may finish. */
  #closing = false;
  /** The database is closed: nothing can be written or acknowledged. */
  #shut = false;
  #closed: Promise<void> | undefined;

  /**
   * Opens (or creates) a Deno KV database and makes a backend on it.
   *
   * @param path The SQLite file; omitted, Deno's default database for the
   * script (on Deno Deploy, the project's hosted KV).
   * @param options How often to look for tasks from other processes.
   * @returns A promise of the backend.
   * @throws {TypeError} A path that is not a string, an option of the wrong type.
   * @throws {RangeError} A `pollInterval` out of range.
   * @throws {Error} This runtime has no `Deno.openKv` (Bun, Node, or Deno
   * without `--unstable-kv`).
   */
  static async open(
    path?: string,
    options: DenoKvBackendOptions = {},
  ): Promise<DenoKvBackend> {
    const where = "Cannot open DenoKvBackend";
    if (path !== undefined && typeof path !== "string") {
      throw new TypeError(
        `${where}: 'path' must be a string, received ${show(path)}`,
      );
    }
    checkPollInterval(where, options);
    const deno = (globalThis as {
      Deno?: { openKv?: (path?: string) => Promise<KvDatabase> };
    }).Deno;
    if (typeof deno?.openKv !== "function") {
      throw new Error(
        `${where}: this runtime has no Deno.openKv. Deno KV needs Deno with ` +
          `--unstable-kv (or "unstable": ["kv"] in deno.json); on Bun and ` +
          `Node use RedisBackend`,
      );
    }
    return new DenoKvBackend(await deno.openKv(path), options);
  }

  /**
   * Makes a backend on a database you opened. `close()` closes it.
   *
   * @param kv What `Deno.openKv()` returned.
   * @param options How often to look for tasks from other processes.
   * @throws {TypeError} A `kv` that is not a Deno KV database, an option of the wrong type.
   * @throws {RangeError} A `pollInterval` out of range.
   */
  constructor(kv: KvDatabase, options: DenoKvBackendOptions = {}) {
    const where = "Cannot create DenoKvBackend";
    if (
      kv === null || typeof kv !== "object" ||
      typeof kv.listenQueue !== "function" || typeof kv.atomic !== "function"
    ) {
      throw new TypeError(
        `${where}: 'kv' must be a Deno.Kv, received ${show(kv)}`,
      );
    }
    checkPollInterval(where, options);
    this.#kv = kv;
    this.#pollInterval = options.pollInterval ?? 1000;
  }

  /**
   * Stores a task and its attempt counter in one transaction.
   *
   * @param message The task.
   * @param delay Milliseconds before it may be delivered.
   * @returns A promise that resolves once it is committed.
   */
  async enqueue(message: DurableMessage, delay: number): Promise<void> {
    if (this.#closing) throw new Error("The DenoKvBackend is closed");
    const key = stateKey(message.id);
    const state: State = { seq: 1, started: 0, phase: "ready" };
    // A write `close()` waits for: a task accepted before it is stored.
    const result = await this.#write(
      this.#kv.atomic()
        .check({ key, versionstamp: null })
        .set(key, state)
        .enqueue(
          { kind: ROOT, seq: 1, message, due: delay > 0 } satisfies TaskMessage,
          this.#enqueueOptions(message, delay),
        )
        .commit(),
    );
    if (!result.ok) {
      throw new Error(`A task with the id ${message.id} is already stored`);
    }
  }

  /**
   * Replaces a dead letter by a fresh task with its name and payload, in one
   * atomic operation.
   *
   * @param id The dead letter's id.
   * @param fresh The new task's id, attempts and backoff.
   * @returns A promise of whether there was such a dead letter.
   */
  async retryDeadLetter(id: string, fresh: FreshTask): Promise<boolean> {
    if (this.#closing) throw new Error("The DenoKvBackend is closed");
    for (let tries = 0;; tries++) {
      const entry = await this.#kv.get(deadKey(id));
      if (entry.value === null) return false;
      if (tries === MAX_TRIES) throw busy(id);
      const stored = isTaskMessage(entry.value)
        ? entry.value.message
        : entry.value as StoredDeadLetter;
      const message: DurableMessage = {
        ...fresh,
        name: stored.name,
        payload: stored.payload,
      };
      const key = stateKey(message.id);
      const state: State = { seq: 1, started: 0, phase: "ready" };
      const result = await this.#write(
        this.#kv.atomic()
          .check({ key: deadKey(id), versionstamp: entry.versionstamp })
          .check({ key, versionstamp: null })
          .delete(deadKey(id))
          .delete(stateKey(id))
          .set(key, state)
          .enqueue(
            { kind: ROOT, seq: 1, message } satisfies TaskMessage,
            this.#enqueueOptions(message, 0),
          )
          .commit(),
      );
      // Changed in between (read again), or gone.
      if (result.ok) return true;
    }
  }

  /**
   * Removes a dead letter.
   *
   * @param id The dead letter's id.
   * @returns A promise of whether there was such a dead letter.
   */
  async deleteDeadLetter(id: string): Promise<boolean> {
    if (this.#closing) throw new Error("The DenoKvBackend is closed");
    for (let tries = 0;; tries++) {
      const entry = await this.#kv.get(deadKey(id));
      if (entry.value === null) return false;
      if (tries === MAX_TRIES) throw busy(id);
      const result = await this.#write(
        this.#kv.atomic()
          .check({ key: deadKey(id), versionstamp: entry.versionstamp })
          .delete(deadKey(id))
          .delete(stateKey(id))
          .commit(),
      );
      if (result.ok) return true;
    }
  }

  /**
   * Delivers tasks to `receive`, at most `concurrency` at once. The first
   * call starts listening to the database's queue.
   *
   * @param receive Runs one delivery and resolves with its outcome.
   * @param options The concurrency, and where errors go.
   * @returns A listener to stop.
   */
  listen(receive: DurableReceiver, options: ListenOptions): DurableListener {
    this.#onError = options.onError;
    const listener: Listener = {
      receive,
      concurrency: options.concurrency,
      running: 0,
      stopped: this.#closing,
    };
    if (!this.#closing) {
      this.#listeners.add(listener);
      this.#start();
      this.#grant();
    }
    return {
      stop: () => {
        this.#listeners.stop(listener);
        return Promise.resolve();
      },
    };
  }

  /**
   * The dead letters, most recent first.
   *
   * @param limit The most to return.
   * @returns A promise of them.
   */
  async deadLetters(limit: number): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    const entries = this.#kv.list({ prefix: [ROOT, "dead"] }, {
      limit: DEAD_LETTER_SCAN,
    });
    for await (const { key, value, versionstamp } of entries) {
      if (isTaskMessage(value)) {
        letters.push(await this.#adopt(key, versionstamp, value.message));
      } else {
        const letter = value as StoredDeadLetter;
        letters.push({ ...letter, failedAt: new Date(letter.failedAt) });
      }
    }
    letters.sort((a, b) => b.failedAt.getTime() - a.failedAt.getTime());
    return letters.slice(0, limit);
  }

  /**
   * Stops delivering, hands back the deliveries that have not started,
   * lets the writes in progress finish, and closes the database. Deliveries
   * still in a handler stay unacknowledged and come back: to the next
   * process that opens the file once 5 seconds have passed, or within about
   * a minute to one already consuming it. So does a message that Deno KV had
   * already leased to this process but not yet handed to it when the
   * database closed: KV offers no way to give it back.
   *
   * @returns A promise that resolves once the database is closed.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      clearInterval(this.#poll);
      this.#listeners.stopAll();
      const waiting = [
        ...this.#waiting.due.splice(0),
        ...this.#waiting.fresh.splice(0),
      ];
      for (const waiter of waiting) waiter.abandon();
      while (this.#writes.size > 0) {
        await Promise.allSettled([...this.#writes]);
      }
      this.#shut = true;
      this.#kv.close();
      await this.#listening?.catch(this.#onError);
    })();
    return this.#closed;
  }

  #start(): void {
    if (this.#listening !== undefined) return;
    this.#listening = this.#kv.listenQueue((value) => this.#handle(value));
    if (this.#pollInterval !== Infinity) {
      // A message enqueued here makes KV look at the queue again, and see
      // what other processes enqueued.
      this.#poll = setInterval(() => {
        this.#write(this.#kv.enqueue(TICK)).catch(this.#onError);
      }, this.#pollInterval);
    }
  }

  #enqueueOptions(message: DurableMessage, delay: number): KvEnqueueOptions {
    const schedule: number[] = [];
    for (let attempt = 1; attempt <= 5; attempt++) {
      schedule.push(
        Math.min(retryDelay(message.backoff, attempt), MAX_KV_INTERVAL),
      );
    }
    return {
      delay,
      keysIfUndelivered: [deadKey(message.id)],
      backoffSchedule: schedule,
    };
  }

  /** Tracks a write, so that `close` waits for it before closing. */
  #write<T>(promise: Promise<T>): Promise<T> {
    this.#writes.add(promise);
    const forget = () => this.#writes.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /** One queue message; resolving acknowledges it, `park()` never does. */
  async #handle(value: unknown): Promise<void> {
    if ((value as typeof TICK | null)?.kind === TICK.kind) return;
    if (!isTaskMessage(value)) {
      this.#onError(
        new Error(
          `Ignored a Deno KV queue message that is not a durable task: ` +
            `give each DenoKvBackend a database of its own`,
        ),
      );
      return;
    }
    if (this.#shut) return park();
    try {
      await this.#deliver(value);
    } catch (error) {
      if (this.#shut) return park();
      // Deno KV redelivers it by its backoff schedule.
      this.#onError(error);
      throw error;
    }
  }

  /**
   * Until a delivery runs in a handler (or is acknowledged, handed back or
   * buried), it holds `close` back: a database closed under it would leave
   * it unacknowledged, and it would come back only when its lease ran out.
   */
  async #deliver(raw: TaskMessage): Promise<void> {
    const decided = Promise.withResolvers<void>();
    this.#write(decided.promise);
    try {
      await this.#route(raw, decided.resolve);
    } finally {
      decided.resolve();
    }
  }

  async #route(raw: TaskMessage, decided: () => void): Promise<void> {
    const { message, seq } = raw;
    const key = stateKey(message.id);
    const entry = await this.#kv.get(key);
    const state = entry.value as State | null;
    // Done, dead, or replaced by a newer message: acknowledge this one.
    if (state === null || state.seq !== seq) return;
    let check: Check = { key, versionstamp: entry.versionstamp };
    if (state.phase === "running") {
      // Back from a process that died (or closed the database) while it ran.
      if (state.started >= message.attempts) {
        await this.#bury(
          check,
          message,
          state.started,
          interrupted(state.started),
        );
      } else {
        await this.#replace(check, raw, state.started, 0);
      }
      return;
    }
    if (state.started >= message.attempts) {
      await this.#bury(
        check,
        message,
        state.started,
        interrupted(state.started),
      );
      return;
    }
    const handBack = () => this.#handBack(check, raw, state.started);
    const slot = await this.#slot(raw.due === true, handBack);
    if (slot === HANDED_BACK) return;
    if (slot === undefined) {
      await handBack();
      return;
    }
    const listener = slot;
    try {
      const attempt = state.started + 1;
      let started = false;
      // The attempt counts once the task starts in its manager: recorded
      // here, before the handler runs, never while it waits for a slot.
      const start = async (): Promise<void> => {
        if (started) return;
        if (this.#shut) throw new Error("The DenoKvBackend is closed");
        const running: State = { seq, started: attempt, phase: "running" };
        const commit = await this.#write(
          this.#kv.atomic().check(check).set(key, running).commit(),
        );
        if (!commit.ok) {
          throw new Error(
            `Durable task ${message.id} cannot start here: it was changed ` +
              `by another delivery`,
          );
        }
        check = { key, versionstamp: commit.versionstamp ?? null };
        started = true;
      };
      decided();
      const outcome = await listener.receive({ message, attempt, start });
      if (this.#shut) return park();
      switch (outcome.status) {
        case "fulfilled":
          await this.#write(
            this.#kv.atomic().check(check).delete(key).commit(),
          );
          return;
        case "rejected":
          if (attempt < message.attempts) {
            await this.#replace(
              check,
              raw,
              attempt,
              retryDelay(message.backoff, attempt),
            );
          } else {
            await this.#bury(check, message, attempt, errorText(outcome.error));
          }
          return;
        case "released":
          await this.#replace(
            check,
            raw,
            started ? attempt - 1 : state.started,
            listener.stopped || this.#closing
              ? HAND_BACK_DELAY
              : started
              ? message.backoff
              : 0,
          );
      }
    } finally {
      listener.running--;
      this.#grant();
    }
  }

  /**
   * Waits for a free slot. Resolves `undefined` at once when the backend is
   * closing or no one listens; when it closes while the delivery waits,
   * starts `handBack` at once (so that its write is in before the database
   * closes) and resolves with its result.
   */
  #slot(
    due: boolean,
    handBack: () => Promise<typeof HANDED_BACK>,
  ): Promise<Listener | undefined | typeof HANDED_BACK> {
    if (this.#closing) return Promise.resolve(undefined);
    const free = this.#listeners.free();
    if (free !== undefined) {
      free.running++;
      return Promise.resolve(free);
    }
    if (this.#listeners.size === 0) return Promise.resolve(undefined);
    return new Promise((resolve) =>
      this.#waiting[due ? "due" : "fresh"].push({
        due,
        give: resolve,
        abandon: () => resolve(handBack()),
      })
    );
  }

  /** Gives free slots to waiting deliveries, those that came due first. */
  #grant(): void {
    const { due, fresh } = this.#waiting;
    while (due.length + fresh.length > 0) {
      const free = this.#listeners.free();
      if (free === undefined) return;
      free.running++;
      (due.length > 0 ? due : fresh).shift()!.give(free);
    }
  }

  /** Replaces the message with a new one, delivered after `delay` ms. */
  async #replace(
    check: Check,
    raw: TaskMessage,
    started: number,
    delay: number,
  ): Promise<void> {
    const seq = raw.seq + 1;
    const state: State = { seq, started, phase: "ready" };
    await this.#write(
      this.#kv.atomic()
        .check(check)
        .set(check.key, state)
        .enqueue(
          {
            kind: ROOT,
            seq,
            message: raw.message,
            due: true,
          } satisfies TaskMessage,
          this.#enqueueOptions(raw.message, delay),
        )
        .commit(),
    );
  }

  /**
   * A dead letter that Deno KV wrote itself, once its own redeliveries ran
   * out (`keysIfUndelivered`): the message as enqueued, with no time and no
   * error. Made one of ours at its first read, in place of the message, with
   * that time as `failedAt`, and the task's state record removed. If another
   * reader made it first, theirs is kept in the database.
   */
  async #adopt(
    key: KvKey,
    versionstamp: string,
    message: DurableMessage,
  ): Promise<DeadLetter> {
    const stateAt = stateKey(message.id);
    const state = await this.#kv.get(stateAt);
    const started = (state.value as State | null)?.started ?? 0;
    const letter: StoredDeadLetter = {
      id: message.id,
      name: message.name,
      payload: message.payload,
      attempts: started,
      error: started === 0
        ? "Deno KV gave up delivering it before any attempt was recorded"
        : `${interrupted(started)} (Deno KV gave up redelivering it)`,
      failedAt: Date.now(),
    };
    await this.#write(
      this.#kv.atomic()
        .check({ key, versionstamp })
        .check({ key: stateAt, versionstamp: state.versionstamp })
        .delete(stateAt)
        .set(key, letter)
        .commit(),
    );
    return { ...letter, failedAt: new Date(letter.failedAt) };
  }

  /** Makes the task a dead letter. */
  async #bury(
    check: Check,
    message: DurableMessage,
    attempts: number,
    error: string,
  ): Promise<void> {
    const letter: StoredDeadLetter = {
      id: message.id,
      name: message.name,
      payload: message.payload,
      attempts,
      error: error.slice(0, MAX_ERROR_LENGTH),
      failedAt: Date.now(),
    };
    await this.#write(
      this.#kv.atomic()
        .check(check)
        .delete(check.key)
        .set(deadKey(message.id), letter)
        .commit(),
    );
  }

  /**
   * Gives a task that did not start back to the queue, for a consumer that
   * is not stopping; or, once the database is closed, leaves it
   * unacknowledged.
   */
  async #handBack(
    check: Check,
    raw: TaskMessage,
    started: number,
  ): Promise<typeof HANDED_BACK> {
    if (this.#shut) return park();
    await this.#replace(check, raw, started, HAND_BACK_DELAY);
    return HANDED_BACK;
  }
}

/** How many times a dead-letter tool reads again a letter changed under it. */
const MAX_TRIES = 10;

function busy(id: string): Error {
  return new Error(
    `The dead letter ${id} kept changing while it was read ${MAX_TRIES} times`,
  );
}

function checkPollInterval(where: string, options: unknown): void {
  checkOptions(where, options);
  POLL_INTERVAL.check(
    where,
    "pollInterval",
    (options as DenoKvBackendOptions).pollInterval,
  );
}
