// The SQLite DurableBackend: one file that the processes of one machine
// share, with no server, on every runtime (node:sqlite on Deno and Node,
// bun:sqlite on Bun, through _sqlite_driver.ts).
//
// One table holds the tasks, one the dead letters. A task row is waiting
// (`lease_owner` NULL) or leased by one open backend (`lease_owner`, its
// random id, until `lease_until`); a backend renews its leases while it is
// open, so the leases of a process that died lapse, and the next claim makes
// those tasks waiting again, in the lane of tasks that came due. `started`
// counts the attempts started: raised by a delivery's `start()`, before the
// handler runs, and lowered again when a started attempt is handed back.
//
// Claims run in `BEGIN IMMEDIATE` transactions (the write lock is taken at
// the start, so two processes never pick the same rows), in WAL mode (readers
// never wait for the writer), with a busy timeout for the lock. A consumer is
// woken at once by an enqueue of its own process (every backend of the
// process on the same path), at each task's due time that it knows of, and
// otherwise looks every `pollInterval` with two indexed reads (no lock).

import {
  type DeadLetter,
  type DurableBackend,
  type DurableListener,
  type DurableMessage,
  type DurableOutcome,
  type DurableReceiver,
  errorText,
  type FreshTask,
  interrupted,
  type ListenOptions,
  retryDelay,
} from "./backend.ts";
import { openSqlite, type Row, type SqliteDatabase } from "./_sqlite_driver.ts";
import { Listeners } from "./_listeners.ts";
import {
  checkOptions,
  MAX_TIMEOUT,
  NumberRule,
  show,
} from "../core/_validate.ts";

/** Options for {@linkcode SqliteBackend.open}. */
export interface SqliteBackendOptions {
  /**
   * How long, in milliseconds, a process holds a task it took; it renews
   * the lease every third of that while it is open. When a process dies, its
   * tasks are delivered again once their leases lapse: within this.
   *
   * @default {30000}
   */
  leaseDuration?: number;
  /**
   * How often, in milliseconds, a consuming process looks for tasks that
   * other processes enqueued or gave up (two indexed reads, no lock). Tasks
   * enqueued by the same process, and due times it knows of, wake it at once.
   *
   * @default {250}
   */
  pollInterval?: number;
  /**
   * SQLite's `synchronous` setting. `"normal"`: a commit survives the crash
   * of any process, but the last commits may be lost if the machine loses
   * power. `"full"`: every commit waits for the disk (fsync), and survives
   * that too, at a cost in tasks per second.
   *
   * @default {"normal"}
   */
  synchronous?: "normal" | "full";
  /**
   * Milliseconds a transaction waits for another process's write lock
   * before it fails with SQLITE_BUSY.
   *
   * @default {5000}
   */
  busyTimeout?: number;
}

/** A lease, a poll interval, a busy timeout: whole ms from 1 to 2^31-1. */
const MILLISECONDS = new NumberRule(
  "a number of milliseconds",
  `a whole number of milliseconds from 1 to ${MAX_TIMEOUT}`,
  (ms) => Number.isInteger(ms) && ms > 0 && ms <= MAX_TIMEOUT,
);

const TASKS = "background_tasks";
const DEAD = "background_dead_letters";

