import assert from "node:assert/strict";
import { inspect } from "node:util";
import {
  ManagerClosedError,
  TaskEvent,
  type TaskInfo,
  TaskManager,
} from "../../mod.ts";
import { countListeners, flush, gate, nextEvent, test } from "../_harness.ts";

/** A manager whose failures are collected instead of logged. */
function quietManager(
  options: ConstructorParameters<typeof TaskManager>[0] = {},
): { tasks: TaskManager; errors: [unknown, TaskInfo][] } {
  const errors: [unknown, TaskInfo][] = [];
  const tasks = new TaskManager({
    onError: (error, task) => errors.push([error, task]),
    ...options,
  });
  return { tasks, errors };
}

/** Records every event as "type:name[:status]". */
function recordEvents(tasks: TaskManager): string[] {
  const log: string[] = [];
  for (const type of ["start", "cancel", "settle"] as const) {
    tasks.addEventListener(type, (event: TaskEvent) => {
      log.push(
        type === "settle"
          ? `settle:${event.task.name}:${event.task.status}`
          : `${type}:${event.task.name}`,
      );
    });
  }
  return log;
}

/** A task function that waits until its signal aborts, then returns. */
const untilAborted = ({ signal }: { signal: AbortSignal }) =>
  new Promise<void>((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );

// --- starting ---

test("run() never calls the function inside the call", async () => {
  const { tasks } = quietManager();
  let ran = false;
  tasks.run("sync", () => {
    ran = true;
  });
  assert.equal(ran, false);
  await tasks.idle();
  assert.equal(ran, true);
});

test("run() returns a handle with a unique string id, name and status", async () => {
  const { tasks } = quietManager();
  const a = tasks.run("a", () => {});
  const b = tasks.run("b", () => {});
  assert.equal(typeof a.id, "string");
  assert.notEqual(a.id, b.id);
  assert.equal(a.name, "a");
  assert.equal(a.status, "pending");
  assert.equal(a.startedAt, undefined);
  await tasks.idle();
  assert.equal(a.status, "fulfilled");
  assert.ok(a.toJSON().startedAt instanceof Date);
});

test("run() passes { signal, id, name } to the function", async () => {
  const { tasks } = quietManager();
  let seen: { signal: unknown; id: string; name: string } | undefined;
  const handle = tasks.run("ctx", ({ signal, id, name }) => {
    seen = { signal, id, name };
  });
  await tasks.idle();
  assert.ok(seen!.signal instanceof AbortSignal);
  assert.equal(seen!.id, handle.id);
  assert.equal(seen!.name, "ctx");
});

test("run() turns a synchronous throw into a rejection reported to onError", async () => {
  const { tasks, errors } = quietManager();
  const boom = new Error("boom");
  let handle;
  assert.doesNotThrow(() => {
    handle = tasks.run("throws", () => {
      throw boom;
    });
  });
  await tasks.idle();
  assert.equal(handle!.status, "rejected");
  assert.equal(errors.length, 1);
  assert.equal(errors[0][0], boom);
  assert.equal(errors[0][1].name, "throws");
  assert.equal(errors[0][1].status, "rejected");
});

test("run() reports an async failure to onError exactly once, with no unhandled rejection", async () => {
  const { tasks, errors } = quietManager();
  tasks.run("async-fail", async () => {
    await Promise.resolve();
    throw new Error("late");
  });
  await tasks.idle();
  assert.equal(errors.length, 1);
  assert.equal((errors[0][0] as Error).message, "late");
});

test("run() reports non-Error rejections too", async () => {
  const { tasks, errors } = quietManager();
  tasks.run("string", () => Promise.reject("nope"));
  tasks.run("undefined", () => Promise.reject(undefined));
  await tasks.idle();
  assert.deepEqual(errors.map(([error]) => error), ["nope", undefined]);
});

test("run() accepts thenables that are not promises", async () => {
  const { tasks } = quietManager();
  const thenable = {
    then(resolve: (value: number) => void) {
      resolve(7);
    },
  } as unknown as PromiseLike<number>;
  const task = tasks.runWithResult("thenable", () => thenable);
  assert.equal(await task.value, 7);
});

test("TaskManager() default onError writes one console.error line naming the task", async () => {
  const original = console.error;
  const lines: unknown[][] = [];
  console.error = (...args: unknown[]) => lines.push(args);
  try {
    const tasks = new TaskManager();
    const { id } = tasks.run("send-email", () => {
      throw new Error("SMTP down");
    });
    await tasks.idle();
    assert.equal(lines.length, 1);
    assert.match(String(lines[0][0]), /send-email/);
    assert.match(String(lines[0][0]), new RegExp(`id ${id}`));
    assert.equal((lines[0][1] as Error).message, "SMTP down");
  } finally {
    console.error = original;
  }
});

test("onError that throws does not crash: both errors go to the default reporter", async () => {
  const original = console.error;
  const lines: unknown[][] = [];
  console.error = (...args: unknown[]) => lines.push(args);
  try {
    const tasks = new TaskManager({
      onError: () => {
        throw new Error("reporter broke");
      },
    });
    tasks.run("fails", () => {
      throw new Error("original");
    });
    await tasks.idle();
    assert.equal(lines.length, 1);
    const aggregate = lines[0][1] as AggregateError;
    assert.ok(aggregate instanceof AggregateError);
    assert.deepEqual(
      aggregate.errors.map((e: Error) => e.message),
      ["original", "reporter broke"],
    );
    assert.equal(tasks.activeCount, 0);
  } finally {
    console.error = original;
  }
});

// --- runWithResult ---

test("runWithResult() resolves value with the function's result", async () => {
  const { tasks } = quietManager();
  const task = tasks.runWithResult("answer", () => Promise.resolve(42));
  assert.equal(await task.value, 42);
  assert.equal(task.status, "fulfilled");
});

test("runWithResult() delivers a failure to a value read before settling, not to onError", async () => {
  const { tasks, errors } = quietManager();
  const task = tasks.runWithResult("fails", () => {
    throw new Error("bad");
  });
  await assert.rejects(task.value, /bad/);
  await tasks.idle();
  assert.equal(errors.length, 0);
});

test("runWithResult() sends the failure to onError when value was not read before settling", async () => {
  const { tasks, errors } = quietManager();
  const task = tasks.runWithResult("fails", () => {
    throw new Error("unread");
  });
  await tasks.idle();
  assert.equal(errors.length, 1);
  // Reading later still gives the outcome.
  await assert.rejects(task.value, /unread/);
});

test("runWithResult() value read after settling is the same promise each time", async () => {
  const { tasks } = quietManager();
  const task = tasks.runWithResult("v", () => "x");
  await tasks.idle();
  assert.equal(task.value, task.value);
  assert.equal(await task.value, "x");
});

test("runWithResult() with an unread value leaves no promise behind", async () => {
  const { tasks, errors } = quietManager();
  tasks.runWithResult("fails", () => Promise.reject(new Error("x")));
  await tasks.idle();
  assert.equal(errors.length, 1); // and the harness saw no unhandled rejection
});

// --- concurrency ---

test("TaskManager({ concurrency }) runs at most that many at once, FIFO", async () => {
  const { tasks } = quietManager({ concurrency: 2 });
  const gates = [gate(), gate(), gate(), gate()];
  const started: number[] = [];
  let running = 0;
  let peak = 0;
  gates.forEach((g, i) =>
    tasks.run(`t${i}`, async () => {
      started.push(i);
      peak = Math.max(peak, ++running);
      await g.promise;
      running--;
    })
  );
  await flush();
  assert.deepEqual(started, [0, 1]);
  assert.equal(tasks.activeCount, 2);
  assert.equal(tasks.pendingCount, 2);
  gates[1].resolve();
  await flush();
  assert.deepEqual(started, [0, 1, 2]);
  gates[0].resolve();
  gates[2].resolve();
  gates[3].resolve();
  await tasks.idle();
  assert.deepEqual(started, [0, 1, 2, 3]);
  assert.equal(peak, 2);
});

test("activeTasks lists running tasks in start order as JSON-clean snapshots", async () => {
  const { tasks } = quietManager({ concurrency: 2 });
  const g = gate();
  tasks.run("first", () => g.promise);
  tasks.run("second", () => g.promise);
  tasks.run("third", () => g.promise);
  await flush();
  const active = tasks.activeTasks;
  assert.deepEqual(active.map((t) => t.name), ["first", "second"]);
  assert.equal(active[0].status, "running");
  const json = JSON.parse(JSON.stringify(active[0]));
  assert.deepEqual(Object.keys(json).sort(), [
    "attempt",
    "id",
    "name",
    "startedAt",
    "status",
  ]);
  assert.equal(json.startedAt, active[0].startedAt!.toISOString());
  g.resolve();
  await tasks.idle();
  assert.deepEqual(tasks.activeTasks, []);
});

test("JSON.stringify(handle) gives the task's info", () => {
  const { tasks } = quietManager();
  const handle = tasks.run("json", () => {});
  assert.deepEqual(JSON.parse(JSON.stringify(handle)), {
    id: handle.id,
    name: "json",
    status: "pending",
    attempt: 1,
  });
  tasks.cancel(handle.id);
});

test("console.log(handle) shows the task, not the manager's machinery", () => {
  const { tasks } = quietManager();
  const handle = tasks.run("inspected", () => {});
  assert.equal(
    inspect(handle),
    `Task { id: "${handle.id}", name: "inspected", status: "pending" }`,
  );
  tasks.cancel(handle.id);
});

test("run() from inside a running task is queued behind the limit", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  const order: string[] = [];
  tasks.run("outer", () => {
    tasks.run("inner", () => {
      order.push("inner");
    });
    order.push("outer");
  });
  await tasks.idle();
  assert.deepEqual(order, ["outer", "inner"]);
});

