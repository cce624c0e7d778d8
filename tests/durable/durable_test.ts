// DurableQueue's own behaviour, on the MemoryBackend: the argument checks,
// running deliveries through a TaskManager, retries, dead letters, delays,
// handing cancelled tasks back and closing. The engines have their own files:
// durable_kv_test.ts (Deno KV) and durable_redis_test.ts (Redis).

import assert from "node:assert/strict";
import { TaskManager } from "../../mod.ts";
import type { TaskEvent } from "../../mod.ts";
import {
  type DeadLetter,
  type DurableBackend,
  type DurableContext,
  type DurableListener,
  type DurableMessage,
  type DurableOutcome,
  DurableQueue,
  type DurableReceiver,
  type ListenOptions,
  MemoryBackend,
} from "../../src/durable/mod.ts";
import {
  backendScenarios,
  settles,
  turnScenario,
} from "./fixtures/_scenarios.ts";
import { flush, gate, test } from "../_harness.ts";

/** A backend that tells when a delivery reported its outcome. */
class OutcomeSpy extends MemoryBackend {
  readonly outcomes: DurableOutcome[] = [];
  #waiters: (() => void)[] = [];
  override listen(
    receive: DurableReceiver,
    options: ListenOptions,
  ): DurableListener {
    return super.listen(async (delivery) => {
      const outcome = await receive(delivery);
      this.outcomes.push(outcome);
      for (const wake of this.#waiters.splice(0)) wake();
      return outcome;
    }, options);
  }
  /** Resolves once `count` outcomes were reported. */
  async reported(count: number): Promise<void> {
    while (this.outcomes.length < count) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    await flush();
  }
}

/** A backend that records what it is asked to store. */
class SpyBackend extends MemoryBackend {
  readonly stored: DurableMessage[] = [];
  override enqueue(message: DurableMessage, delay: number): Promise<void> {
    this.stored.push(message);
    return super.enqueue(message, delay);
  }
}

const quiet = { onError: () => {} };

/**
 * A view of one MemoryBackend that a queue's `close()` does not close: the
 * scenarios open a "new connection" to read back what another queue left,
 * and a MemoryBackend forgets its tasks when closed. (The kill scenarios of
 * the other engines do not apply: nothing of a MemoryBackend outlives its
 * process.)
 */
function view(shared: MemoryBackend): DurableBackend {
  return {
    enqueue: (message, delay) => shared.enqueue(message, delay),
    listen: (receive, options) => shared.listen(receive, options),
    deadLetters: (limit) => shared.deadLetters(limit),
    retryDeadLetter: (id, fresh) => shared.retryDeadLetter(id, fresh),
    deleteDeadLetter: (id) => shared.deleteDeadLetter(id),
    close: () => Promise.resolve(),
  };
}

backendScenarios("MemoryBackend", (name, body) =>
  test(name, async () => {
    const shared = new MemoryBackend();
    try {
      await body({ open: () => Promise.resolve(view(shared)) });
    } finally {
      await shared.close();
    }
  }));

turnScenario(
  "MemoryBackend",
  (name, body) =>
    test(
      name,
      () => body({ open: () => Promise.resolve(new MemoryBackend()) }),
    ),
);

test("DurableQueue() refuses a backend that is not one", () => {
  assert.throws(
    () => new DurableQueue({} as DurableBackend),
    {
      name: "TypeError",
      message:
        "Cannot create DurableQueue: 'backend' must be a DurableBackend (an object with enqueue, listen, deadLetters, retryDeadLetter, deleteDeadLetter and close), received an object",
    },
  );
});

test("DurableQueue() refuses attempts and backoff out of range", () => {
  const backend = new MemoryBackend();
  assert.throws(() => new DurableQueue(backend, { attempts: 0 }), {
    name: "RangeError",
    message:
      "Cannot create DurableQueue: 'attempts' must be a positive integer, received 0",
  });
  assert.throws(
    () => new DurableQueue(backend, { backoff: "1s" as unknown as number }),
    {
      name: "TypeError",
      message:
        `Cannot create DurableQueue: 'backoff' must be a number of milliseconds, received "1s"`,
    },
  );
});

test("define() refuses a name that already has a handler", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  queue.define("send", () => {});
  assert.throws(() => queue.define("send", () => {}), {
    name: "TypeError",
    message:
      `Cannot define durable task "send": the name already has a handler`,
  });
  assert.throws(() => queue.define("", () => {}), {
    name: "TypeError",
    message:
      `Cannot define durable task: 'name' must be a non-empty string, received ""`,
  });
  assert.throws(() => queue.define("x", "fn" as unknown as () => void), {
    name: "TypeError",
    message:
      `Cannot define durable task "x": 'handler' must be a function, received "fn"`,
  });
  await queue.close();
});

