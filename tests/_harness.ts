// Shared test helpers. One suite runs under `deno test`, `bun test` and
// `node --test`: under Deno every test goes through `Deno.test` with the op,
// resource and exit sanitizers on (a `node:test` file that throws at top level
// is reported as passing by `deno test`); elsewhere through `node:test`.
// Every test also fails if any promise rejection went unhandled while it ran.

import { test as nodeTest } from "node:test";

type DenoTest = (definition: {
  name: string;
  fn: () => Promise<void>;
  sanitizeOps: boolean;
  sanitizeResources: boolean;
  sanitizeExit: boolean;
}) => void;

const deno = (globalThis as { Deno?: { test: DenoTest } }).Deno;

const unhandled: unknown[] = [];
if (deno !== undefined) {
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    unhandled.push(event.reason);
  });
} else {
  const process = (globalThis as unknown as {
    process: { on(event: string, listener: (reason: unknown) => void): void };
  }).process;
  process.on("unhandledRejection", (reason) => unhandled.push(reason));
}

/** Lets pending rejections be reported, then fails if any went unhandled. */
async function checkUnhandled(name: string): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (unhandled.length > 0) {
    const reasons = unhandled.splice(0);
    throw new AggregateError(
      reasons,
      `${name}: ${reasons.length} unhandled rejection(s): ${
        reasons.map(String).join("; ")
      }`,
    );
  }
}

/** Registers one test on the runtime's own runner. */
export function test(name: string, fn: () => void | Promise<void>): void {
  const run = async () => {
    await fn();
    await checkUnhandled(name);
  };
  if (deno !== undefined) {
    deno.test({
      name,
      fn: run,
      sanitizeOps: true,
      sanitizeResources: true,
      sanitizeExit: true,
    });
  } else {
    nodeTest(name, run);
  }
}

/** Runs every queued microtask, and those they queue, a bounded number of times. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** A promise with its resolvers, to hold a task until the test lets it go. */
export function gate<T = void>(): PromiseWithResolvers<T> {
  return Promise.withResolvers<T>();
}

/** Resolves with the next event of `type` that `target` dispatches. */
export function nextEvent<E extends Event>(
  target: EventTarget,
  type: string,
): Promise<E> {
  return new Promise((resolve) =>
    target.addEventListener(type, (event) => resolve(event as E), {
      once: true,
    })
  );
}

/**
 * Counts the listeners added to and removed from `signal` from now on, by
 * wrapping its two methods: `count()` is how many are attached.
 */
export function countListeners(signal: AbortSignal): () => number {
  let listeners = 0;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<typeof add>) => {
    listeners++;
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<typeof remove>) => {
    listeners--;
    remove(...args);
  };
  return () => listeners;
}
