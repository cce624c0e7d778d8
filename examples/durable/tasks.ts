// The one module that the web process and the workers share: it opens the
// backend and defines the handlers. Every process that enqueues or consumes
// imports it, because handlers are code and cannot travel with the task.
//
// The backend is the one line that changes between a single machine and
// many: Deno KV (a local file, no server) by default on Deno, Redis when
// REDIS_URL is set (any runtime).

import { mkdir } from "node:fs/promises";
import process from "node:process";
import {
  DenoKvBackend,
  type DurableBackend,
  DurableQueue,
  RedisBackend,
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
  if ((globalThis as { Deno?: unknown }).Deno === undefined) {
    throw new Error(
      "Set REDIS_URL (redis://127.0.0.1:6379): Deno KV exists only on Deno",
    );
  }
  await mkdir("./data", { recursive: true });
  return DenoKvBackend.open("./data/durable-example.sqlite");
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