// --- cancel ---

test("cancel() on a pending task removes it without starting it", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  const g = gate();
  tasks.run("busy", () => g.promise);
  await flush();
  let ran = false;
  const queued = tasks.runWithResult("queued", () => {
    ran = true;
  });
  const log = recordEvents(tasks);
  assert.equal(tasks.cancel(queued.id), true);
  assert.equal(queued.status, "cancelled");
  assert.equal(tasks.pendingCount, 0);
  await assert.rejects(queued.value, { name: "AbortError" });
  g.resolve();
  await tasks.idle();
  assert.equal(ran, false);
  assert.deepEqual(log.slice(0, 2), [
    "cancel:queued",
    "settle:queued:cancelled",
  ]);
});

test("cancel() aborts a running task's signal and dispatches cancel at once", async () => {
  const { tasks } = quietManager();
  let signal: AbortSignal | undefined;
  const task = tasks.runWithResult("watch", (ctx) => {
    signal = ctx.signal;
    return untilAborted(ctx);
  });
  await flush();
  const cancelEvent = nextEvent<TaskEvent>(tasks, "cancel");
  assert.equal(tasks.cancel(task.id), true);
  assert.equal(signal!.aborted, true);
  assert.equal(signal!.reason.name, "AbortError");
  assert.equal((await cancelEvent).task.id, task.id);
  await assert.rejects(task.value, { name: "AbortError" });
  assert.equal(task.status, "cancelled");
});

