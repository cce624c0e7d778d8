// DurableQueue: checks the arguments, runs each delivery as a task of a
// TaskManager and reports its outcome to the backend (see backend.ts).

import {
  BOUND,
  checkOptions,
  COUNT,
  FUNCTION,
  milliseconds,
  NAME,
  show,
} from "../core/_validate.ts";
import { schedulerOf } from "../core/_registry.ts";
import type { TaskEvent } from "../core/task_event.ts";
import type { TaskManager } from "../core/task_manager.ts";
import type { TaskHandle } from "../core/types.ts";
import {
  type DeadLetter,
  type DurableBackend,
  type DurableListener,
  type DurableMessage,
  type DurableOutcome,
  type DurableReceiver,
  type FreshTask,
  MAX_DELAY,
} from "./backend.ts";
import { jsonCopy } from "./_json.ts";

/** What a durable task's handler receives besides its payload. */
export interface DurableContext {
  /**
   * Aborted when the task is cancelled through its manager (by id, by
   * `cancelAll`, by shutdown) or when the manager's timeout elapses. A
   * cancelled task is handed back to the backend and delivered again later,
   * without using up an attempt; a timed-out one has failed its attempt.
   */
  readonly signal: AbortSignal;
  /** The id `enqueue` returned; the same on every attempt. */
  readonly id: string;
  /** The handler's name. */
  readonly name: string;
  /** This attempt's number: 1, then 2 on the first retry, and so on. */
  readonly attempt: number;
  /** How many attempts the task has in all. */
  readonly attempts: number;
  /**
   * Reports how far the task is, as `progress()` of any task of the manager
   * does: it shows in the manager's `activeTasks` and `progress` events.
   *
   * @param value A number from 0 to 1, or a small JSON value.
   */
  progress(value: unknown): void;
}

/**
 * The work of one kind of durable task. It receives the payload as JSON gave
 * it back (a copy: plain objects, arrays, strings, finite numbers, booleans,
 * `null`). Throwing, or returning a promise that rejects, fails the attempt.
 * What it returns is ignored.
 */
export type DurableHandler<P = unknown> = (
  payload: P,
  context: DurableContext,
) => unknown;

/** Options for {@linkcode DurableQueue}. */
export interface DurableQueueOptions {
  /**
   * How many times a task is tried before it becomes a dead letter, unless
   * `enqueue` says otherwise. An attempt counts once its handler starts: an
   * attempt interrupted by the death of its process counts; a task that its
   * consumer had taken but not started (it waited in the manager for a
   * slot) does not, whether the consumer handed it back or died.
   *
   * @default {3}
   */
  attempts?: number;
  /**
   * Milliseconds before the first retry; each later retry waits twice as long
   * as the one before. 0 retries at once.
   *
   * @default {1000}
   */
  backoff?: number;
  /**
   * Receives the errors that belong to no call: a backend that loses its
   * connection while it listens, an outcome that could not be written.
   *
   * @default {`console.error` of the error, with its stack}
   */
  onError?: (error: unknown) => void;
}

/** Options for {@linkcode DurableQueue.prototype.enqueue}. */
export interface EnqueueOptions {
  /**
   * Milliseconds to wait before the task may run: 0 up to 30 days. It runs
   * not before, and as soon after as a consumer has a free slot: once due,
   * it goes ahead of every task that waits without a delay (on
   * {@linkcode DenoKvBackend}, of those Deno KV has handed the process: up
   * to 100).
   *
   * @default {0}
   */
  delay?: number;
  /**
   * How many times to try this task before it becomes a dead letter.
   *
   * @default {the queue's `attempts`}
   */
  attempts?: number;
}

/** Options for {@linkcode DurableQueue.prototype.consume}. */
export interface ConsumeOptions {
  /**
   * How many of the queue's tasks this consumer hands to the manager at once,
   * running or waiting there for a slot. Give it the manager's
   * `concurrency`: a higher number holds tasks in this process that another
   * worker could run (they are not counted as attempts until they start, even
   * if this process dies), a lower one leaves slots idle.
   *
   * @default {1}
   */
  concurrency?: number;
}

