// Lists the tasks that ran out of attempts, most recent first; retries one
// (as a fresh task with its payload) or deletes one.
//
//   deno run -A examples/durable/dead_letters.ts [--retry ID | --delete ID]
//   bun examples/durable/dead_letters.ts          (node works the same way)
//   REDIS_URL=redis://127.0.0.1:6379 bun examples/durable/dead_letters.ts

import process from "node:process";
import { openQueue } from "./tasks.ts";

const [action, id] = process.argv.slice(2);
const queue = await openQueue();
if (action === "--retry") {
  const fresh = await queue.retryDeadLetter(id);
  console.log(
    fresh === undefined
      ? `no dead letter ${id}`
      : `dead letter ${id} retried as task ${fresh}`,
  );
} else if (action === "--delete") {
  const deleted = await queue.deleteDeadLetter(id);
  console.log(deleted ? `dead letter ${id} deleted` : `no dead letter ${id}`);
} else {
  for (const letter of await queue.deadLetters({ limit: 20 })) {
    console.log(
      `${letter.failedAt.toISOString()} ${letter.name} ${letter.id}: ` +
        `${letter.error} (after ${letter.attempts} attempts) ` +
        JSON.stringify(letter.payload),
    );
  }
}
await queue.close();
