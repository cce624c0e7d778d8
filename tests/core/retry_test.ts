// Retries: one task, one id and handle across attempts; each attempt's signal
// and timeout its own; the final failure delivered once; waits between
// attempts that cancellation and shutdown end at once.

import assert from "node:assert/strict";
import { type TaskEvent, TaskManager } from "../../mod.ts";
import { retryDelay } from "../../src/durable/backend.ts";
import { FakeClock } from "../_clock.ts";
import { flush, gate, test } from "../_harness.ts";

/** A manager that keeps its failures, and its events, in order. */
function recorded(options: ConstructorParameters<typeof TaskManager>[0] = {}) {
  const errors: unknown[] = [];
  const tasks = new TaskManager({
    ...options,
    onError: (error) => errors.push(error),
  });
  const events: string[] = [];
  for (const type of ["start", "retry", "cancel", "settle"] as const) {
    tasks.addEventListener(type, (event: TaskEvent) => {
      events.push(
        `${type} ${event.task.name}#${event.task.attempt}${
          type === "retry" ? ` in ${event.delay} ms` : ""
        }${type === "settle" ? ` ${event.task.status}` : ""}`,
      );
    });
  }
  return { tasks, errors, events };
}

test("run() with retry: a task that fails twice then succeeds settles once, fulfilled", async () => {
  const clock = new FakeClock().install();
  try {
    const { tasks, errors, events } = recorded();
    const attempts: number[] = [];
    const task = tasks.runWithResult("send-email", ({ attempt }) => {
      attempts.push(attempt);
      if (attempt < 3) throw new Error(`SMTP down (${attempt})`);
      return "sent";
    }, { retry: { attempts: 3, backoff: 100 } });
    const id = task.id;
    const value = task.value;
    await clock.advance(0);
    assert.deepEqual(attempts, [1]);
    assert.equal(task.status, "pending", "waiting for its next attempt");
    assert.equal(task.attempt, 1);
    assert.equal(tasks.pendingCount, 1);
    assert.equal(tasks.activeCount, 0);
    await clock.advance(99);
    assert.deepEqual(attempts, [1]);
    await clock.advance(1);
    assert.deepEqual(attempts, [1, 2]);
    await clock.advance(200);
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.equal(await value, "sent");
    assert.equal(task.id, id);
    assert.equal(task.attempt, 3);
    assert.deepEqual(errors, []);
    assert.deepEqual(events, [
      "start send-email#1",
      "retry send-email#1 in 100 ms",
      "start send-email#2",
      "retry send-email#2 in 200 ms",
      "start send-email#3",
      "settle send-email#3 fulfilled",
    ]);
    assert.equal(clock.pending, 0, "no timer left");
  } finally {
    clock.uninstall();
  }
});

test("run() with retry: the final failure goes to onError once, and the earlier ones nowhere", async () => {
  const clock = new FakeClock().install();
  try {
    const { tasks, errors, events } = recorded();
    tasks.run("charge", ({ attempt }) => {
      throw new Error(`declined ${attempt}`);
    }, { retry: { attempts: 2, backoff: 10 } });
    await clock.advance(10);
    assert.deepEqual(errors.map((e) => (e as Error).message), ["declined 2"]);
    assert.deepEqual(events, [
      "start charge#1",
      "retry charge#1 in 10 ms",
      "start charge#2",
      "settle charge#2 rejected",
    ]);
  } finally {
    clock.uninstall();
  }
});

test("run() with retry: each attempt gets its own timeout and a fresh signal", async () => {
  const clock = new FakeClock().install();
  try {
    const { tasks, events } = recorded();
    const signals: AbortSignal[] = [];
    const task = tasks.runWithResult("fetch", ({ signal, attempt }) => {
      signals.push(signal);
      if (attempt === 2) return "ok";
      return new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason))
      );
    }, { timeout: 50, retry: { attempts: 2, backoff: 0 } });
    const value = task.value;
    await clock.advance(50);
    assert.equal(await value, "ok");
    assert.equal(signals.length, 2);
    assert.equal(signals[0].aborted, true);
    assert.equal((signals[0].reason as DOMException).name, "TimeoutError");
    assert.equal(signals[1].aborted, false, "the second attempt's own signal");
    assert.deepEqual(events, [
      "start fetch#1",
      "cancel fetch#1",
      "retry fetch#1 in 0 ms",
      "start fetch#2",
      "settle fetch#2 fulfilled",
    ]);
    assert.equal(clock.pending, 0);
  } finally {
    clock.uninstall();
  }
});