/** Options for {@linkcode DurableQueue.prototype.deadLetters}. */
export interface DeadLettersOptions {
  /**
   * The most dead letters to return.
   *
   * @default {100}
   */
  limit?: number;
}

/** Options for {@linkcode DurableQueue.prototype.retryDeadLetter}. */
export interface RetryDeadLetterOptions {
  /**
   * How many times to try the fresh task before it becomes a dead letter
   * again.
   *
   * @default {the queue's `attempts`}
   */
  attempts?: number;
}

/** Options for {@linkcode DurableQueue.prototype.close}. */
export interface CloseOptions {
  /**
   * How long to wait for tasks this queue's consumers started, before closing
   * the backend under them (their outcome is then not recorded, and they are
   * delivered again): milliseconds, `0`, or `Infinity`.
   *
   * @default {3000}
   */
  timeout?: number;
}

/** A delay or a backoff: 0 up to 30 days. */
const DELAY = milliseconds(MAX_DELAY);

const RELEASED: DurableOutcome = Object.freeze({ status: "released" });

function reportToConsole(error: unknown): void {
  console.error("@background/tasks/durable:", error);
}

/**
 * How many queues not yet closed use each backend: two queues of one process
 * may share a backend, as two processes share a server, and closing one must
 * not close it under the other.
 */
const openQueues = new WeakMap<DurableBackend, number>();

/**
 * A queue of named, JSON-payload tasks kept in a backend, so that they
 * survive a restart and can be run by any number of worker processes, each
 * through its own {@linkcode TaskManager}.
 *
 * Producers {@linkcode DurableQueue.prototype.enqueue | enqueue} (the task is
 * stored when the promise resolves); workers
 * {@linkcode DurableQueue.prototype.consume | consume} into a manager, where
 * each delivery runs as an ordinary task named after its handler: it counts
 * against the manager's concurrency, shows in `activeTasks`, dispatches
 * `start`, `settle` and `cancel`, reaches `onError` when it fails, and is
 * drained by `shutdown`.
 *
 * The invariant: a stored task ends in exactly one of two ways, a fulfilled
 * attempt or a dead letter, and until then it is delivered again whenever an
 * attempt fails (after a backoff), is cancelled, or dies with its process.
 * So delivery is at least once: a handler may see the same task twice, and
 * should be safe to repeat (check before you charge a card twice).
 *
 * Compared with `tasks.run(name, fn)`, the call site changes from a closure
 * to a name and a payload; the handler, the manager and its shutdown stay as
 * they are. Compared with using BullMQ or Deno KV queues directly, the
 * handler code and its tests do not depend on the engine: switching engines
 * changes only the line that opens the backend.
 *
 * @example Retries, then a dead letter
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
 * import assert from "node:assert/strict";
 *
 * const queue = new DurableQueue(new MemoryBackend(), { attempts: 2, backoff: 0 });
 * queue.define("charge", () => {
 *   throw new Error("card declined");
 * });
 * const tasks = new TaskManager({ onError: () => {} });
 * let failures = 0;
 * const dead = new Promise<void>((resolve) =>
 *   tasks.addEventListener("settle", () => {
 *     if (++failures === 2) resolve();
 *   }));
 * queue.consume(tasks);
 * const id = await queue.enqueue("charge", { order: "A-1" });
 * await dead;
 * await tasks.shutdown();
 * const [letter] = await queue.deadLetters();
 * assert.equal(letter.id, id);
 * assert.equal(letter.attempts, 2);
 * assert.equal(letter.error, "card declined");
 * await queue.close();
 * ```
 */
export class DurableQueue implements AsyncDisposable {
  readonly #backend: DurableBackend;
  readonly #handlers: Map<string, DurableHandler<never>> = new Map();
  readonly #attempts: number;
  readonly #backoff: number;
  readonly #onError: (error: unknown) => void;
  readonly #consumers: Set<Consumer> = new Set();
  #closed = false;
  #closing: Promise<void> | undefined;

