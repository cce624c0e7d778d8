/**
 * Background tasks that outlive the process and spread over several machines,
 * run through the same {@linkcode TaskManager} as every other task.
 *
 * An in-process manager loses its queue when the process dies, and runs
 * everything on one machine. A {@linkcode DurableQueue} stores each task in a
 * backend first (a SQLite file shared by the processes of one machine, on
 * every runtime; Redis through BullMQ, for several machines; Deno KV; or
 * memory for tests), and workers take them from there: delivery is at least
 * once, failures are retried with exponential backoff, and a task that runs
 * out of attempts is kept as a dead letter, never dropped, until you retry
 * or delete it.
 *
 * Functions cannot travel between machines, so each kind of task is a named
 * handler, {@linkcode DurableQueue.prototype.define | define}d in every
 * process (the producers and the workers import the same module), and a task
 * is a handler name and a JSON payload.
 *
 * This module is not imported by the core (`@background/tasks`), which has no
 * dependencies; the Redis backend loads `bullmq` and `ioredis` (peer
 * dependencies, installed by the application) only when it is opened, and the
 * SQLite backend loads the runtime's own SQLite module (`node:sqlite` on Deno
 * and Node, `bun:sqlite` on Bun) only when it is opened.
 *
 * @example Enqueue in one place, run through a TaskManager in another
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import { DurableQueue, MemoryBackend } from "@background/tasks/durable";
 * import assert from "node:assert/strict";
 *
 * // One module, imported by the web process and the workers. In production
 * // the backend is `await SqliteBackend.open(path)` or `await RedisBackend.open(url)`.
 * const queue = new DurableQueue(new MemoryBackend());
 * const outbox: string[] = [];
 * queue.define("send-confirmation", async (order: { id: string }, { signal }) => {
 *   signal.throwIfAborted();
 *   outbox.push(`order ${order.id} confirmed`);
 * });
 *
 * // The web process: stored before the response is sent.
 * await queue.enqueue("send-confirmation", { id: "A-1" });
 *
 * // A worker: the task runs as any other task of its manager.
 * const tasks = new TaskManager({ concurrency: 4 });
 * const settled = new Promise((resolve) => tasks.addEventListener("settle", resolve));
 * queue.consume(tasks, { concurrency: 4 });
 * await settled;
 * assert.deepEqual(outbox, ["order A-1 confirmed"]);
 *
 * await tasks.shutdown();
 * await queue.close();
 * ```
 *
 * @module
 */

export {
  type CloseOptions,
  type ConsumeOptions,
  type DeadLettersOptions,
  type DurableContext,
  type DurableHandler,
  DurableQueue,
  type DurableQueueOptions,
  type EnqueueOptions,
  type RetryDeadLetterOptions,
} from "./durable_queue.ts";
export type {
  DeadLetter,
  DurableBackend,
  DurableDelivery,
  DurableListener,
  DurableMessage,
  DurableOutcome,
  DurableReceiver,
  FreshTask,
  ListenOptions,
} from "./backend.ts";
export { MemoryBackend } from "./memory.ts";
export {
  DenoKvBackend,
  type DenoKvBackendOptions,
  type KvAtomicOperation,
  type KvDatabase,
  type KvEnqueueOptions,
  type KvKey,
} from "./deno_kv.ts";
export { RedisBackend, type RedisBackendOptions } from "./redis.ts";
export { SqliteBackend, type SqliteBackendOptions } from "./sqlite.ts";