/** The lane of a waiting task: tasks that came due go first. */
const DUE = 0;
const FRESH = 1;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS ${TASKS} (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    backoff INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    lane INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    started INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER
  )`,
  `CREATE INDEX IF NOT EXISTS ${TASKS}_waiting
    ON ${TASKS} (lane, due_at) WHERE lease_owner IS NULL`,
  `CREATE INDEX IF NOT EXISTS ${TASKS}_leased
    ON ${TASKS} (lease_until) WHERE lease_owner IS NOT NULL`,
  `CREATE TABLE IF NOT EXISTS ${DEAD} (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    failed_at INTEGER NOT NULL
  )`,
  `CREATE INDEX IF NOT EXISTS ${DEAD}_failed_at ON ${DEAD} (failed_at)`,
];

interface Listener {
  readonly receive: DurableReceiver;
  readonly concurrency: number;
  running: number;
  stopped: boolean;
}

/** A delivery in a receiver, as `close()` sees it. */
interface InFlight {
  readonly id: string;
  started: boolean;
}

/** The open backends of this process, by path: an enqueue wakes them all. */
const openBackends = new Map<string, Set<SqliteBackend>>();

/**
 * A {@linkcode DurableBackend} on a SQLite file: durable tasks with no
 * server, on Deno, Bun and Node, for the processes of one machine (which may
 * run different runtimes). Open it with {@linkcode SqliteBackend.open}.
 *
 * What it guarantees:
 * - a task is stored (committed) when `enqueue` resolves;
 * - each task is leased to one process at a time, which renews the lease
 *   while it is open; when the process dies, the lease lapses within
 *   `leaseDuration` and the task is delivered again: an attempt that had
 *   started counts, one that had not does not;
 * - a failed attempt is retried after `backoff * 2 ** (attempt - 1)` ms, and
 *   after the last one the task is kept as a dead letter, in the same file;
 * - a task handed back by a stopping consumer is delivered again at once,
 *   its attempt not counted;
 * - a task enqueued by this process wakes its consumers at once; one
 *   enqueued by another process is found within `pollInterval`; a delayed
 *   task is delivered at its due time, ahead of the tasks that wait without
 *   a delay.
 *
 * Limits: one machine (SQLite's locks do not hold over most network file
 * systems); one queue per file; every process writes through one lock, held
 * for a few statements per task (measured in bench/durable_sqlite.ts).
 *
 * @example Two processes, one file
 * ```ts ignore
 * import { DurableQueue, SqliteBackend } from "@background/tasks/durable";
 *
 * // In the web process and in each worker process of the machine:
 * const queue = new DurableQueue(await SqliteBackend.open("./data/queue.sqlite"));
 * ```
 */
export class SqliteBackend implements DurableBackend {
  readonly #db: SqliteDatabase;
  readonly #path: string;
  /** This backend's id in `lease_owner`. */
  readonly #owner: string = crypto.randomUUID();
  readonly #leaseDuration: number;
  readonly #pollInterval: number;
  readonly #listeners: Listeners<Listener> = new Listeners();
  readonly #inFlight: Set<InFlight> = new Set();
  #onError: (error: unknown) => void = (error) =>
    console.error("@background/tasks/durable (SQLite):", error);
  #timer: ReturnType<typeof setTimeout> | undefined;
  #renewal: ReturnType<typeof setInterval> | undefined;
  #pumpScheduled = false;
  #closed = false;
  /** A task was handed back: other backends of the process may take it. */
  #releasedAny = false;

  /**
   * Opens (or creates) the file, in WAL mode, and makes its tables if they
   * are missing. Loads `node:sqlite` (Deno, Node 22.5+) or `bun:sqlite` (Bun).
   *
   * @param path The SQLite file; its folder must exist.
   * @param options The lease, the poll interval, `synchronous`, the busy timeout.
   * @returns A promise of the backend.
   * @throws {TypeError} A path that is not a non-empty string, an option of
   * the wrong type.
   * @throws {RangeError} An option out of range.
   * @throws {Error} The file cannot be opened, or this runtime has no SQLite
   * module (the promise rejects).
   *
   * @example Open a file, enqueue, read it back
   * ```ts
   * import { DurableQueue, SqliteBackend } from "@background/tasks/durable";
   * import assert from "node:assert/strict";
   *
   * const folder = await Deno.makeTempDir();
   * const queue = new DurableQueue(await SqliteBackend.open(`${folder}/queue.sqlite`));
   * queue.define("remind", () => {});
   * const id = await queue.enqueue("remind", { user: 7 }, { delay: 60_000 });
   * assert.equal(typeof id, "string");
   * await queue.close();
   * await Deno.remove(folder, { recursive: true });
   * ```
   */
  static async open(
    path: string,
    options: SqliteBackendOptions = {},
  ): Promise<SqliteBackend> {
    const where = "Cannot open SqliteBackend";
    if (typeof path !== "string" || path === "") {
      throw new TypeError(
        `${where}: 'path' must be a non-empty string, received ${show(path)}`,
      );
    }
    checkOptions(where, options);
    MILLISECONDS.check(where, "leaseDuration", options.leaseDuration);
    MILLISECONDS.check(where, "pollInterval", options.pollInterval);
    MILLISECONDS.check(where, "busyTimeout", options.busyTimeout);
    const synchronous = options.synchronous ?? "normal";
    if (synchronous !== "normal" && synchronous !== "full") {
      throw new TypeError(
        `${where}: 'synchronous' must be "normal" or "full", received ${
          show(synchronous)
        }`,
      );
    }
    let db: SqliteDatabase;
    try {
      db = await openSqlite(path);
    } catch (error) {
      throw new Error(
        `${where}: cannot open ${JSON.stringify(path)}: ${errorText(error)}`,
        { cause: error },
      );
    }
    try {
      db.run(`PRAGMA busy_timeout = ${options.busyTimeout ?? 5000}`);
      db.get("PRAGMA journal_mode = WAL");
      db.run(`PRAGMA synchronous = ${synchronous.toUpperCase()}`);
      transaction(db, () => {
        for (const statement of SCHEMA) db.run(statement);
      });
    } catch (error) {
      db.close();
      throw new Error(
        `${where}: cannot set up ${JSON.stringify(path)}: ${errorText(error)}`,
        { cause: error },
      );
    }
    return new SqliteBackend(db, path, options);
  }

  private constructor(
    db: SqliteDatabase,
    path: string,
    options: SqliteBackendOptions,
  ) {
    this.#db = db;
    this.#path = path;
    this.#leaseDuration = options.leaseDuration ?? 30_000;
    this.#pollInterval = options.pollInterval ?? 250;
    let backends = openBackends.get(path);
    if (backends === undefined) openBackends.set(path, backends = new Set());
    backends.add(this);
  }

  /**
   * Stores a task (one committed INSERT) and wakes this process's consumers.
   *
   * @param message The task.
   * @param delay Milliseconds before it may be delivered.
   * @returns A promise that resolves once it is committed.
   */
  enqueue(message: DurableMessage, delay: number): Promise<void> {
    try {
      this.#open();
      this.#insert(message, delay > 0 ? DUE : FRESH, Date.now() + delay);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#wakeAll();
    return Promise.resolve();
  }

  /**
   * Delivers tasks to `receive`, at most `concurrency` at once.
   *
   * @param receive Runs one delivery and resolves with its outcome.
   * @param options The concurrency, and where errors go.
   * @returns A listener to stop.
   */
  listen(receive: DurableReceiver, options: ListenOptions): DurableListener {
    const listener: Listener = {
      receive,
      concurrency: options.concurrency,
      running: 0,
      stopped: this.#closed,
    };
    if (!this.#closed) {
      this.#onError = options.onError;
      this.#listeners.add(listener);
      this.#renewal ??= setInterval(
        () => this.#renew(),
        Math.max(1, Math.floor(this.#leaseDuration / 3)),
      );
      this.#pump();
    }
    return {
      stop: () => {
        this.#listeners.stop(listener);
        if (this.#listeners.size === 0) {
          clearTimeout(this.#timer);
          this.#timer = undefined;
        }
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
  deadLetters(limit: number): Promise<DeadLetter[]> {
    try {
      this.#open();
      const rows = this.#db.all(
        `SELECT id, name, payload, attempts, error, failed_at FROM ${DEAD}
          ORDER BY failed_at DESC, rowid DESC LIMIT ?`,
        limit,
      );
      return Promise.resolve(rows.map((row) => ({
        id: row.id as string,
        name: row.name as string,
        payload: JSON.parse(row.payload as string),
        attempts: row.attempts as number,
        error: row.error as string,
        failedAt: new Date(row.failed_at as number),
      })));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Replaces a dead letter by a fresh task with its name and payload, in one
   * transaction.
   *
   * @param id The dead letter's id.
   * @param fresh The new task's id, attempts and backoff.
   * @returns A promise of whether there was such a dead letter.
   */
  retryDeadLetter(id: string, fresh: FreshTask): Promise<boolean> {
    let found: boolean;
    try {
      this.#open();
      found = transaction(this.#db, () => {
        const letter = this.#db.get(
          `SELECT name, payload FROM ${DEAD} WHERE id = ?`,
          id,
        );
        if (letter === undefined) return false;
        this.#db.run(`DELETE FROM ${DEAD} WHERE id = ?`, id);
        this.#insert(
          {
            ...fresh,
            name: letter.name as string,
            payload: JSON.parse(letter.payload as string),
          },
          FRESH,
          Date.now(),
        );
        return true;
      });
    } catch (error) {
      return Promise.reject(error);
    }
    if (found) this.#wakeAll();
    return Promise.resolve(found);
  }

  /**
   * Removes a dead letter.
   *
   * @param id The dead letter's id.
   * @returns A promise of whether there was such a dead letter.
   */
  deleteDeadLetter(id: string): Promise<boolean> {
    try {
      this.#open();
      return Promise.resolve(
        this.#db.run(`DELETE FROM ${DEAD} WHERE id = ?`, id) > 0,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Stops delivering, hands back the deliveries that have not started (they
   * go to other processes at once), and closes the file. Deliveries whose
   * handler started are left leased: they are delivered again once their
   * lease lapses, unless this process reports their outcome first (it cannot
   * once closed).
   *
   * @returns A promise that resolves once the file is closed.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#renewal);
    this.#listeners.stopAll();
    try {
      const now = Date.now();
      for (const delivery of this.#inFlight) {
        if (!delivery.started) this.#release(delivery.id, now, false);
      }
    } catch (error) {
      this.#onError(error);
    }
    this.#inFlight.clear();
    const backends = openBackends.get(this.#path);
    backends?.delete(this);
    if (backends?.size === 0) openBackends.delete(this.#path);
    this.#db.close();
    if (this.#releasedAny) this.#wakeAll();
    return Promise.resolve();
  }

  #open(): void {
    if (this.#closed) throw new Error("The SqliteBackend is closed");
  }

  #insert(message: DurableMessage, lane: number, dueAt: number): void {
    try {
      this.#db.run(
        `INSERT INTO ${TASKS}
          (id, name, payload, attempts, backoff, enqueued_at, lane, due_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        message.id,
        message.name,
        JSON.stringify(message.payload),
        message.attempts,
        message.backoff,
        message.enqueuedAt,
        lane,
        dueAt,
      );
    } catch (error) {
      if (/UNIQUE|PRIMARY KEY/i.test(errorText(error))) {
        throw new Error(`A task with the id ${message.id} is already stored`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  /** Wakes every open backend of this process on the same file. */
  #wakeAll(): void {
    for (const backend of openBackends.get(this.#path) ?? []) backend.#pump();
  }

  /** Fills free slots in a microtask, never inside the caller's call. */
  #pump(): void {
    if (this.#pumpScheduled || this.#closed) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      try {
        this.#fill();
      } catch (error) {
        // SQLITE_BUSY past the busy timeout, a full disk...: try again at
        // the next poll.
        this.#onError(error);
        this.#arm(Date.now() + this.#pollInterval);
      }
    });
  }

  #fill(): void {
    if (this.#closed) return;
    const free = this.#listeners.freeSlots();
    if (free <= 0) return;
    const now = Date.now();
    if (this.#ready(now)) {
      for (const row of this.#claim(free, now)) {
        this.#deliver(this.#listeners.free()!, row);
      }
    }
    if (this.#listeners.freeSlots() > 0) {
      this.#arm(this.#nextDue(now));
    }
  }

  /** Whether a claim would find anything: two indexed reads, no lock. */
  #ready(now: number): boolean {
    return this.#db.get(
          `SELECT 1 FROM ${TASKS} WHERE lease_owner IS NULL AND lane = ${DUE}
        AND due_at <= ? LIMIT 1`,
          now,
        ) !== undefined ||
      this.#db.get(
          `SELECT 1 FROM ${TASKS} WHERE lease_owner IS NULL AND lane = ${FRESH}
        AND due_at <= ? LIMIT 1`,
          now,
        ) !== undefined ||
      this.#db.get(
          `SELECT 1 FROM ${TASKS} WHERE lease_owner IS NOT NULL
        AND lease_until <= ? LIMIT 1`,
          now,
        ) !== undefined;
  }

  /** When to look next: the next due time known, or the poll. */
  #nextDue(now: number): number {
    const poll = now + this.#pollInterval;
    const row = this.#db.get(
      `SELECT MIN(due_at) AS due FROM ${TASKS} WHERE lease_owner IS NULL`,
    );
    const due = row?.due as number | null | undefined;
    return due === null || due === undefined ? poll : Math.min(due, poll);
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    if (this.#closed || this.#listeners.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, Math.max(0, at - Date.now()));
  }

  /**
   * Leases up to `count` waiting tasks to this backend, in one `BEGIN
   * IMMEDIATE` transaction: first the tasks whose lease lapsed are made
   * waiting again (due), then the tasks due are taken, those that came due
   * first, then the others, oldest first. A task whose attempts all started
   * and none finished becomes a dead letter instead.
   */
  #claim(count: number, now: number): Row[] {
    return transaction(this.#db, () => {
      this.#db.run(
        `UPDATE ${TASKS} SET lease_owner = NULL, lease_until = NULL,
          lane = ${DUE}, due_at = lease_until
          WHERE lease_owner IS NOT NULL AND lease_until <= ?`,
        now,
      );
      const taken: Row[] = [];
      while (taken.length < count) {
        const rows = this.#db.all(
          `SELECT id, name, payload, attempts, backoff, enqueued_at, started
            FROM ${TASKS} WHERE lease_owner IS NULL AND due_at <= ?
            ORDER BY lane, due_at, rowid LIMIT ?`,
          now,
          count - taken.length,
        );
        if (rows.length === 0) break;
        for (const row of rows) {
          const started = row.started as number;
          if (started >= (row.attempts as number)) {
            this.#bury(row, started, interrupted(started), now);
            continue;
          }
          this.#db.run(
            `UPDATE ${TASKS} SET lease_owner = ?, lease_until = ? WHERE id = ?`,
            this.#owner,
            now + this.#leaseDuration,
            row.id as string,
          );
          taken.push(row);
        }
      }
      return taken;
    });
  }

  #deliver(listener: Listener, row: Row): void {
    listener.running++;
    const id = row.id as string;
    const inFlight: InFlight = { id, started: false };
    this.#inFlight.add(inFlight);
    const message: DurableMessage = {
      id,
      name: row.name as string,
      payload: JSON.parse(row.payload as string),
      attempts: row.attempts as number,
      backoff: row.backoff as number,
      enqueuedAt: row.enqueued_at as number,
    };
    const start = (): Promise<void> => {
      if (inFlight.started) return Promise.resolve();
      try {
        this.#open();
        const changed = this.#db.run(
          `UPDATE ${TASKS} SET started = started + 1
            WHERE id = ? AND lease_owner = ?`,
          id,
          this.#owner,
        );
        if (changed === 0) {
          throw new Error(
            `Durable task ${id} cannot start here: its lease lapsed and ` +
              `another process took it`,
          );
        }
      } catch (error) {
        return Promise.reject(error);
      }
      inFlight.started = true;
      return Promise.resolve();
    };
    const attempt = (row.started as number) + 1;
    listener.receive({ message, attempt, start })
      .then(
        (outcome) => this.#record(listener, inFlight, message, outcome),
        (error) => {
          // A receiver must not reject; keep the task as if released.
          this.#onError(error);
          this.#record(listener, inFlight, message, { status: "released" });
        },
      )
      .finally(() => {
        listener.running--;
        this.#pump();
      });
  }

  #record(
    listener: Listener,
    inFlight: InFlight,
    message: DurableMessage,
    outcome: DurableOutcome,
  ): void {
    // Closed: the file is gone; the lease lapses and the task comes back.
    if (!this.#inFlight.delete(inFlight) || this.#closed) return;
    const { id, started } = inFlight;
    const now = Date.now();
    try {
      switch (outcome.status) {
        case "fulfilled":
          this.#db.run(
            `DELETE FROM ${TASKS} WHERE id = ? AND lease_owner = ?`,
            id,
            this.#owner,
          );
          return;
        case "rejected": {
          const attempt = this.#db.get(
            `SELECT started FROM ${TASKS} WHERE id = ? AND lease_owner = ?`,
            id,
            this.#owner,
          )?.started as number | undefined;
          if (attempt === undefined) return;
          if (attempt < message.attempts) {
            this.#requeue(id, now + retryDelay(message.backoff, attempt), 0);
          } else {
            transaction(this.#db, () => {
              const row = this.#db.get(
                `SELECT id, name, payload FROM ${TASKS}
                  WHERE id = ? AND lease_owner = ?`,
                id,
                this.#owner,
              );
              if (row !== undefined) {
                this.#bury(row, attempt, errorText(outcome.error), now);
              }
            });
          }
          return;
        }
        case "released":
          // A stopping listener, or a task that never started, goes to the
          // others at once; a cancelled task waits one backoff.
          this.#release(
            id,
            listener.stopped || !started ? now : now + message.backoff,
            started,
          );
          this.#wakeAll();
      }
    } catch (error) {
      this.#onError(error);
    }
  }

  /** Makes a task of ours waiting again, due at `dueAt`. */
  #release(id: string, dueAt: number, started: boolean): void {
    this.#requeue(id, dueAt, started ? 1 : 0);
    this.#releasedAny = true;
  }

  #requeue(id: string, dueAt: number, uncount: number): void {
    this.#db.run(
      `UPDATE ${TASKS} SET lease_owner = NULL, lease_until = NULL,
        lane = ${DUE}, due_at = ?, started = started - ?
        WHERE id = ? AND lease_owner = ?`,
      dueAt,
      uncount,
      id,
      this.#owner,
    );
  }

  /** Moves a task to the dead letters; inside a transaction. */
  #bury(row: Row, attempts: number, error: string, now: number): void {
    this.#db.run(`DELETE FROM ${TASKS} WHERE id = ?`, row.id as string);
    this.#db.run(
      `INSERT OR REPLACE INTO ${DEAD}
        (id, name, payload, attempts, error, failed_at)
        VALUES (?, ?, ?, ?, ?, ?)`,
      row.id as string,
      row.name as string,
      row.payload as string,
      attempts,
      error,
      now,
    );
  }

  /** Extends the leases this backend holds. */
  #renew(): void {
    if (this.#closed || this.#inFlight.size === 0) return;
    try {
      this.#db.run(
        `UPDATE ${TASKS} SET lease_until = ? WHERE lease_owner = ?`,
        Date.now() + this.#leaseDuration,
        this.#owner,
      );
    } catch (error) {
      this.#onError(error);
    }
  }
}

/** Runs `body` in a `BEGIN IMMEDIATE` transaction: committed, or rolled back if it throws. */
function transaction<T>(db: SqliteDatabase, body: () => T): T {
  db.run("BEGIN IMMEDIATE");
  let result: T;
  try {
    result = body();
  } catch (error) {
    db.run("ROLLBACK");
    throw error;
  }
  db.run("COMMIT");
  return result;
}