test("enqueue() refuses a name with no handler", async () => {
  const backend = new SpyBackend();
  const queue = new DurableQueue(backend);
  queue.define("send-confirmation", () => {});
  assert.throws(() => queue.enqueue("send-confirmaton", {}), {
    name: "RangeError",
    message:
      `Cannot enqueue task "send-confirmaton": no handler is defined for it; call define("send-confirmaton", handler) first (defined: "send-confirmation")`,
  });
  assert.deepEqual(backend.stored, []);
  await queue.close();
});

test("enqueue() refuses a payload that JSON cannot carry, before storing it", async () => {
  const backend = new SpyBackend();
  const queue = new DurableQueue(backend);
  queue.define("t", () => {});
  const cycle: Record<string, unknown> = { a: { b: 1 } };
  (cycle.a as Record<string, unknown>).back = cycle;
  const cases: [unknown, string][] = [
    [undefined, "payload is undefined"],
    [{ total: 12n }, "payload.total is a bigint (12n)"],
    [{ done: () => {} }, "payload.done is a function"],
    [[1, undefined], "payload[1] is undefined"],
    [
      { at: new Date(0) },
      "payload.at is an instance of Date (pass date.toISOString())",
    ],
    [{ tags: new Map() }, "payload.tags is an instance of Map"],
    [{ n: NaN }, "payload.n is NaN"],
    [{ "a-b": [Infinity] }, `payload["a-b"][0] is Infinity`],
    [Symbol("s"), "payload is a symbol"],
    [
      cycle,
      "payload.a.back refers back to one of the objects that contain it (a cycle)",
    ],
  ];
  for (const [payload, problem] of cases) {
    assert.throws(() => queue.enqueue("t", payload), {
      name: "TypeError",
      message:
        `Cannot enqueue task "t": 'payload' must be JSON (null, booleans, finite numbers, strings, arrays and plain objects), but ${problem}`,
    });
  }
  assert.deepEqual(backend.stored, []);
  await queue.close();
});

test("enqueue() stores a JSON copy of the payload", async () => {
  const backend = new SpyBackend();
  const queue = new DurableQueue(backend);
  queue.define("t", () => {});
  const payload = { order: { id: "A-1", lines: [1, 2] }, note: undefined };
  const id = await queue.enqueue("t", payload);
  payload.order.lines.push(3);
  assert.equal(backend.stored.length, 1);
  assert.equal(backend.stored[0].id, id);
  assert.deepEqual(backend.stored[0].payload, {
    order: { id: "A-1", lines: [1, 2] },
  });
  await queue.close();
});

test("enqueue() refuses options out of range", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  queue.define("t", () => {});
  assert.throws(() => queue.enqueue("t", 1, { delay: -1 }), {
    name: "RangeError",
    message:
      `Cannot enqueue task "t": 'delay' must be 0 or a positive number of milliseconds up to 2592000000, received -1`,
  });
  assert.throws(() => queue.enqueue("t", 1, { attempts: 1.5 }), {
    name: "RangeError",
    message:
      `Cannot enqueue task "t": 'attempts' must be a positive integer, received 1.5`,
  });
  assert.throws(() => queue.enqueue("t", 1, null as unknown as object), {
    name: "TypeError",
    message:
      `Cannot enqueue task "t": 'options' must be an object, received null`,
  });
  await queue.close();
});

