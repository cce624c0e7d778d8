// The wait before a task's next attempt: one rule for in-process retries
// (RetryOptions) and for every durable backend, so that a task moved from one
// to the other keeps its meaning.

/**
 * The wait after attempt `attempt` failed: `backoff`, then twice that, four
 * times, and so on, up to `maxDelay`.
 */
export function backoffDelay(
  backoff: number,
  attempt: number,
  maxDelay: number,
): number {
  return Math.min(backoff * 2 ** (attempt - 1), maxDelay);
}

/** `delay`, less a random part of up to `jitter` (0 to 1) of it. */
export function jittered(delay: number, jitter: number): number {
  return jitter === 0 ? delay : delay * (1 - jitter * Math.random());
}