  /**
   * Makes a queue over a backend. It delivers nothing until `consume` is
   * called.
   *
   * @param backend Where tasks are stored: a {@linkcode MemoryBackend},
   * {@linkcode DenoKvBackend}, {@linkcode SqliteBackend} or
   * {@linkcode RedisBackend}.
   * @param options Default `attempts` and `backoff`, and `onError`.
   * @throws {TypeError} A backend that is not one, an option of the wrong type.
   * @throws {RangeError} An `attempts` or `backoff` out of range.
   */
  constructor(backend: DurableBackend, options: DurableQueueOptions = {}) {
    const where = "Cannot create DurableQueue";
    if (
      backend === null || typeof backend !== "object" ||
      typeof backend.enqueue !== "function" ||
      typeof backend.listen !== "function" ||
      typeof backend.deadLetters !== "function" ||
      typeof backend.retryDeadLetter !== "function" ||
      typeof backend.deleteDeadLetter !== "function" ||
      typeof backend.close !== "function"
    ) {
      throw new TypeError(
        `${where}: 'backend' must be a DurableBackend (an object with enqueue, listen, deadLetters, retryDeadLetter, deleteDeadLetter and close), received ${
          show(backend)
        }`,
      );
    }
    checkOptions(where, options);
    COUNT.check(where, "attempts", options.attempts);
    DELAY.check(where, "backoff", options.backoff);
    FUNCTION.check(where, "onError", options.onError);
    this.#backend = backend;
    openQueues.set(backend, (openQueues.get(backend) ?? 0) + 1);
    this.#attempts = options.attempts ?? 3;
    this.#backoff = options.backoff ?? 1000;
    this.#onError = options.onError ?? reportToConsole;
  }

  /**
   * Registers the handler of one kind of task. Define every handler in every
   * process that enqueues or consumes (one shared module does it): `enqueue`
   * refuses names it does not know, and a worker fails a task whose handler
   * it lacks (it is retried, perhaps by a worker that has it).
   *
   * @param name The task's name: what `enqueue` takes and what the manager
   * shows as the task's name.
   * @param handler The work; it receives the payload and `{ signal, id, name, attempt, attempts }`.
   * @throws {TypeError} An empty name, a handler that is not a function, or a
   * name that already has a handler.
   *
   * @example Type the payload
   * ```ts
   * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
   * import assert from "node:assert/strict";
   *
   * const queue = new DurableQueue(new MemoryBackend());
   * queue.define("resize", async (photo: { key: string; width: number }, { attempt }) => {
   *   console.log(`resizing ${photo.key} to ${photo.width} px, attempt ${attempt}`);
   * });
   * assert.throws(() => queue.define("resize", () => {}), /already has a handler/);
   * await queue.close();
   * ```
   */
  define<P = unknown>(name: string, handler: DurableHandler<P>): void {
    const where = "Cannot define durable task";
    NAME.require(where, "name", name);
    FUNCTION.require(`${where} ${JSON.stringify(name)}`, "handler", handler);
    if (this.#handlers.has(name)) {
      throw new TypeError(
        `${where} ${JSON.stringify(name)}: the name already has a handler`,
      );
    }
    this.#handlers.set(name, handler as DurableHandler<never>);
  }