test("consume() runs each task as a task of the manager, named after its handler", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  const seen: {
    payload: unknown;
    context: Omit<DurableContext, "signal" | "progress">;
  }[] = [];
  const release = gate();
  queue.define("send-confirmation", async (payload, context) => {
    assert.ok(context.signal instanceof AbortSignal);
    assert.equal(typeof context.progress, "function");
    const { signal: _, progress: __, ...rest } = context;
    seen.push({ payload, context: rest });
    await release.promise;
  });
  const tasks = new TaskManager();
  const started = new Promise<TaskEvent>((resolve) =>
    tasks.addEventListener("start", resolve, { once: true })
  );
  const settled = settles(tasks, 1);
  queue.consume(tasks);
  const id = await queue.enqueue("send-confirmation", { order: "A-1" });
  const start = await started;
  assert.equal(start.task.name, "send-confirmation");
  assert.deepEqual(tasks.activeTasks.map((t) => t.name), ["send-confirmation"]);
  release.resolve();
  const [settle] = await settled;
  assert.equal(settle.task.status, "fulfilled");
  assert.deepEqual(seen, [{
    payload: { order: "A-1" },
    context: { id, name: "send-confirmation", attempt: 1, attempts: 3 },
  }]);
  await tasks.shutdown();
  await queue.close();
});

test("consume() hands the manager at most `concurrency` tasks at once", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  const hold = gate();
  let running = 0;
  let most = 0;
  queue.define("t", async () => {
    most = Math.max(most, ++running);
    await hold.promise;
    running--;
  });
  const tasks = new TaskManager();
  const two = new Promise<void>((resolve) => {
    let starts = 0;
    tasks.addEventListener("start", () => {
      if (++starts === 2) resolve();
    });
  });
  const all = settles(tasks, 5);
  for (let i = 0; i < 5; i++) await queue.enqueue("t", i);
  queue.consume(tasks, { concurrency: 2 });
  await two;
  assert.equal(tasks.activeCount + tasks.pendingCount, 2);
  hold.resolve();
  await all;
  assert.equal(most, 2);
  await tasks.shutdown();
  await queue.close();
});

test("a failing task is retried, then kept as a dead letter", async () => {
  const backend = new OutcomeSpy();
  const queue = new DurableQueue(backend, { backoff: 0 });
  const attempts: number[] = [];
  queue.define("charge", (_payload, { attempt }) => {
    attempts.push(attempt);
    throw new Error(`declined ${attempt}`);
  });
  const errors: string[] = [];
  const tasks = new TaskManager({
    onError: (error, task) =>
      errors.push(`${task.name}: ${(error as Error).message}`),
  });
  const settled = settles(tasks, 3);
  queue.consume(tasks);
  const id = await queue.enqueue("charge", { order: "A-1" });
  const events = await settled;
  assert.deepEqual(events.map((e) => e.task.status), [
    "rejected",
    "rejected",
    "rejected",
  ]);
  assert.deepEqual(attempts, [1, 2, 3]);
  assert.deepEqual(errors, [
    "charge: declined 1",
    "charge: declined 2",
    "charge: declined 3",
  ]);
  await backend.reported(3);
  const letters = await queue.deadLetters();
  assert.equal(letters.length, 1);
  const { failedAt, ...letter } = letters[0];
  assert.ok(failedAt instanceof Date);
  assert.deepEqual(
    letter,
    {
      id,
      name: "charge",
      payload: { order: "A-1" },
      attempts: 3,
      error: "declined 3",
    } satisfies Omit<DeadLetter, "failedAt">,
  );
  await tasks.shutdown();
  await queue.close();
});