test("cancel() during the wait before a retry ends the task at once as cancelled", async () => {
  const clock = new FakeClock().install();
  try {
    const { tasks, errors, events } = recorded();
    let attempts = 0;
    const task = tasks.runWithResult("flaky", () => {
      attempts++;
      throw new Error("flaky");
    }, { retry: { attempts: 5, backoff: 60_000 } });
    const value = task.value;
    await clock.advance(0);
    assert.equal(clock.pending, 1, "the wait's timer");
    assert.equal(tasks.cancel(task.id), true);
    await assert.rejects(value, { name: "AbortError" });
    assert.equal(task.status, "cancelled");
    assert.equal(clock.pending, 0, "the wait's timer is cleared");
    await clock.advance(120_000);
    assert.equal(attempts, 1);
    assert.deepEqual(errors, []);
    assert.deepEqual(events, [
      "start flaky#1",
      "retry flaky#1 in 60000 ms",
      "cancel flaky#1",
      "settle flaky#1 cancelled",
    ]);
  } finally {
    clock.uninstall();
  }
});

test("shutdown() cancels the waits before retries and counts them", async () => {
  const clock = new FakeClock().install();
  try {
    const { tasks } = recorded();
    tasks.run("flaky", () => {
      throw new Error("flaky");
    }, { retry: { attempts: 3, backoff: 60_000 } });
    await clock.advance(0);
    assert.equal(tasks.pendingCount, 1);
    const report = await tasks.shutdown({ timeout: 0 });
    assert.deepEqual(report, { completed: 0, cancelled: 1, abandoned: [] });
    assert.equal(clock.pending, 0);
  } finally {
    clock.uninstall();
  }
});

test("a task waiting for its retry frees its concurrency slot", async () => {
  const clock = new FakeClock().install();
  try {
    const { tasks } = recorded({ concurrency: 1 });
    const order: string[] = [];
    tasks.run("flaky", ({ attempt }) => {
      order.push(`flaky#${attempt}`);
      if (attempt === 1) throw new Error("once");
    }, { retry: { backoff: 100 } });
    tasks.run("other", () => void order.push("other"));
    await clock.advance(100);
    assert.deepEqual(order, ["flaky#1", "other", "flaky#2"]);
  } finally {
    clock.uninstall();
  }
});

test("retryIf decides which failures are retried; one that throws ends the retries", async () => {
  const clock = new FakeClock().install();
  const reported: unknown[] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => void reported.push(args);
  try {
    const { tasks, errors } = recorded();
    const seen: [string, number][] = [];
    tasks.run("validate", () => {
      throw new TypeError("bad input");
    }, {
      retry: {
        retryIf: (error, attempt) => {
          seen.push([(error as Error).name, attempt]);
          return !(error instanceof TypeError);
        },
      },
    });
    tasks.run("throws", () => {
      throw new Error("x");
    }, {
      retry: {
        retryIf: () => {
          throw new Error("retryIf broke");
        },
      },
    });
    await clock.advance(0);
    assert.deepEqual(seen, [["TypeError", 1]]);
    assert.deepEqual(errors.map((e) => (e as Error).message), [
      "bad input",
      "x",
    ]);
    assert.equal(reported.length, 1, "the retryIf failure is reported");
    assert.match(String(reported[0]), /retryIf threw/);
  } finally {
    console.error = consoleError;
    clock.uninstall();
  }
});

test("TaskManager({ retry }) is every task's default; retry: false turns it off", async () => {
  const clock = new FakeClock().install();
  try {
    const { tasks, errors } = recorded({ retry: { attempts: 2, backoff: 0 } });
    let a = 0;
    let b = 0;
    tasks.run("a", () => {
      a++;
      throw new Error("a");
    });
    tasks.run("b", () => {
      b++;
      throw new Error("b");
    }, { retry: false });
    await clock.advance(0);
    assert.equal(a, 2);
    assert.equal(b, 1);
    assert.equal(errors.length, 2);
  } finally {
    clock.uninstall();
  }
});

test("retry with jitter draws each wait from delay × (1 − jitter) to delay", async () => {
  const clock = new FakeClock().install();
  const random = Math.random;
  try {
    const { tasks } = recorded();
    const delays: number[] = [];
    tasks.addEventListener("retry", (event) => delays.push(event.delay!));
    for (const draw of [0, 0.5, 0.75]) {
      Math.random = () => draw;
      tasks.run("jittered", () => {
        throw new Error("x");
      }, { retry: { attempts: 2, backoff: 1000, jitter: 0.5 } });
      await clock.advance(0);
    }
    assert.deepEqual(delays, [1000, 750, 625]);
    await clock.advance(1000);
  } finally {
    Math.random = random;
    clock.uninstall();
  }
});