  /**
   * Stores a task for a worker to run. The returned promise resolves with the
   * task's id once the backend has stored it: from then on it survives the
   * death of this process. Bad arguments throw at once, before anything is
   * stored.
   *
   * @param name A name given to `define`.
   * @param payload JSON: `null`, booleans, finite numbers, strings, arrays and
   * plain objects (properties that are `undefined` are left out). It is copied.
   * @param options A `delay` before it may run, its number of `attempts`.
   * @returns A promise of the task's id (a random UUID).
   * @throws {TypeError} An empty name, a payload that is not JSON (a cycle, a
   * bigint, a function, `undefined` at the top, a `Date`...), an option of
   * the wrong type.
   * @throws {RangeError} A name with no handler, a `delay` or `attempts` out of range.
   * @throws {Error} The queue is closed.
   *
   * @example Refused before anything is stored
   * ```ts
   * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
   * import assert from "node:assert/strict";
   *
   * const queue = new DurableQueue(new MemoryBackend());
   * queue.define("invoice", () => {});
   * assert.throws(() => queue.enqueue("invoice", { total: 12n }), TypeError);
   * assert.throws(() => queue.enqueue("invoce", {}), /no handler/);
   * const id = await queue.enqueue("invoice", { total: 12 }, { delay: 60_000 });
   * assert.equal(typeof id, "string");
   * await queue.close();
   * ```
   */
  enqueue(
    name: string,
    payload: unknown,
    options: EnqueueOptions = {},
  ): Promise<string> {
    NAME.require("Cannot enqueue task", "name", name);
    const where = `Cannot enqueue task ${JSON.stringify(name)}`;
    if (!this.#handlers.has(name)) {
      const known = [...this.#handlers.keys()].map((n) => JSON.stringify(n));
      throw new RangeError(
        `${where}: no handler is defined for it; call define(${
          JSON.stringify(name)
        }, handler) first (defined: ${known.join(", ") || "none"})`,
      );
    }
    checkOptions(where, options);
    DELAY.check(where, "delay", options.delay);
    COUNT.check(where, "attempts", options.attempts);
    const copy = jsonCopy(where, payload);
    if (this.#closed) {
      throw new Error(`${where}: the DurableQueue is closed`);
    }
    const message: DurableMessage = {
      id: crypto.randomUUID(),
      name,
      payload: copy,
      attempts: options.attempts ?? this.#attempts,
      backoff: this.#backoff,
      enqueuedAt: Date.now(),
    };
    return this.#backend.enqueue(message, options.delay ?? 0).then(() =>
      message.id
    );
  }