test("a task that succeeds on a retry is not a dead letter", async () => {
  const queue = new DurableQueue(new MemoryBackend(), { backoff: 1 });
  queue.define("flaky", (_payload, { attempt }) => {
    if (attempt < 2) throw new Error("try again");
  });
  const tasks = new TaskManager(quiet);
  const settled = settles(tasks, 2);
  queue.consume(tasks);
  await queue.enqueue("flaky", null, { attempts: 5 });
  const events = await settled;
  assert.deepEqual(events.map((e) => e.task.status), ["rejected", "fulfilled"]);
  assert.deepEqual(await queue.deadLetters(), []);
  await tasks.shutdown();
  await queue.close();
});

test("a worker without the handler fails the task, and it is retried", async () => {
  const backend = new OutcomeSpy();
  const producer = new DurableQueue(backend, { attempts: 2, backoff: 0 });
  producer.define("new-kind", () => {});
  const worker = new DurableQueue(backend);
  const tasks = new TaskManager();
  let started = 0;
  tasks.addEventListener("start", () => started++);
  worker.consume(tasks);
  await producer.enqueue("new-kind", {});
  await backend.reported(2);
  assert.deepEqual(backend.outcomes.map((o) => o.status), [
    "rejected",
    "rejected",
  ]);
  assert.equal(started, 0);
  const letters = await worker.deadLetters();
  assert.equal(letters.length, 1);
  assert.equal(
    letters[0].error,
    `No handler is defined for durable task "new-kind" in this process`,
  );
  await tasks.shutdown();
  await worker.close();
  await producer.close();
});

/** Milliseconds from enqueueing a task with a 30 ms delay to its running. */
async function delayedBy30(): Promise<number> {
  const queue = new DurableQueue(new MemoryBackend());
  let ranAt = 0;
  queue.define("later", () => {
    ranAt = Date.now();
  });
  const tasks = new TaskManager();
  const settled = settles(tasks, 1);
  queue.consume(tasks);
  const before = Date.now();
  await queue.enqueue("later", null, { delay: 30 });
  await settled;
  await tasks.shutdown();
  await queue.close();
  return ranAt - before;
}

test("enqueue() with a delay runs the task not before it", async () => {
  const ms = await delayedBy30();
  assert.ok(ms >= 30, `ran after ${ms} ms`);
});

test("enqueue() with a delay runs the task not before it, even when a timer fires early", async () => {
  // Timers that fire 10 ms before they were asked to, by Date.now(): the
  // delay is kept by the clock, not by the timer.
  const real = globalThis.setTimeout;
  globalThis.setTimeout =
    ((fn: () => void, ms = 0) =>
      real(fn, Math.max(0, ms - 10))) as typeof setTimeout;
  let ms: number;
  try {
    ms = await delayedBy30();
  } finally {
    globalThis.setTimeout = real;
  }
  assert.ok(ms >= 30, `ran after ${ms} ms`);
});

test("a task cancelled by shutdown is handed back without using an attempt", async () => {
  const backend = new MemoryBackend();
  const first = new DurableQueue(backend);
  const second = new DurableQueue(backend);
  const runs: string[] = [];
  const handler =
    (who: string) => (_: unknown, { attempt, signal }: DurableContext) => {
      runs.push(`${who} attempt ${attempt}`);
      if (who === "first") {
        return new Promise<void>((_, reject) =>
          signal.addEventListener("abort", () => reject(signal.reason))
        );
      }
    };
  first.define("report", handler("first"));
  second.define("report", handler("second"));
  const a = new TaskManager();
  const started = new Promise((resolve) =>
    a.addEventListener("start", resolve, { once: true })
  );
  first.consume(a);
  await first.enqueue("report", {});
  await started;
  const report = await a.shutdown({ timeout: 0 });
  assert.deepEqual(report, { completed: 0, cancelled: 1, abandoned: [] });
  const b = new TaskManager();
  const done = settles(b, 1);
  second.consume(b);
  const [event] = await done;
  assert.equal(event.task.status, "fulfilled");
  assert.deepEqual(runs, ["first attempt 1", "second attempt 1"]);
  await first.close();
  await b.shutdown();
  await second.close();
});