test("cancel() passes a custom reason by identity", async () => {
  const { tasks } = quietManager();
  const reason = new Error("user left");
  let seen: unknown;
  const task = tasks.runWithResult("r", async (ctx) => {
    await untilAborted(ctx);
    seen = ctx.signal.reason;
  });
  await flush();
  task.cancel(reason);
  await assert.rejects(task.value, (error) => error === reason);
  assert.equal(seen, reason);
});

test("cancel() keeps a cancelled task tracked and in its slot until the function returns", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  const g = gate();
  const stubborn = tasks.run("stubborn", () => g.promise); // ignores its signal
  let nextRan = false;
  tasks.run("next", () => {
    nextRan = true;
  });
  await flush();
  assert.equal(tasks.cancel(stubborn.id), true);
  await flush();
  assert.equal(stubborn.status, "running");
  assert.deepEqual(tasks.activeTasks.map((t) => t.id), [stubborn.id]);
  assert.equal(tasks.activeCount, 1);
  assert.equal(nextRan, false);
  g.resolve();
  await tasks.idle();
  assert.equal(stubborn.status, "cancelled");
  assert.equal(nextRan, true);
});

test("cancel() wins: a cancelled task that then fulfils or throws settles as cancelled, unreported", async () => {
  const { tasks, errors } = quietManager();
  const g1 = gate();
  const g2 = gate();
  const a = tasks.runWithResult("fulfils", () => g1.promise.then(() => "done"));
  const b = tasks.run("throws", () =>
    g2.promise.then(() => {
      throw new Error("unwinding");
    }));
  await flush();
  a.cancel();
  b.cancel();
  g1.resolve();
  g2.resolve();
  await tasks.idle();
  assert.equal(a.status, "cancelled");
  assert.equal(b.status, "cancelled");
  await assert.rejects(a.value, { name: "AbortError" });
  assert.equal(errors.length, 0);
});

test("cancel() returns false for unknown, settled and already-cancelled ids", async () => {
  const { tasks } = quietManager();
  assert.equal(tasks.cancel("no-such-id"), false);
  const done = tasks.run("done", () => {});
  await tasks.idle();
  assert.equal(tasks.cancel(done.id), false);
  const running = tasks.run("running", untilAborted);
  await flush();
  assert.equal(tasks.cancel(running.id), true);
  assert.equal(tasks.cancel(running.id), false);
  assert.equal(running.cancel(), false);
  await tasks.idle();
});

test("cancel() from a start listener settles the task without calling its function", async () => {
  const { tasks } = quietManager();
  let called = false;
  tasks.addEventListener("start", (event) => tasks.cancel(event.task.id));
  // Registered after the cancelling listener: it still sees start first.
  const log = recordEvents(tasks);
  tasks.run("vetoed", () => {
    called = true;
  });
  await tasks.idle();
  assert.equal(called, false);
  assert.deepEqual(log, [
    "start:vetoed",
    "cancel:vetoed",
    "settle:vetoed:cancelled",
  ]);
});

test("cancel() on a task whose signal was never read creates it already aborted", async () => {
  const { tasks } = quietManager();
  const g = gate<AbortSignal>();
  let context: { signal: AbortSignal } | undefined;
  const task = tasks.run("lazy", (ctx) => {
    context = ctx;
    return g.promise;
  });
  await flush();
  task.cancel("why");
  assert.equal(context!.signal.aborted, true);
  assert.equal(context!.signal.reason, "why");
  g.resolve(context!.signal);
  await tasks.idle();
});

test("cancelAll() cancels pending and running tasks and counts them", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  const started: string[] = [];
  tasks.run("a", (ctx) => {
    started.push("a");
    return untilAborted(ctx);
  });
  tasks.run("b", () => {
    started.push("b");
  });
  tasks.run("c", () => {
    started.push("c");
  });
  await flush();
  assert.equal(tasks.cancelAll(), 3);
  assert.equal(tasks.cancelAll(), 0); // "a" is still unwinding, not counted twice
  await tasks.idle();
  assert.deepEqual(started, ["a"]);
  assert.equal(tasks.closed, false);
});

test("cancelAll() before the start microtask keeps every task from starting", async () => {
  const { tasks } = quietManager();
  let ran = 0;
  for (let i = 0; i < 5; i++) tasks.run(`t${i}`, () => void ran++);
  assert.equal(tasks.cancelAll(), 5);
  await tasks.idle();
  assert.equal(ran, 0);
});