  /**
   * Runs tasks from the backend through `manager` until the queue is closed
   * or the manager shut down. Each delivery becomes a task of the manager
   * named after its handler. Its outcome goes back to the backend when it
   * settles: fulfilled, the task is done; rejected (its error also reaches
   * the manager's `onError` and `settle`), it is retried or becomes a dead
   * letter; cancelled, it is handed back and delivered again, its attempt not
   * counted.
   *
   * Once the manager is shut down, the consumer takes no more tasks; those
   * that reach it are handed back.
   *
   * @param manager The manager the tasks run in.
   * @param options How many tasks to hand to the manager at once.
   * @throws {TypeError} A manager that is not a `TaskManager`, an option of the wrong type.
   * @throws {RangeError} A `concurrency` out of range.
   * @throws {Error} The queue is closed.
   *
   * @example A worker process
   * ```ts ignore
   * import { TaskManager } from "@background/tasks";
   * import { queue } from "./tasks.ts"; // defines the handlers
   *
   * const tasks = new TaskManager({ concurrency: 8 });
   * queue.consume(tasks, { concurrency: 8 });
   * Deno.addSignalListener("SIGTERM", async () => {
   *   await tasks.shutdown(); // what is cancelled is handed back
   *   await queue.close();
   *   Deno.exit(0);
   * });
   * ```
   */
  consume(manager: TaskManager, options: ConsumeOptions = {}): void {
    const where = "Cannot consume";
    schedulerOf(where, manager, "the queue");
    checkOptions(where, options);
    COUNT.check(where, "concurrency", options.concurrency);
    if (this.#closed) throw new Error(`${where}: the DurableQueue is closed`);
    const consumer = new Consumer(
      this.#handlers,
      manager,
      this.#onError,
      () => this.#consumers.delete(consumer),
    );
    this.#consumers.add(consumer);
    consumer.listener = this.#backend.listen(consumer.receive, {
      concurrency: options.concurrency ?? 1,
      onError: this.#onError,
    });
  }

  /**
   * The tasks that ran out of attempts, most recent first. They stay in the
   * backend until {@linkcode DurableQueue.prototype.retryDeadLetter} or
   * {@linkcode DurableQueue.prototype.deleteDeadLetter} removes them.
   *
   * @param options The most to return.
   * @returns A promise of the dead letters.
   * @throws {TypeError} A `limit` that is not a number.
   * @throws {RangeError} A `limit` that is not a positive integer.
   *
   * @example Read what failed
   * ```ts
   * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
   * import assert from "node:assert/strict";
   *
   * const queue = new DurableQueue(new MemoryBackend());
   * assert.deepEqual(await queue.deadLetters({ limit: 10 }), []);
   * await queue.close();
   * ```
   */
  deadLetters(options: DeadLettersOptions = {}): Promise<DeadLetter[]> {
    const where = "Cannot read dead letters";
    checkOptions(where, options);
    COUNT.check(where, "limit", options.limit);
    return this.#backend.deadLetters(options.limit ?? 100);
  }

  /**
   * Runs a dead letter again, as a fresh task: a new id, the dead letter's
   * name and payload, the queue's `attempts` (or `options.attempts`) and
   * `backoff`, delivered at once; the dead letter is removed in the same
   * step where the backend allows (on Redis, just after the new task is
   * stored: a crash in between leaves both). The name need not have a
   * handler in this process.
   *
   * @param id A dead letter's id, as `deadLetters()` lists it.
   * @param options How many attempts the fresh task has.
   * @returns A promise of the fresh task's id, or of `undefined` when there
   * is no dead letter with that id (never was, or it was already retried or
   * deleted): nothing is stored then.
   * @throws {TypeError} An `id` that is not a non-empty string, an option of
   * the wrong type (at once, before anything is read).
   * @throws {RangeError} An `attempts` out of range.
   * @throws {Error} The queue is closed.
   *
   * @example Retry what failed, once the cause is fixed
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
   * import assert from "node:assert/strict";
   *
   * const queue = new DurableQueue(new MemoryBackend(), { attempts: 1 });
   * let mailServerUp = false;
   * const sent: string[] = [];
   * queue.define("send", (to: string) => {
   *   if (!mailServerUp) throw new Error("mail server down");
   *   sent.push(to);
   * });
   * const tasks = new TaskManager({ onError: () => {} });
   * let settled = 0;
   * const twice = new Promise<void>((resolve) =>
   *   tasks.addEventListener("settle", () => {
   *     if (++settled === 2) resolve();
   *   }));
   * queue.consume(tasks);
   * await queue.enqueue("send", "ada@example.com");
   * let letters = await queue.deadLetters();
   * while (letters.length === 0) {
   *   await new Promise((resolve) => setTimeout(resolve, 1));
   *   letters = await queue.deadLetters();
   * }
   * mailServerUp = true;
   * const id = await queue.retryDeadLetter(letters[0].id);
   * assert.equal(typeof id, "string");
   * await twice;
   * assert.deepEqual(sent, ["ada@example.com"]);
   * assert.deepEqual(await queue.deadLetters(), []);
   * assert.equal(await queue.retryDeadLetter(letters[0].id), undefined);
   * await tasks.shutdown();
   * await queue.close();
   * ```
   */
  retryDeadLetter(
    id: string,
    options: RetryDeadLetterOptions = {},
  ): Promise<string | undefined> {
    const where = "Cannot retry dead letter";
    NAME.require(where, "id", id);
    checkOptions(where, options);
    COUNT.check(where, "attempts", options.attempts);
    if (this.#closed) throw new Error(`${where}: the DurableQueue is closed`);
    const fresh: FreshTask = {
      id: crypto.randomUUID(),
      attempts: options.attempts ?? this.#attempts,
      backoff: this.#backoff,
      enqueuedAt: Date.now(),
    };
    return this.#backend.retryDeadLetter(id, fresh).then((found) =>
      found ? fresh.id : undefined
    );
  }

  /**
   * Removes a dead letter for good.
   *
   * @param id A dead letter's id, as `deadLetters()` lists it.
   * @returns A promise of `true` when it was removed, `false` when there is
   * no dead letter with that id (never was, or already retried or deleted).
   * @throws {TypeError} An `id` that is not a non-empty string.
   * @throws {Error} The queue is closed.
   *
   * @example Unknown ids are not an error
   * ```ts
   * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
   * import assert from "node:assert/strict";
   *
   * const queue = new DurableQueue(new MemoryBackend());
   * assert.equal(await queue.deleteDeadLetter("no-such-id"), false);
   * assert.throws(() => queue.deleteDeadLetter(""), TypeError);
   * await queue.close();
   * ```
   */
  deleteDeadLetter(id: string): Promise<boolean> {
    const where = "Cannot delete dead letter";
    NAME.require(where, "id", id);
    if (this.#closed) throw new Error(`${where}: the DurableQueue is closed`);
    return this.#backend.deleteDeadLetter(id);
  }

  /**
   * Closes the queue: `enqueue` and `consume` throw from now on, consumers
   * take no more tasks, the tasks they started get up to `timeout` to settle
   * (so that their outcome is recorded), then the backend is closed, unless
   * another open queue of this process uses it (the last one closes it). A task
   * still running then is not lost: its outcome is not recorded, and it is
   * delivered again. Shut the manager down first to bound that wait. Calling
   * it again returns the same promise. It never rejects: a backend that fails
   * to close reports to `onError`.
   *
   * @param options How long to wait for started tasks.
   * @returns A promise that resolves once the backend is closed.
   * @throws {TypeError} A `timeout` that is not a number.
   * @throws {RangeError} A `timeout` out of range.
   *
   * @example Close after the manager
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
   * import assert from "node:assert/strict";
   *
   * const queue = new DurableQueue(new MemoryBackend());
   * queue.define("noop", () => {});
   * const tasks = new TaskManager();
   * queue.consume(tasks);
   * await tasks.shutdown();
   * await queue.close();
   * assert.throws(() => queue.enqueue("noop", null), /closed/);
   * ```
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const where = "Cannot close DurableQueue";
    checkOptions(where, options);
    BOUND.check(where, "timeout", options.timeout);
    const timeout = options.timeout ?? 3000;
    this.#closed = true;
    const consumers = [...this.#consumers];
    this.#closing = (async () => {
      try {
        await Promise.all(consumers.map((consumer) => consumer.stop()));
        await settledWithin(
          consumers.map((consumer) => consumer.drained()),
          timeout,
        );
        const open = openQueues.get(this.#backend)! - 1;
        openQueues.set(this.#backend, open);
        if (open === 0) await this.#backend.close();
        else {
          // The backend stays open for another queue: hand back the tasks
          // still running here, so that it delivers them again.
          for (const consumer of consumers) consumer.release();
        }
      } catch (error) {
        this.#onError(error);
      } finally {
        for (const consumer of consumers) consumer.detach();
      }
    })();
    return this.#closing;
  }

  /**
   * `await using queue = new DurableQueue(...)`: closes it with the default
   * timeout when the scope ends.
   *
   * @returns A promise that resolves once the queue is closed.
   *
   * @example Scope a queue
   * ```ts
   * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
   *
   * {
   *   await using queue = new DurableQueue(new MemoryBackend());
   *   queue.define("noop", () => {});
   *   await queue.enqueue("noop", {});
   * }
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Resolves when every promise has settled, or after `timeout` ms. */
async function settledWithin(
  promises: Promise<void>[],
  timeout: number,
): Promise<void> {
  const all = Promise.all(promises);
  if (timeout === Infinity) return void await all;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeout);
  });
  try {
    await Promise.race([all, elapsed]);
  } finally {
    clearTimeout(timer);
  }
}