test("close() waits for started tasks, then refuses enqueue and consume", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  const hold = gate();
  let finished = false;
  queue.define("t", async () => {
    await hold.promise;
    finished = true;
  });
  const tasks = new TaskManager();
  const started = new Promise((resolve) =>
    tasks.addEventListener("start", resolve, { once: true })
  );
  queue.consume(tasks);
  await queue.enqueue("t", 1);
  await started;
  const closed = queue.close({ timeout: Infinity });
  assert.equal(queue.close(), closed);
  assert.throws(() => queue.enqueue("t", 2), {
    name: "Error",
    message: `Cannot enqueue task "t": the DurableQueue is closed`,
  });
  assert.throws(() => queue.consume(tasks), {
    name: "Error",
    message: "Cannot consume: the DurableQueue is closed",
  });
  hold.resolve();
  await closed;
  assert.equal(finished, true);
  await tasks.shutdown();
});

test("consume() refuses a manager that is not one", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  assert.throws(() => queue.consume({} as TaskManager), {
    name: "TypeError",
    message:
      "Cannot consume: 'manager' must be a TaskManager, received an object",
  });
  assert.throws(() => queue.consume(new TaskManager(), { concurrency: 0 }), {
    name: "RangeError",
    message:
      "Cannot consume: 'concurrency' must be a positive integer, received 0",
  });
  await queue.close();
});

test("deadLetters() refuses a limit out of range", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  assert.throws(() => queue.deadLetters({ limit: 0 }), {
    name: "RangeError",
    message:
      "Cannot read dead letters: 'limit' must be a positive integer, received 0",
  });
  await queue.close();
});

test("cancel() of a running task hands it back, and it runs again as the same attempt", async () => {
  const queue = new DurableQueue(new MemoryBackend(), { backoff: 0 });
  const attempts: number[] = [];
  queue.define("sync", (_payload, { attempt, signal }) => {
    attempts.push(attempt);
    if (attempts.length > 1) return;
    return new Promise<void>((_, reject) =>
      signal.addEventListener("abort", () => reject(signal.reason))
    );
  });
  const tasks = new TaskManager();
  const started = new Promise<TaskEvent>((resolve) =>
    tasks.addEventListener("start", resolve, { once: true })
  );
  const settled = settles(tasks, 2);
  queue.consume(tasks);
  await queue.enqueue("sync", {});
  assert.equal(tasks.cancel((await started).task.id), true);
  const events = await settled;
  assert.deepEqual(events.map((e) => e.task.status), [
    "cancelled",
    "fulfilled",
  ]);
  assert.deepEqual(attempts, [1, 1]);
  await tasks.shutdown();
  await queue.close();
});

test("close() stops waiting for a task that does not finish after its timeout", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  queue.define("stuck", () => new Promise<void>(() => {}));
  const tasks = new TaskManager();
  const started = new Promise((resolve) =>
    tasks.addEventListener("start", resolve, { once: true })
  );
  queue.consume(tasks);
  await queue.enqueue("stuck", null);
  await started;
  await queue.close({ timeout: 0 });
  assert.equal(tasks.activeCount, 1);
  const report = await tasks.shutdown({ timeout: 0, grace: 0 });
  assert.equal(report.abandoned.length, 1);
});