test("cancelAll() leaves a cancelled task that ignores its signal tracked until it returns", async () => {
  const { tasks } = quietManager();
  const g = gate();
  const t = tasks.run("ignores", () => g.promise);
  await flush();
  tasks.cancelAll();
  await flush();
  assert.deepEqual(tasks.activeTasks.map((info) => info.id), [t.id]);
  g.resolve();
  await tasks.idle();
  assert.deepEqual(tasks.activeTasks, []);
});

// --- external signal ---

test("run({ signal }) cancels the task when the signal aborts, with its reason", async () => {
  const { tasks } = quietManager();
  const controller = new AbortController();
  const task = tasks.runWithResult("request-bound", untilAborted, {
    signal: controller.signal,
  });
  await flush();
  const reason = new Error("client went away");
  controller.abort(reason);
  await assert.rejects(task.value, (error) => error === reason);
  assert.equal(task.status, "cancelled");
});

test("run({ signal }) with an already aborted signal never starts the task", async () => {
  const { tasks } = quietManager();
  const log = recordEvents(tasks);
  let ran = false;
  const task = tasks.runWithResult("too-late", () => {
    ran = true;
  }, { signal: AbortSignal.abort("gone") });
  assert.equal(task.status, "pending");
  await assert.rejects(task.value, (error) => error === "gone");
  assert.equal(ran, false);
  assert.deepEqual(log, ["cancel:too-late", "settle:too-late:cancelled"]);
});

test("run({ signal }) already aborted on a queued task settles while the slot stays busy", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  const g = gate();
  tasks.run("busy", () => g.promise);
  const queued = tasks.runWithResult("queued", () => {}, {
    signal: AbortSignal.abort(),
  });
  await assert.rejects(queued.value, { name: "AbortError" });
  assert.equal(tasks.activeCount, 1);
  assert.equal(tasks.pendingCount, 0);
  g.resolve();
  await tasks.idle();
});

test("run({ signal }) aborted while queued removes the task", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  const g = gate();
  tasks.run("busy", () => g.promise);
  const controller = new AbortController();
  let ran = false;
  const queued = tasks.run("queued", () => {
    ran = true;
  }, { signal: controller.signal });
  await flush();
  controller.abort();
  assert.equal(queued.status, "cancelled");
  g.resolve();
  await tasks.idle();
  assert.equal(ran, false);
});

test("run({ signal }) removes its abort listener once the task settles", async () => {
  const { tasks } = quietManager();
  const signal = new AbortController().signal;
  const listeners = countListeners(signal);
  for (let i = 0; i < 3; i++) tasks.run(`t${i}`, () => {}, { signal });
  tasks.run("fails", () => {
    throw new Error("x");
  }, { signal });
  assert.equal(listeners(), 4);
  await tasks.idle();
  assert.equal(listeners(), 0);
});

// --- timeout ---

test("run({ timeout }) aborts the signal with a TimeoutError and settles as rejected", async () => {
  const { tasks, errors } = quietManager();
  let reason: unknown;
  const task = tasks.runWithResult("slow", async (ctx) => {
    await untilAborted(ctx);
    reason = ctx.signal.reason;
  }, { timeout: 5 });
  await assert.rejects(task.value, {
    name: "TimeoutError",
    message: 'Task "slow" timed out after 5 ms',
  });
  assert.equal(task.status, "rejected");
  assert.equal((reason as DOMException).name, "TimeoutError");
  assert.equal(errors.length, 0); // the reader of value took it
});

