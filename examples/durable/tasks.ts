// The one module that the web process and the workers share: it opens the
// backend and defines the handlers. Every process that enqueues or consumes
// imports it, because handlers are code and cannot travel with the task.
//
// The backend is the one line that changes between a single machine and
// many: a SQLite file (no server, any runtime) by default, Redis when
// REDIS_URL is set (any runtime, several machines), Deno KV with DURABLE=kv
// (Deno only).

import { mkdir } from "node:fs/promises";
import process from "node:process";
import {
  DenoKvBackend,
  type DurableBackend,
  DurableQueue,
  RedisBackend,
  SqliteBackend,
} from "@background/tasks/durable";

/** An order, as the web process enqueues it. */
export interface Order {
  id: string;
  email: string;
}

/** Opens the backend this process should use. */
async function openBackend(): Promise<DurableBackend> {
  const url = process.env.REDIS_URL;
  if (url) return RedisBackend.open(url, { queue: "durable-example" });
  await mkdir("./data", { recursive: true });
  if (process.env.DURABLE === "kv") {
    return DenoKvBackend.open("./data/durable-example.kv.sqlite");
  }
  return SqliteBackend.open("./data/durable-example.sqlite");
}

/** The queue, with every handler defined. */
export async function openQueue(): Promise<DurableQueue> {
  const queue = new DurableQueue(await openBackend(), {
    attempts: 3,
    backoff: 1000,
  });
  queue.define(
    "send-confirmation",
    async (order: Order, { signal, attempt }) => {
      // Stands in for an email API: fails once in a while, honours signal.
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, 200);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        }, { once: true });
      });
      if (order.email.endsWith("@invalid")) {
        throw new Error(`mailbox ${order.email} does not exist`);
      }
      console.log(
        `[${process.pid}] confirmation for order ${order.id} sent to ${order.email} (attempt ${attempt})`,
      );
    },
  );
  return queue;
}
