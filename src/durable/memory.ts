// The in-memory DurableBackend: the reference for what a backend does, and a
// stand-in for tests. Nothing here survives the process.

import {
  type DeadLetter,
  type DurableBackend,
  type DurableListener,
  type DurableMessage,
  type DurableOutcome,
  type DurableReceiver,
  errorText,
  type FreshTask,
  type ListenOptions,
  retryDelay,
} from "./backend.ts";
import { MAX_TIMEOUT } from "../core/_validate.ts";
import { Listeners } from "./_listeners.ts";

interface Entry {
  readonly message: DurableMessage;
  /** Attempts started so far. */
  started: number;
}

/** Where a task waits: `fresh` if enqueued without a delay, else `due`. */
type Lane = "fresh" | "due";

interface Listener {
  readonly receive: DurableReceiver;
  readonly concurrency: number;
  readonly onError: (error: unknown) => void;
  running: number;
  stopped: boolean;
}

/**
 * A {@linkcode DurableBackend} that keeps tasks in this process's memory:
 * nothing survives a restart and nothing is shared with another process. It
 * is for tests of your handlers and for trying the API; it behaves as the
 * other backends do (delays, retries with backoff, dead letters, handing a
 * cancelled task back), so the code you test is the code you deploy with
 * {@linkcode DenoKvBackend} or {@linkcode RedisBackend}.
 *
 * Two {@linkcode DurableQueue}s over one `MemoryBackend` share its tasks, as
 * two processes share a Redis server.
 *
 * @example Test a handler without a server
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
 * import assert from "node:assert/strict";
 *
 * const queue = new DurableQueue(new MemoryBackend());
 * const seen: number[] = [];
 * queue.define("count", (n: number) => {
 *   seen.push(n);
 * });
 * await queue.enqueue("count", 1);
 * await queue.enqueue("count", 2);
 * const tasks = new TaskManager();
 * let settled = 0;
 * const both = new Promise<void>((resolve) =>
 *   tasks.addEventListener("settle", () => {
 *     if (++settled === 2) resolve();
 *   }));
 * queue.consume(tasks, { concurrency: 2 });
 * await both;
 * assert.deepEqual(seen, [1, 2]);
 * await tasks.shutdown();
 * await queue.close();
 * ```
 */
export class MemoryBackend implements DurableBackend {
  /** Came due (a delay, a backoff, a hand-back): delivered first, oldest first. */
  readonly #due: Entry[] = [];
  /** Enqueued without a delay, oldest first. */
  readonly #fresh: Entry[] = [];
  readonly #timers: Set<ReturnType<typeof setTimeout>> = new Set();
  readonly #listeners: Listeners<Listener> = new Listeners();
  readonly #dead: DeadLetter[] = [];
  #pumpScheduled = false;
  #closed = false;