test("run({ timeout }): a task that settles first leaves no timer behind, nor does shutdown()", async () => {
  // Counts the timers set through the globals while the test runs.
  const live = new Set<unknown>();
  const { setTimeout: realSet, clearTimeout: realClear } = globalThis;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    const id = realSet(() => {
      live.delete(id);
      fn();
    }, ms);
    live.add(id);
    return id;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((id: Parameters<typeof clearTimeout>[0]) => {
    live.delete(id);
    realClear(id);
  }) as typeof clearTimeout;
  const { tasks } = quietManager({ timeout: 600_000 });
  const open = gate();
  try {
    for (let i = 0; i < 10; i++) tasks.run(`async ${i}`, async () => {});
    tasks.runWithResult("sync", () => 1);
    tasks.run("fails", () => Promise.reject(new Error("boom")));
    const stuck = tasks.run("cancelled", untilAborted, { timeout: 300_000 });
    tasks.run("running at shutdown", () => open.promise);
    await flush();
    assert.equal(tasks.activeCount, 2);
    assert.equal(
      live.size,
      2,
      "one timer per running task, none for the settled",
    );
    stuck.cancel();
    await flush();
    assert.equal(live.size, 1);
    const report = tasks.shutdown({ timeout: 600_000, grace: 600_000 });
    await flush();
    assert.equal(live.size, 2, "the task's timer and the shutdown's bound");
    open.resolve();
    assert.equal((await report).completed, 1); // the one still running
    assert.equal(live.size, 0);
  } finally {
    // On failure, leave no task (and no timer) to hold the process open.
    open.resolve();
    tasks.cancelAll();
    await tasks.idle();
    for (const id of live) realClear(id as Parameters<typeof clearTimeout>[0]);
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
});

test("run({ timeout }) keeps the slot of a timed-out task until its function returns", async () => {
  const { tasks, errors } = quietManager({ concurrency: 1 });
  const g = gate();
  const timedOut = nextEvent<TaskEvent>(tasks, "cancel");
  const slow = tasks.run("ignores-timeout", () => g.promise, { timeout: 5 });
  let nextRan = false;
  tasks.run("next", () => {
    nextRan = true;
  });
  const event = await timedOut;
  assert.equal((event.reason as DOMException).name, "TimeoutError");
  await flush();
  assert.equal(slow.status, "running");
  assert.equal(nextRan, false);
  assert.equal(tasks.activeCount, 1);
  g.resolve();
  await tasks.idle();
  assert.equal(slow.status, "rejected");
  assert.equal(nextRan, true);
  assert.equal((errors[0][0] as DOMException).name, "TimeoutError");
});

test("TaskManager({ timeout }) applies to tasks without their own", async () => {
  const { tasks } = quietManager({ timeout: 5 });
  const task = tasks.runWithResult("slow", untilAborted);
  await assert.rejects(task.value, { name: "TimeoutError" });
});

test("run({ timeout }) then cancel(): the first request decides the outcome", async () => {
  const { tasks } = quietManager();
  const cancelled = tasks.runWithResult("cancel-first", untilAborted, {
    timeout: 50_000,
  });
  await flush();
  cancelled.cancel();
  await assert.rejects(cancelled.value, { name: "AbortError" });
  assert.equal(cancelled.status, "cancelled");
});

// --- events ---

test("addEventListener() sees start then settle, with the value", async () => {
  const { tasks } = quietManager();
  const events: TaskEvent[] = [];
  tasks.addEventListener("start", (e) => events.push(e));
  tasks.addEventListener("settle", (e) => events.push(e));
  tasks.run("v", () => "result");
  await tasks.idle();
  assert.deepEqual(events.map((e) => e.type), ["start", "settle"]);
  assert.equal(events[0].task.status, "running");
  assert.equal(events[1].task.status, "fulfilled");
  assert.equal(events[1].value, "result");
});

test("addEventListener() event.task read later is the task as it was at dispatch", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  const events: TaskEvent[] = [];
  for (const type of ["start", "cancel", "settle"] as const) {
    tasks.addEventListener(type, (e) => events.push(e));
  }
  const open = gate();
  const running = tasks.run("running", () => open.promise);
  const waiting = tasks.run("waiting", () => {});
  await flush();
  waiting.cancel("not needed");
  open.resolve();
  await tasks.idle();
  // Nothing was read while the tasks ran: every snapshot is read only now.
  assert.deepEqual(
    events.map((e) => [e.type, e.task.name, e.task.status]),
    [
      ["start", "running", "running"],
      ["cancel", "waiting", "pending"],
      ["settle", "waiting", "cancelled"],
      ["settle", "running", "fulfilled"],
    ],
  );
  assert.ok(events[0].task.startedAt instanceof Date);
  assert.equal(
    events[0].task.startedAt.getTime(),
    running.startedAt!.getTime(),
  );
  assert.equal(events[1].task.startedAt, undefined);
  assert.equal(events[0].task, events[0].task, "one snapshot per event");
  assert.deepEqual(JSON.parse(JSON.stringify(events[3].task)), {
    id: running.id,
    name: "running",
    status: "fulfilled",
    startedAt: running.startedAt!.toISOString(),
    attempt: 1,
  });
});

test("new TaskEvent() without init.task is a TypeError that names it", () => {
  assert.throws(
    // @ts-expect-error: the missing task is the point
    () => new TaskEvent("start", {}),
    { name: "TypeError", message: /init\.task/ },
  );
  for (const init of [undefined, null]) {
    assert.throws(
      // @ts-expect-error: the missing init is the point
      () => new TaskEvent("start", init),
      {
        name: "TypeError",
        message: `TaskEvent needs init.task, a TaskInfo: got no init (${init})`,
      },
    );
  }
  assert.throws(
    // @ts-expect-error: a null task is the point
    () => new TaskEvent("start", { task: null }),
    { message: "TaskEvent needs init.task, a TaskInfo: got init.task null" },
  );
  const task = {
    id: "1",
    name: "n",
    status: "running",
    startedAt: undefined,
    attempt: 1,
    progress: undefined,
  } as const;
  const event = new TaskEvent("start", { task, value: 1 });
  assert.equal(event.task, task);
  assert.equal(event.value, 1);
  assert.ok(event instanceof Event);
});

test("addEventListener() settle carries error for rejected and reason for cancelled", async () => {
  const { tasks } = quietManager();
  const settled = new Map<string, TaskEvent>();
  tasks.addEventListener("settle", (e) => settled.set(e.task.name, e));
  const boom = new Error("boom");
  tasks.run("rejected", () => {
    throw boom;
  });
  const c = tasks.run("cancelled", untilAborted);
  await flush();
  c.cancel("stop");
  await tasks.idle();
  assert.equal(settled.get("rejected")!.error, boom);
  assert.equal(settled.get("cancelled")!.reason, "stop");
});

