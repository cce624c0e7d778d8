// Durable mode: what the operator's page can do with a dead letter besides
// listing it (`DurableQueue.deadLetters()`). Retrying and deleting one are
// being added to DurableQueue; this is the one place that calls them, so
// that wiring the final names is a change here only. Until then the page
// shows the dead letters without the buttons.

import type { DurableQueue } from "@background/tasks/durable";

/** What can be done with a dead letter, by its id. */
export interface DeadLetterActions {
  /** Queues the task again, with fresh attempts; resolves with whether it was there. */
  retry?: (id: string) => Promise<boolean>;
  /** Forgets the dead letter; resolves with whether it was there. */
  remove?: (id: string) => Promise<boolean>;
}

/**
 * The actions `queue` supports. None yet: DurableQueue has no retry or
 * delete of a dead letter in this version. Wire them here, e.g.
 * `{ retry: (id) => queue.retryDeadLetter(id), remove: (id) => queue.deleteDeadLetter(id) }`.
 */
export function deadLetterActions(_queue: DurableQueue): DeadLetterActions {
  return {};
}
