// The web process's side: store tasks and return at once. Here, a few orders
// (one with an address that always fails, to show retries and a dead letter).
//
//   deno run -A examples/durable/enqueue.ts [count]
//   REDIS_URL=redis://127.0.0.1:6379 bun examples/durable/enqueue.ts [count]

import process from "node:process";
import { openQueue } from "./tasks.ts";

const count = Number(process.argv[2] ?? 5);
const queue = await openQueue();
for (let i = 1; i <= count; i++) {
  const email = i === count ? "nobody@invalid" : `customer${i}@example.com`;
  const id = await queue.enqueue("send-confirmation", { id: `A-${i}`, email });
  console.log(`enqueued order A-${i}: task ${id}`);
}
await queue.close();