/** A delivery waiting for its task's outcome. */
interface Waiting {
  resolve: (outcome: DurableOutcome) => void;
  /** Its start is recorded: the handler was called. */
  started: boolean;
}

/**
 * One `consume` call: turns deliveries into tasks of one manager, and their
 * `settle` events into outcomes. The `settle` listener (rather than reading a
 * task's `value`) leaves a failure to reach the manager's `onError` too.
 */
class Consumer {
  listener: DurableListener | undefined;
  readonly #handlers: ReadonlyMap<string, DurableHandler<never>>;
  readonly #manager: TaskManager;
  readonly #onError: (error: unknown) => void;
  readonly #forget: () => void;
  /** Manager task id -> the delivery waiting for its outcome. */
  readonly #waiting: Map<string, Waiting> = new Map();
  #stopped: Promise<void> | undefined;
  #drained: PromiseWithResolvers<void> | undefined;
  #attached = true;

  constructor(
    handlers: ReadonlyMap<string, DurableHandler<never>>,
    manager: TaskManager,
    onError: (error: unknown) => void,
    forget: () => void,
  ) {
    this.#handlers = handlers;
    this.#manager = manager;
    this.#onError = onError;
    this.#forget = forget;
    manager.addEventListener("settle", this.#onSettle);
  }

  readonly receive: DurableReceiver = (delivery) => {
    const { message, attempt } = delivery;
    if (this.#stopped !== undefined || this.#manager.closed) {
      void this.stop();
      return Promise.resolve(RELEASED);
    }
    const handler = this.#handlers.get(message.name);
    if (handler === undefined) {
      // An attempt that fails at once, so that a task no process can run
      // ends as a dead letter.
      const error = new Error(
        `No handler is defined for durable task ${
          JSON.stringify(message.name)
        } in this process`,
      );
      return delivery.start().then(
        (): DurableOutcome => ({ status: "rejected", error }),
        () => RELEASED,
      );
    }
    const waiting: Waiting = { resolve: () => {}, started: false };
    let task: TaskHandle;
    try {
      // The attempt counts from here: recorded before the handler runs, and
      // only once the manager starts the task (not while it waits there).
      task = this.#manager.run(
        message.name,
        async ({ signal, progress }) => {
          await delivery.start();
          waiting.started = true;
          signal.throwIfAborted();
          return await handler(
            message.payload as never,
            {
              signal,
              id: message.id,
              name: message.name,
              attempt,
              attempts: message.attempts,
              progress,
            },
          );
        },
        // The queue retries, with its own attempts and backoff: a manager's
        // default `retry` must not retry the same attempt in process too.
        { retry: false },
      );
    } catch {
      // The manager shut down in between.
      void this.stop();
      return Promise.resolve(RELEASED);
    }
    return new Promise((resolve) => {
      waiting.resolve = resolve;
      this.#waiting.set(task.id, waiting);
    });
  };