test("addEventListener() events order start, cancel, settle for a cancelled running task", async () => {
  const { tasks } = quietManager();
  const log = recordEvents(tasks);
  const t = tasks.run("t", untilAborted);
  await flush();
  t.cancel();
  await tasks.idle();
  assert.deepEqual(log, ["start:t", "cancel:t", "settle:t:cancelled"]);
});

test("addEventListener() a listener can start new tasks", async () => {
  const { tasks } = quietManager();
  const names: string[] = [];
  tasks.addEventListener("settle", (e) => {
    names.push(e.task.name);
    if (e.task.name === "first") tasks.run("follow-up", () => {});
  });
  tasks.run("first", () => {});
  await tasks.idle();
  assert.deepEqual(names, ["first", "follow-up"]);
});

test("addEventListener(): no event is made for a type nobody listens to", async () => {
  const { tasks } = quietManager();
  // The manager makes each event in the call that dispatches it.
  const dispatched: string[] = [];
  const dispatch = tasks.dispatchEvent.bind(tasks);
  tasks.dispatchEvent = (event: Event) => {
    dispatched.push(event.type);
    return dispatch(event);
  };
  const program = async () => {
    tasks.run("ok", () => {});
    tasks.run("fails", () => {
      throw new Error("boom");
    });
    tasks.run("cancelled", untilAborted).cancel();
    const running = tasks.run("cancelled while running", untilAborted);
    await flush();
    running.cancel();
    await tasks.idle();
  };
  await program();
  assert.deepEqual(dispatched, []);

  const onSettle = () => {};
  tasks.addEventListener("settle", onSettle);
  await program();
  assert.deepEqual(dispatched, ["settle", "settle", "settle", "settle"]);

  tasks.removeEventListener("settle", onSettle);
  dispatched.length = 0;
  await program();
  assert.deepEqual(dispatched, []);
});

test("addEventListener() with handleEvent objects and removeEventListener", async () => {
  const { tasks } = quietManager();
  let count = 0;
  const listener = { handleEvent: (_event: TaskEvent) => void count++ };
  tasks.addEventListener("settle", listener);
  tasks.run("one", () => {});
  await tasks.idle();
  tasks.removeEventListener("settle", listener);
  tasks.run("two", () => {});
  await tasks.idle();
  assert.equal(count, 1);
});

test("addEventListener() with capture true and false are two listeners", async () => {
  const { tasks } = quietManager();
  let count = 0;
  const listener = () => void count++;
  tasks.addEventListener("settle", listener, true);
  tasks.addEventListener("settle", listener, false);
  tasks.removeEventListener("settle", listener, true);
  tasks.run("one", () => {});
  await tasks.idle();
  assert.equal(count, 1);
});

// --- idle ---

test("idle() resolves at once when nothing runs", async () => {
  const { tasks } = quietManager();
  await tasks.idle();
});

test("idle() waits for tasks started while it waits", async () => {
  const { tasks } = quietManager();
  const order: string[] = [];
  tasks.run("a", async () => {
    await Promise.resolve();
    tasks.run("b", async () => {
      await Promise.resolve();
      order.push("b");
    });
    order.push("a");
  });
  await tasks.idle();
  assert.deepEqual(order, ["a", "b"]);
});

test("idle({ signal }) rejects with the reason; the other waiter still resolves", async () => {
  const { tasks } = quietManager();
  const g = gate();
  tasks.run("slow", () => g.promise);
  const first = tasks.idle();
  const controller = new AbortController();
  const second = tasks.idle({ signal: controller.signal });
  const reason = new Error("stop waiting");
  controller.abort(reason);
  await assert.rejects(second, (error) => error === reason);
  g.resolve();
  await first;
});

test("idle({ signal }) with an aborted signal rejects at once when busy", async () => {
  const { tasks } = quietManager();
  const g = gate();
  tasks.run("slow", () => g.promise);
  await assert.rejects(
    tasks.idle({ signal: AbortSignal.abort("no") }),
    (e) => e === "no",
  );
  g.resolve();
  await tasks.idle();
});

// --- shutdown ---

test("shutdown() waits for running tasks and reports them completed", async () => {
  const { tasks } = quietManager();
  const g = gate();
  tasks.run("a", () => g.promise);
  tasks.run("b", () => {
    throw new Error("x");
  });
  const report = tasks.shutdown({ timeout: Infinity });
  g.resolve();
  assert.deepEqual(await report, { completed: 2, cancelled: 0, abandoned: [] });
});

test("shutdown() closes the manager: run, runWithResult and group().add throw ManagerClosedError", async () => {
  const { tasks } = quietManager();
  const group = tasks.group();
  await tasks.shutdown();
  for (
    const [call, verb] of [
      [() => tasks.run("late", () => {}), "run"],
      [() => tasks.runWithResult("late", () => {}), "runWithResult"],
      [() => group.add("late", () => {}), "add"],
    ] as const
  ) {
    assert.throws(call, (error: unknown) => {
      assert.ok(error instanceof ManagerClosedError);
      assert.ok(error instanceof Error);
      assert.equal(error.name, "ManagerClosedError");
      assert.equal(error.taskName, "late");
      assert.equal(
        error.message,
        `Cannot ${verb} task "late": the TaskManager is shut down`,
      );
      return true;
    });
  }
  assert.equal(tasks.activeCount + tasks.pendingCount, 0);
});

