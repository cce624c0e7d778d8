// Durable mode: what the operator's page can do with a dead letter besides
// listing it (`DurableQueue.deadLetters()`): retry it as a fresh task with
// its payload, or delete it. The one place that calls the queue for them.

import type { DurableQueue } from "@background/tasks/durable";

/** What can be done with a dead letter, by its id. */
export interface DeadLetterActions {
  /** Queues the task again, with fresh attempts; resolves with whether it was there. */
  retry?: (id: string) => Promise<boolean>;
  /** Forgets the dead letter; resolves with whether it was there. */
  remove?: (id: string) => Promise<boolean>;
}

/**
 * The actions on `queue`'s dead letters: a retry stores a fresh task (with a
 * new id and the queue's attempts) and removes the letter; a delete removes
 * it. Each resolves `false` for an id the backend no longer has.
 */
export function deadLetterActions(queue: DurableQueue): DeadLetterActions {
  return {
    retry: async (id) => (await queue.retryDeadLetter(id)) !== undefined,
    remove: (id) => queue.deleteDeadLetter(id),
  };
}