  readonly #onSettle = (event: TaskEvent): void => {
    const waiting = this.#waiting.get(event.task.id);
    if (waiting === undefined) return;
    this.#waiting.delete(event.task.id);
    const { resolve } = waiting;
    switch (event.task.status) {
      case "fulfilled":
        resolve({ status: "fulfilled" });
        break;
      case "rejected":
        // A task whose start could not be recorded never ran its handler.
        resolve(
          waiting.started
            ? { status: "rejected", error: event.error }
            : RELEASED,
        );
        break;
      default:
        // Cancelled by shutdown: take no more, so the task goes to others.
        if (this.#manager.closed) void this.stop();
        resolve(RELEASED);
    }
    if (this.#waiting.size === 0) {
      this.#drained?.resolve();
      this.#drained = undefined;
      if (this.#stopped !== undefined) this.#retire();
    }
  };

  /** Takes no more deliveries; resolves once the backend stopped fetching. */
  stop(): Promise<void> {
    if (this.#stopped === undefined) {
      // Called at once, so that the listener stops before this returns.
      this.#stopped = (async () => {
        await this.listener?.stop();
      })().catch(this.#onError);
      if (this.#waiting.size === 0) this.#retire();
    }
    return this.#stopped;
  }

  /** Resolves once no task this consumer started is unsettled. */
  drained(): Promise<void> {
    if (this.#waiting.size === 0) return Promise.resolve();
    this.#drained ??= Promise.withResolvers();
    return this.#drained.promise;
  }

  /** Stopped and drained: the queue need not close it. */
  #retire(): void {
    this.detach();
    this.#forget();
  }

  /**
   * Hands back every delivery still waiting for its task: the backend
   * delivers them again (the task may still be running here).
   */
  release(): void {
    for (const waiting of this.#waiting.values()) waiting.resolve(RELEASED);
    this.#waiting.clear();
  }

  /** Removes the `settle` listener: outcomes after this are not reported. */
  detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    this.#manager.removeEventListener("settle", this.#onSettle);
  }
}