  /**
   * Stores a task; it is delivered after `delay` milliseconds.
   *
   * @param message The task.
   * @param delay Milliseconds to wait first.
   * @returns A promise that resolves once it is stored.
   */
  enqueue(message: DurableMessage, delay: number): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Error("The MemoryBackend is closed"));
    }
    this.#schedule({ message, started: 0 }, delay, delay > 0 ? "due" : "fresh");
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
      onError: options.onError,
      running: 0,
      stopped: this.#closed,
    };
    if (!this.#closed) this.#listeners.add(listener);
    this.#pump();
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
   * @returns A promise of copies of them.
   */
  deadLetters(limit: number): Promise<DeadLetter[]> {
    return Promise.resolve(
      this.#dead.slice(-limit).reverse().map((letter) => ({
        ...letter,
        payload: copy(letter.payload),
      })),
    );
  }

  /**
   * Replaces a dead letter by a fresh task with its name and payload.
   *
   * @param id The dead letter's id.
   * @param fresh The new task's id, attempts and backoff.
   * @returns A promise of whether there was such a dead letter.
   */
  retryDeadLetter(id: string, fresh: FreshTask): Promise<boolean> {
    if (this.#closed) {
      return Promise.reject(new Error("The MemoryBackend is closed"));
    }
    const index = this.#dead.findIndex((letter) => letter.id === id);
    if (index === -1) return Promise.resolve(false);
    const [letter] = this.#dead.splice(index, 1);
    const message = { ...fresh, name: letter.name, payload: letter.payload };
    this.#schedule({ message, started: 0 }, 0, "fresh");
    return Promise.resolve(true);
  }

  /**
   * Removes a dead letter.
   *
   * @param id The dead letter's id.
   * @returns A promise of whether there was such a dead letter.
   */
  deleteDeadLetter(id: string): Promise<boolean> {
    const index = this.#dead.findIndex((letter) => letter.id === id);
    if (index !== -1) this.#dead.splice(index, 1);
    return Promise.resolve(index !== -1);
  }

  /**
   * Stops delivering and forgets every stored task (dead letters stay
   * readable).
   *
   * @returns A promise that resolves at once.
   */
  close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#listeners.stopAll();
    this.#due.length = 0;
    this.#fresh.length = 0;
    return Promise.resolve();
  }

  #schedule(entry: Entry, delay: number, lane: Lane): void {
    if (this.#closed) return;
    if (delay <= 0) {
      (lane === "due" ? this.#due : this.#fresh).push(entry);
      this.#pump();
      return;
    }
    this.#waitUntil(entry, Date.now() + delay);
  }

  /**
   * Delivers `entry` once the clock reads `dueAt`, as the other backends
   * compare stored due times with it: a timer may fire a millisecond early
   * by that clock (Node's did: 29 ms for 30), and waits at most 2^31 - 1 ms
   * (about 24.8 days; a longer one fires at once), while a delay or backoff
   * may be up to 30 days. So each timer checks the clock and waits again.
   */
  #waitUntil(entry: Entry, dueAt: number): void {
    const left = dueAt - Date.now();
    if (left <= 0) return this.#schedule(entry, 0, "due");
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#waitUntil(entry, dueAt);
    }, Math.min(left, MAX_TIMEOUT));
    this.#timers.add(timer);
  }

  /** Delivers in a microtask, never inside the caller's call. */
  #pump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      while (this.#due.length + this.#fresh.length > 0 && !this.#closed) {
        const listener = this.#listeners.free();
        if (listener === undefined) return;
        const entry = this.#due.length > 0
          ? this.#due.shift()!
          : this.#fresh.shift()!;
        this.#deliver(listener, entry);
      }
    });
  }

  #deliver(listener: Listener, entry: Entry): void {
    listener.running++;
    let started = false;
    // Each attempt gets its own copy, as from a backend that stores JSON: a
    // handler that changes its payload changes nothing stored.
    const message = { ...entry.message, payload: copy(entry.message.payload) };
    const start = (): Promise<void> => {
      if (started) return Promise.resolve();
      if (this.#closed) {
        return Promise.reject(new Error("The MemoryBackend is closed"));
      }
      started = true;
      entry.started++;
      return Promise.resolve();
    };
    listener.receive({ message, attempt: entry.started + 1, start })
      .then(
        (outcome) => this.#record(listener, entry, outcome, started),
        (error) => {
          // A receiver must not reject; keep the task as if released.
          listener.onError(error);
          this.#record(listener, entry, { status: "released" }, started);
        },
      )
      .finally(() => {
        listener.running--;
        this.#pump();
      });
  }

  #record(
    listener: Listener,
    entry: Entry,
    outcome: DurableOutcome,
    started: boolean,
  ): void {
    const { message } = entry;
    switch (outcome.status) {
      case "fulfilled":
        return;
      case "rejected":
        if (entry.started < message.attempts) {
          this.#schedule(
            entry,
            retryDelay(message.backoff, entry.started),
            "due",
          );
        } else {
          this.#dead.push({
            id: message.id,
            name: message.name,
            payload: copy(message.payload),
            attempts: entry.started,
            error: errorText(outcome.error),
            failedAt: new Date(),
          });
        }
        return;
      case "released":
        if (started) entry.started--;
        // A stopping listener, or a task that never started, goes to the
        // others at once; a cancelled task waits one backoff before it runs
        // again.
        this.#schedule(
          entry,
          listener.stopped || !started ? 0 : message.backoff,
          "due",
        );
    }
  }
}

/** A deep copy of a JSON payload. */
function copy(payload: unknown): unknown {
  return structuredClone(payload);
}