test("shutdown({ timeout: 0 }) cancels at once and counts the cancelled", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  tasks.run("running", untilAborted);
  tasks.run("queued", () => {});
  await flush();
  const report = await tasks.shutdown({ timeout: 0 });
  assert.deepEqual(report, { completed: 0, cancelled: 2, abandoned: [] });
});

test("shutdown({ timeout: 0 }) cancels a task queued in the same tick before it starts", async () => {
  const tasks = new TaskManager();
  const log: string[] = [];
  tasks.addEventListener(
    "start",
    (event) => log.push(`start ${event.task.name}`),
  );
  tasks.run("sync", () => void log.push("sync ran"));
  tasks.run("waits", () => new Promise<void>(() => log.push("waits ran")));
  assert.equal(tasks.pendingCount, 2);
  const report = await tasks.shutdown({ timeout: 0 });
  assert.deepEqual(log, []);
  assert.deepEqual(report, { completed: 0, cancelled: 2, abandoned: [] });
});

test("shutdown() called again from a cancel listener inside shutdown() returns the same promise", async () => {
  const tasks = new TaskManager();
  let nested: Promise<unknown> | undefined;
  tasks.addEventListener("cancel", () => {
    nested ??= tasks.shutdown({ timeout: 0 });
  });
  tasks.run("waits", untilAborted);
  await flush();
  const first = tasks.shutdown({ timeout: 0 });
  assert.ok(nested !== undefined, "the listener ran inside shutdown()");
  assert.equal(nested, first);
  assert.deepEqual(await first, { completed: 0, cancelled: 1, abandoned: [] });
});

test("shutdown() reports tasks that ignore their abort as abandoned", async () => {
  const { tasks } = quietManager();
  const g = gate();
  const stuck = tasks.run("stuck", () => g.promise);
  await flush();
  const report = await tasks.shutdown({ timeout: 1, grace: 1 });
  assert.equal(report.cancelled, 0);
  assert.deepEqual(report.abandoned.map((t) => t.id), [stuck.id]);
  assert.equal(report.abandoned[0].status, "running");
  g.resolve();
  await tasks.idle();
  assert.equal(stuck.status, "cancelled");
});

test("shutdown() called twice returns the same promise", async () => {
  const { tasks } = quietManager();
  const first = tasks.shutdown();
  assert.equal(tasks.shutdown({ timeout: 0 }), first);
  await first;
});

test("shutdown() with no tasks resolves with an empty report", async () => {
  const { tasks } = quietManager();
  assert.deepEqual(await tasks.shutdown(), {
    completed: 0,
    cancelled: 0,
    abandoned: [],
  });
});

// `await using` itself is exercised by the doc example (Node 22 cannot parse it).
test("Symbol.asyncDispose shuts the manager down", async () => {
  const tasks = new TaskManager();
  let done = false;
  tasks.run("flush", async () => {
    await Promise.resolve();
    done = true;
  });
  await tasks[Symbol.asyncDispose]();
  assert.equal(done, true);
  assert.equal(tasks.closed, true);
});

test("TaskManager({ signal }) aborting cancels everything and closes the manager", async () => {
  const controller = new AbortController();
  const { tasks } = quietManager({ signal: controller.signal });
  const running = tasks.runWithResult("r", untilAborted);
  await flush();
  controller.abort("server stopping");
  assert.equal(tasks.closed, true);
  await assert.rejects(running.value, (e) => e === "server stopping");
  assert.throws(() => tasks.run("late", () => {}), /shut down/);
});

test("TaskManager({ signal }) already aborted starts closed", () => {
  const { tasks } = quietManager({ signal: AbortSignal.abort() });
  assert.equal(tasks.closed, true);
  assert.throws(() => tasks.run("x", () => {}), /shut down/);
});

// --- waitUntil ---

test("run({ waitUntil }) is called once with a promise that resolves when the task settles", async () => {
  const { tasks } = quietManager();
  const promises: Promise<void>[] = [];
  const g = gate();
  const t = tasks.run("edge", () => g.promise, {
    waitUntil: (p) => promises.push(p),
  });
  assert.equal(promises.length, 1);
  let settled = false;
  promises[0].then(() => settled = true);
  await flush();
  assert.equal(settled, false);
  g.reject(new Error("fails"));
  await promises[0];
  assert.equal(t.status, "rejected");
});

test("TaskManager({ waitUntil }) applies to every task; a per-run waitUntil replaces it", async () => {
  const managerCalls: Promise<void>[] = [];
  const runCalls: Promise<void>[] = [];
  const { tasks } = quietManager({ waitUntil: (p) => managerCalls.push(p) });
  tasks.run("a", () => {});
  tasks.run("b", () => {}, { waitUntil: (p) => runCalls.push(p) });
  tasks.run("c", () => {}, { signal: AbortSignal.abort() });
  await tasks.idle();
  assert.equal(managerCalls.length, 2);
  assert.equal(runCalls.length, 1);
  await Promise.all([...managerCalls, ...runCalls]);
});

// --- hygiene ---