test("retry maxDelay caps the doubling waits", async () => {
  const clock = new FakeClock().install();
  try {
    const { tasks } = recorded();
    const delays: number[] = [];
    tasks.addEventListener("retry", (event) => delays.push(event.delay!));
    tasks.run("capped", () => {
      throw new Error("x");
    }, { retry: { attempts: 5, backoff: 100, maxDelay: 300 } });
    await clock.advance(10_000);
    assert.deepEqual(delays, [100, 200, 300, 300]);
  } finally {
    clock.uninstall();
  }
});

test("group().add with retry: awaitAll gets the final outcome; the group's slot frees during the wait", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager();
    const group = tasks.group({ concurrency: 1 });
    const order: string[] = [];
    group.add("flaky", ({ attempt }) => {
      order.push(`flaky#${attempt}`);
      if (attempt === 1) throw new Error("once");
      return "ok";
    }, { retry: { backoff: 100 } });
    const release = gate();
    group.add("other", async () => {
      order.push("other");
      await release.promise;
      return "done";
    });
    const results = group.awaitAll();
    await clock.advance(0);
    assert.deepEqual(order, ["flaky#1", "other"]);
    release.resolve();
    await clock.advance(100);
    assert.deepEqual(order, ["flaky#1", "other", "flaky#2"]);
    assert.deepEqual(
      (await results).map((r) => r.status === "fulfilled" && r.value),
      ["ok", "done"],
    );
  } finally {
    clock.uninstall();
  }
});

test("run() rejects bad retry options with a message that names the field", () => {
  const tasks = new TaskManager();
  const cases: [unknown, string, string][] = [
    [
      { attempts: 0 },
      "RangeError",
      `Cannot run task "t": 'retry.attempts' must be a positive integer, received 0`,
    ],
    [
      { backoff: -1 },
      "RangeError",
      `Cannot run task "t": 'retry.backoff' must be 0 or a positive number of milliseconds up to 2147483647, received -1`,
    ],
    [
      { jitter: 2 },
      "RangeError",
      `Cannot run task "t": 'retry.jitter' must be a number from 0 to 1, received 2`,
    ],
    [
      { retryIf: "yes" },
      "TypeError",
      `Cannot run task "t": 'retry.retryIf' must be a function, received "yes"`,
    ],
    [
      3,
      "TypeError",
      `Cannot run task "t": 'retry' must be an object or false, received 3`,
    ],
  ];
  for (const [retry, name, message] of cases) {
    assert.throws(() => tasks.run("t", () => {}, { retry: retry as never }), {
      name,
      message,
    });
  }
  assert.throws(() => new TaskManager({ retry: { maxDelay: "1s" as never } }), {
    name: "TypeError",
    message:
      `Cannot create TaskManager: 'retry.maxDelay' must be a number of milliseconds, received "1s"`,
  });
  assert.equal(tasks.pendingCount, 0, "nothing was accepted");
});

test("a retried task's snapshot carries its attempt; activeTasks shows it running again", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager();
    const release = gate();
    tasks.run("t", async ({ attempt }) => {
      if (attempt === 1) throw new Error("once");
      await release.promise;
    }, { retry: { backoff: 5 } });
    await clock.advance(5);
    assert.deepEqual(
      tasks.activeTasks.map((t) => [t.name, t.status, t.attempt]),
      [["t", "running", 2]],
    );
    release.resolve();
    await flush();
    await tasks.idle();
  } finally {
    clock.uninstall();
  }
});

test("retry waits by the same rule as the durable queues' backends", async () => {
  const clock = new FakeClock().install();
  try {
    const tasks = new TaskManager({ onError: () => {} });
    const delays: number[] = [];
    tasks.addEventListener("retry", (event) => delays.push(event.delay!));
    tasks.run("flaky", () => {
      throw new Error("x");
    }, { retry: { attempts: 5, backoff: 750 } });
    await clock.advance(60_000);
    assert.deepEqual(
      delays,
      [1, 2, 3, 4].map((attempt) => retryDelay(750, attempt)),
    );
    assert.deepEqual(delays, [750, 1500, 3000, 6000]);
  } finally {
    clock.uninstall();
  }
});