test("MemoryBackend: a delay or backoff past what one timer can wait is not cut short", async () => {
  // A timer waits at most 2^31 - 1 ms (about 24.8 days); the queue allows 30.
  const DAY = 24 * 60 * 60 * 1000;
  const longest: number[] = [];
  const original = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    longest.push(ms ?? 0);
    return original(fn, ms);
  }) as typeof setTimeout;
  try {
    const queue = new DurableQueue(new MemoryBackend(), {
      backoff: 25 * DAY,
    });
    const attempts: number[] = [];
    queue.define("remind", (_payload, { attempt }) => {
      attempts.push(attempt);
      throw new Error("not yet");
    });
    const tasks = new TaskManager(quiet);
    queue.consume(tasks);
    await queue.enqueue("remind", 1, { delay: 25 * DAY });
    await queue.enqueue("remind", 2);
    await new Promise((resolve) => original(resolve, 50));
    // The delayed task has not run; the other ran once and waits its backoff.
    assert.deepEqual(attempts, [1]);
    assert.ok(
      longest.every((ms) => ms <= 2 ** 31 - 1),
      `timers of ${longest.filter((ms) => ms > 2 ** 31 - 1)} ms`,
    );
    await tasks.shutdown();
    await queue.close();
  } finally {
    globalThis.setTimeout = original;
  }
});

test("MemoryBackend: each attempt and each dead letter read gets its own copy of the payload", async () => {
  const queue = new DurableQueue(new MemoryBackend(), {
    attempts: 3,
    backoff: 0,
  });
  const seen: string[] = [];
  queue.define("consume", (payload: { items: string[] }) => {
    seen.push(payload.items.join(","));
    payload.items.shift();
    throw new Error("again");
  });
  const tasks = new TaskManager(quiet);
  const settled = settles(tasks, 3);
  queue.consume(tasks);
  await queue.enqueue("consume", { items: ["a", "b", "c"] });
  await settled;
  await flush();
  assert.deepEqual(seen, ["a,b,c", "a,b,c", "a,b,c"]);
  const [letter] = await queue.deadLetters();
  assert.deepEqual(letter.payload, { items: ["a", "b", "c"] });
  (letter.payload as { items: string[] }).items.push("changed");
  const [again] = await queue.deadLetters();
  assert.deepEqual(again.payload, { items: ["a", "b", "c"] });
  await tasks.shutdown();
  await queue.close();
});

test("close() of one queue leaves a backend another open queue uses; the last closes it", async () => {
  const backend = new MemoryBackend();
  const producer = new DurableQueue(backend);
  const worker = new DurableQueue(backend);
  const ran: number[] = [];
  for (const queue of [producer, worker]) {
    queue.define("job", (n: number) => {
      ran.push(n);
    });
  }
  const tasks = new TaskManager();
  const settled = settles(tasks, 2);
  worker.consume(tasks);
  await producer.enqueue("job", 1, { delay: 20 });
  await producer.close();
  await worker.enqueue("job", 2);
  await settled;
  assert.deepEqual(ran.sort(), [1, 2]);
  await tasks.shutdown();
  await worker.close();
  await assert.rejects(
    backend.enqueue({} as DurableMessage, 0),
    /The MemoryBackend is closed/,
  );
});

test("close() of a queue that shares its backend hands a task still running back to the others", async () => {
  const backend = new MemoryBackend();
  const first = new DurableQueue(backend);
  const second = new DurableQueue(backend);
  const hold = gate();
  const seen: string[] = [];
  first.define("job", async (_n: number, { attempt }) => {
    seen.push(`first, attempt ${attempt}`);
    await hold.promise;
  });
  second.define("job", (_n: number, { attempt }) => {
    seen.push(`second, attempt ${attempt}`);
  });
  const firstTasks = new TaskManager();
  const started = new Promise((resolve) =>
    firstTasks.addEventListener("start", resolve, { once: true })
  );
  first.consume(firstTasks);
  await first.enqueue("job", 1);
  await started;
  const secondTasks = new TaskManager();
  const done = settles(secondTasks, 1);
  second.consume(secondTasks);
  await first.close({ timeout: 0 });
  await done;
  assert.deepEqual(seen, ["first, attempt 1", "second, attempt 1"]);
  hold.resolve();
  await firstTasks.shutdown();
  await secondTasks.shutdown();
  await second.close();
});