test("TaskManager() construction creates no controller or timer", () => {
  const Original = globalThis.AbortController;
  const originalTimeout = AbortSignal.timeout;
  let made = 0;
  globalThis.AbortController = class extends Original {
    constructor() {
      super();
      made++;
    }
  };
  AbortSignal.timeout = (ms: number) => {
    made++;
    return originalTimeout(ms);
  };
  try {
    new TaskManager({ concurrency: 4, timeout: 1000 });
    assert.equal(made, 0);
  } finally {
    globalThis.AbortController = Original;
    AbortSignal.timeout = originalTimeout;
  }
});

test("run() creates no AbortController for a task that never reads its signal", async () => {
  const Original = globalThis.AbortController;
  let made = 0;
  globalThis.AbortController = class extends Original {
    constructor() {
      super();
      made++;
    }
  };
  try {
    const { tasks } = quietManager();
    tasks.run("no-signal", () => {});
    tasks.run("reads-signal", ({ signal }) => void signal.aborted);
    await tasks.idle();
    assert.equal(made, 1);
  } finally {
    globalThis.AbortController = Original;
  }
});

// --- bad input ---

test("run() rejects bad arguments with a clear error and accepts nothing", () => {
  const { tasks } = quietManager();
  const bad: [() => unknown, ErrorConstructor, RegExp][] = [
    [
      () => tasks.run("", () => {}),
      TypeError,
      /'name' must be a non-empty string, received ""/,
    ],
    [
      () => tasks.run(42 as unknown as string, () => {}),
      TypeError,
      /'name'.*received 42/,
    ],
    [
      () => tasks.run("x", "nope" as never),
      TypeError,
      /'fn' must be a function, received "nope"/,
    ],
    [
      () => tasks.run("x", () => {}, { signal: {} as AbortSignal }),
      TypeError,
      /'signal' must be an AbortSignal, received an object/,
    ],
    [
      () => tasks.run("x", () => {}, { timeout: 0 }),
      RangeError,
      /'timeout' must be a positive number of milliseconds up to 2147483647, received 0/,
    ],
    [
      () => tasks.run("x", () => {}, { timeout: 2 ** 31 }),
      RangeError,
      /received 2147483648/,
    ],
    [
      () => tasks.run("x", () => {}, { timeout: NaN }),
      RangeError,
      /received NaN/,
    ],
    [
      () => tasks.run("x", () => {}, { timeout: "5" as unknown as number }),
      TypeError,
      /'timeout' must be a number/,
    ],
    [
      () => tasks.run("x", () => {}, { waitUntil: 1 as never }),
      TypeError,
      /'waitUntil' must be a function/,
    ],
    [
      () => tasks.run("x", () => {}, null as never),
      TypeError,
      /'options' must be an object, received null/,
    ],
    [
      () => tasks.runWithResult("", () => {}),
      TypeError,
      /Cannot runWithResult task: 'name'/,
    ],
    [
      () => tasks.cancel(1 as unknown as string),
      TypeError,
      /'id' must be a string, received 1/,
    ],
    [
      () => tasks.idle({ signal: "x" as never }),
      TypeError,
      /'signal' must be an AbortSignal/,
    ],
  ];
  for (const [call, type, message] of bad) {
    assert.throws(call, (error: Error) => {
      assert.ok(error instanceof type, `${error.name}: ${error.message}`);
      assert.match(error.message, message);
      return true;
    });
  }
  assert.equal(tasks.pendingCount, 0);
});

test("TaskManager() rejects bad options with a clear error", () => {
  const bad: [unknown, ErrorConstructor, RegExp][] = [
    [
      { concurrency: 0 },
      RangeError,
      /Cannot create TaskManager: 'concurrency' must be a positive integer or Infinity, received 0/,
    ],
    [{ concurrency: 1.5 }, RangeError, /received 1.5/],
    [{ concurrency: -Infinity }, RangeError, /received -Infinity/],
    [{ concurrency: "2" }, TypeError, /'concurrency'.*received "2"/],
    [{ timeout: -1 }, RangeError, /'timeout'/],
    [
      { signal: new EventTarget() },
      TypeError,
      /'signal' must be an AbortSignal, received an instance of EventTarget/,
    ],
    [{ onError: "log" }, TypeError, /'onError' must be a function/],
    [{ waitUntil: {} }, TypeError, /'waitUntil' must be a function/],
    ["fast", TypeError, /'options' must be an object, received "fast"/],
  ];
  for (const [options, type, message] of bad) {
    assert.throws(() => new TaskManager(options as never), (error: Error) => {
      assert.ok(error instanceof type, `${error.name}: ${error.message}`);
      assert.match(error.message, message);
      return true;
    });
  }
});

test("shutdown() rejects bad bounds synchronously and stays open", () => {
  const { tasks } = quietManager();
  assert.throws(() => tasks.shutdown({ timeout: -1 }), RangeError);
  assert.throws(() => tasks.shutdown({ grace: "1" as never }), TypeError);
  assert.throws(
    () => tasks.shutdown({ timeout: NaN }),
    /'timeout' must be 0, a positive number of milliseconds up to 2147483647, or Infinity, received NaN/,
  );
  assert.equal(tasks.closed, false);
});
