// Lists the tasks that ran out of attempts, most recent first.
//
//   deno run -A --unstable-kv examples/durable/dead_letters.ts
//   REDIS_URL=redis://127.0.0.1:6379 bun examples/durable/dead_letters.ts

import { openQueue } from "./tasks.ts";

const queue = await openQueue();
for (const letter of await queue.deadLetters({ limit: 20 })) {
  console.log(
    `${letter.failedAt.toISOString()} ${letter.name} ${letter.id}: ` +
      `${letter.error} (after ${letter.attempts} attempts) ` +
      JSON.stringify(letter.payload),
  );
}
await queue.close();