test("retryDeadLetter() and deleteDeadLetter() refuse a bad id or options at once, and a closed queue", async () => {
  const queue = new DurableQueue(new MemoryBackend());
  assert.throws(() => queue.retryDeadLetter(""), {
    name: "TypeError",
    message:
      `Cannot retry dead letter: 'id' must be a non-empty string, received ""`,
  });
  assert.throws(() => queue.retryDeadLetter("x", { attempts: 0 }), {
    name: "RangeError",
    message:
      "Cannot retry dead letter: 'attempts' must be a positive integer, received 0",
  });
  assert.throws(() => queue.deleteDeadLetter(7 as unknown as string), {
    name: "TypeError",
    message:
      "Cannot delete dead letter: 'id' must be a non-empty string, received 7",
  });
  await queue.close();
  assert.throws(() => queue.retryDeadLetter("x"), {
    name: "Error",
    message: "Cannot retry dead letter: the DurableQueue is closed",
  });
  assert.throws(() => queue.deleteDeadLetter("x"), {
    name: "Error",
    message: "Cannot delete dead letter: the DurableQueue is closed",
  });
});

test("retryDeadLetter() gives the fresh task the queue's attempts, or those it is told", async () => {
  const backend = new MemoryBackend();
  const queue = new DurableQueue(backend, { attempts: 1, backoff: 0 });
  const seen: { attempts: number; payload: unknown }[] = [];
  queue.define("job", (payload, { attempts }) => {
    seen.push({ attempts, payload });
    throw new Error("no");
  });
  const tasks = new TaskManager(quiet);
  const first = settles(tasks, 1);
  queue.consume(tasks);
  const id = await queue.enqueue("job", { n: 1 });
  await first;
  let [letter] = await queue.deadLetters();
  for (let i = 0; letter === undefined && i < 100; i++) {
    await flush();
    [letter] = await queue.deadLetters();
  }
  assert.equal(letter.id, id);
  const again = settles(tasks, 2);
  const fresh = await queue.retryDeadLetter(id, { attempts: 2 });
  await again;
  assert.deepEqual(seen, [
    { attempts: 1, payload: { n: 1 } },
    { attempts: 2, payload: { n: 1 } },
    { attempts: 2, payload: { n: 1 } },
  ]);
  await flush();
  const letters = await queue.deadLetters();
  assert.deepEqual(letters.map((l) => [l.id, l.attempts]), [[fresh, 2]]);
  await tasks.shutdown();
  await queue.close();
});

test("consume() into a manager with a default retry: the queue retries, the manager does not retry the same attempt", async () => {
  const backend = new OutcomeSpy();
  const queue = new DurableQueue(backend, { attempts: 2, backoff: 0 });
  const attempts: number[] = [];
  queue.define("charge", (_payload, { attempt }) => {
    attempts.push(attempt);
    throw new Error("declined");
  });
  const tasks = new TaskManager({
    ...quiet,
    retry: { attempts: 3, backoff: 0 },
  });
  queue.consume(tasks);
  await queue.enqueue("charge", {});
  await backend.reported(2);
  await tasks.shutdown();
  assert.deepEqual(attempts, [1, 2], "one run per attempt the queue made");
  assert.equal((await queue.deadLetters()).length, 1);
  await queue.close();
});

test("a durable handler's progress() shows in its manager's activeTasks", async () => {
  const backend = new OutcomeSpy();
  const queue = new DurableQueue(backend);
  const release = gate();
  const reported = gate();
  queue.define("import", async (_payload, { progress }) => {
    progress({ done: 1, of: 4 });
    reported.resolve();
    await release.promise;
  });
  const tasks = new TaskManager(quiet);
  queue.consume(tasks);
  await queue.enqueue("import", {});
  await reported.promise;
  assert.deepEqual(
    tasks.activeTasks.map((task) => [task.name, task.progress]),
    [["import", { done: 1, of: 4 }]],
  );
  release.resolve();
  await backend.reported(1);
  await tasks.shutdown();
  await queue.close();
});
