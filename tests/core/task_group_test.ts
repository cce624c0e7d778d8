import assert from "node:assert/strict";
import {
  type TaskEvent,
  TaskGroup,
  type TaskInfo,
  TaskManager,
} from "../../mod.ts";
import { countListeners, flush, gate, test } from "../_harness.ts";

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

const untilAborted = ({ signal }: { signal: AbortSignal }) =>
  new Promise<void>((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );

test("awaitAll() returns every outcome in add order and never rejects", async () => {
  const { tasks } = quietManager();
  const group = tasks.group();
  const boom = new Error("boom");
  const ok = group.add("ok", () => Promise.resolve(1));
  group.add("fails", () => {
    throw boom;
  });
  const cancelled = group.add("cancelled", untilAborted);
  await flush();
  cancelled.cancel("enough");
  const results = await group.awaitAll();
  assert.deepEqual(results.map(({ name, status }) => [name, status]), [
    ["ok", "fulfilled"],
    ["fails", "rejected"],
    ["cancelled", "cancelled"],
  ]);
  assert.equal(results[0].status === "fulfilled" && results[0].value, 1);
  assert.equal(results[1].status === "rejected" && results[1].error, boom);
  assert.equal(
    results[2].status === "cancelled" && results[2].reason,
    "enough",
  );
  assert.equal(results[0].id, ok.id);
});

test("awaitAll() waits for tasks added while it waits", async () => {
  const group = new TaskGroup();
  const g = gate();
  group.add("parent", async () => {
    await g.promise;
    group.add("child", () => "late");
  });
  const all = group.awaitAll();
  g.resolve();
  const results = await all;
  assert.deepEqual(results.map((r) => r.name), ["parent", "child"]);
});

test("awaitAll() on an empty group resolves with no results", async () => {
  assert.deepEqual(await new TaskGroup().awaitAll(), []);
});

test("awaitAll() takes the group's failures instead of onError", async () => {
  const { tasks, errors } = quietManager();
  const group = tasks.group();
  group.add("fails", () => Promise.reject(new Error("x")));
  await group.awaitAll();
  assert.equal(errors.length, 0);
});

test("add() failures go to onError when awaitAll() was not called before they settled", async () => {
  const { tasks, errors } = quietManager();
  const group = tasks.group();
  group.add("fails", () => {
    throw new Error("unwatched");
  });
  await tasks.idle();
  assert.equal(errors.length, 1);
  assert.equal(errors[0][1].name, "fails");
});

test("TaskGroup({ failFast: false }) lets every task finish", async () => {
  const group = new TaskGroup();
  const g = gate();
  group.add("fails", () => {
    throw new Error("x");
  });
  group.add("slow", () => g.promise.then(() => "done"));
  const all = group.awaitAll();
  await flush();
  g.resolve();
  const [, slow] = await all;
  assert.equal(slow.status, "fulfilled");
});

test("TaskGroup({ failFast: true }) cancels the siblings on the first failure", async () => {
  const { tasks } = quietManager({ concurrency: 2 });
  const group = tasks.group({ failFast: true });
  const g = gate();
  let queuedRan = false;
  group.add("running", untilAborted);
  group.add(
    "fails",
    () => g.promise.then(() => Promise.reject(new Error("x"))),
  );
  group.add("queued", () => {
    queuedRan = true;
  });
  const all = group.awaitAll();
  await flush();
  g.resolve();
  const results = await all;
  assert.deepEqual(results.map((r) => r.status), [
    "cancelled",
    "rejected",
    "cancelled",
  ]);
  const reason = results[0].status === "cancelled" && results[0].reason;
  assert.equal((reason as DOMException).name, "AbortError");
  assert.match((reason as DOMException).message, /"fails"/);
  assert.equal(queuedRan, false);
});

test("TaskGroup({ failFast: true }) is not triggered by a cancellation", async () => {
  const group = new TaskGroup({ failFast: true });
  const a = group.add("a", untilAborted);
  const b = group.add("b", () => "fine");
  await flush();
  a.cancel();
  const results = await group.awaitAll();
  assert.deepEqual(results.map((r) => r.status), ["cancelled", "fulfilled"]);
  assert.equal(await b.value, "fine");
});

test("TaskGroup({ signal }) aborting cancels the whole group with the reason", async () => {
  const controller = new AbortController();
  const group = new TaskGroup({ signal: controller.signal });
  group.add("a", untilAborted);
  group.add("b", untilAborted);
  await flush();
  const reason = new Error("request aborted");
  controller.abort(reason);
  const results = await group.awaitAll();
  for (const result of results) {
    assert.equal(result.status, "cancelled");
    assert.equal(result.status === "cancelled" && result.reason, reason);
  }
});

test("TaskGroup({ signal }) holds a listener only while a task is unsettled", async () => {
  const signal = new AbortController().signal;
  const listeners = countListeners(signal);
  const group = new TaskGroup({ signal });
  group.add("a", () => {});
  group.add("b", () => {});
  assert.equal(listeners(), 1);
  await group.awaitAll();
  assert.equal(listeners(), 0);
  group.add("c", () => {});
  assert.equal(listeners(), 1);
  await group.awaitAll();
  assert.equal(listeners(), 0);
});

test("TaskGroup({ signal }) already aborted: added tasks never start", async () => {
  const group = new TaskGroup({ signal: AbortSignal.abort("stop") });
  let ran = false;
  const task = group.add("never", () => {
    ran = true;
  });
  await assert.rejects(task.value, (e) => e === "stop");
  assert.equal(ran, false);
});

test("TaskGroup({ concurrency }) limits the group within the manager", async () => {
  const { tasks } = quietManager({ concurrency: 3 });
  const group = tasks.group({ concurrency: 1 });
  const gates = [gate(), gate(), gate()];
  const started: string[] = [];
  gates.forEach((g, i) =>
    group.add(`g${i}`, () => {
      started.push(`g${i}`);
      return g.promise;
    })
  );
  tasks.run("outside", () => {
    started.push("outside");
  });
  await flush();
  assert.deepEqual(started, ["g0", "outside"]);
  assert.equal(group.activeCount, 1);
  assert.equal(tasks.pendingCount, 2);
  gates[0].resolve();
  await flush();
  assert.deepEqual(started, ["g0", "outside", "g1"]);
  gates[1].resolve();
  gates[2].resolve();
  await group.awaitAll();
  assert.deepEqual(started, ["g0", "outside", "g1", "g2"]);
});

test("TaskGroup({ concurrency }) keeps the manager's activeTasks in start order", async () => {
  const { tasks } = quietManager();
  const group = tasks.group({ concurrency: 1 });
  const first = gate();
  const rest = gate();
  group.add("g0", () => first.promise);
  group.add("g1", () => rest.promise);
  await flush();
  tasks.run("m", () => rest.promise);
  await flush();
  first.resolve();
  await flush();
  assert.deepEqual(tasks.activeTasks.map((t) => t.name), ["m", "g1"]);
  rest.resolve();
  await tasks.idle();
});

test("group() tasks show in the manager's activeTasks and dispatch its events", async () => {
  const { tasks } = quietManager();
  const settled: string[] = [];
  tasks.addEventListener("settle", (e: TaskEvent) => settled.push(e.task.name));
  const group = tasks.group();
  const g = gate();
  group.add("thumb-150", () => g.promise);
  await flush();
  assert.deepEqual(tasks.activeTasks.map((t) => t.name), ["thumb-150"]);
  assert.equal(tasks.activeCount, 1);
  g.resolve();
  await group.awaitAll();
  assert.deepEqual(settled, ["thumb-150"]);
});

test("group() tasks count against the manager's concurrency", async () => {
  const { tasks } = quietManager({ concurrency: 1 });
  const group = tasks.group();
  const g = gate();
  group.add("a", () => g.promise);
  group.add("b", () => {});
  await flush();
  assert.equal(tasks.activeCount, 1);
  assert.equal(tasks.pendingCount, 1);
  g.resolve();
  await group.awaitAll();
});

test("group() tasks are cancelled by the manager's shutdown", async () => {
  const { tasks } = quietManager();
  const group = tasks.group();
  group.add("a", untilAborted);
  await flush();
  const report = await tasks.shutdown({ timeout: 0 });
  assert.equal(report.cancelled, 1);
  const [a] = await group.awaitAll();
  assert.equal(a.status, "cancelled");
});

test("cancel() cancels unsettled tasks, counts them, and cancels later adds", async () => {
  const group = new TaskGroup();
  group.add("a", untilAborted);
  group.add("b", () => {});
  await flush();
  assert.equal(group.cancel("stop"), 1); // "b" already fulfilled
  const late = group.add("late", () => {});
  await assert.rejects(late.value, (e) => e === "stop");
  const results = await group.awaitAll();
  assert.deepEqual(results.map((r) => r.status), [
    "cancelled",
    "fulfilled",
    "cancelled",
  ]);
});

test("cancel() on a group with held tasks never starts them", async () => {
  const group = new TaskGroup({ concurrency: 1 });
  let started = 0;
  for (let i = 0; i < 4; i++) {
    group.add(`t${i}`, (ctx) => {
      started++;
      return untilAborted(ctx);
    });
  }
  await flush();
  assert.equal(group.cancel(), 4);
  const results = await group.awaitAll();
  assert.equal(started, 1);
  assert.ok(results.every((r) => r.status === "cancelled"));
});

test("activeCount counts the group's running tasks", async () => {
  const group = new TaskGroup({ concurrency: 2 });
  const g = gate();
  for (let i = 0; i < 3; i++) group.add(`t${i}`, () => g.promise);
  assert.equal(group.activeCount, 0);
  await flush();
  assert.equal(group.activeCount, 2);
  g.resolve();
  await group.awaitAll();
  assert.equal(group.activeCount, 0);
});

test("Symbol.asyncDispose cancels what is left and waits for it", async () => {
  const group = new TaskGroup();
  let cleaned = false;
  group.add("watch", async (ctx) => {
    await untilAborted(ctx);
    cleaned = true;
  });
  await flush();
  await group[Symbol.asyncDispose]();
  assert.equal(cleaned, true);
});

test("add() passes per-run options: timeout and signal", async () => {
  const group = new TaskGroup();
  const timed = group.add("timed", untilAborted, { timeout: 5 });
  const controller = new AbortController();
  const signalled = group.add("signalled", untilAborted, {
    signal: controller.signal,
  });
  await flush();
  controller.abort("x");
  await assert.rejects(timed.value, { name: "TimeoutError" });
  await assert.rejects(signalled.value, (e) => e === "x");
});

test("add() rejects bad arguments with a clear error", () => {
  const group = new TaskGroup();
  assert.throws(() => group.add("", () => {}), {
    name: "TypeError",
    message: /Cannot add task: 'name' must be a non-empty string, received ""/,
  });
  assert.throws(
    () => group.add("x", null as never),
    /'fn' must be a function, received null/,
  );
  assert.throws(() => group.add("x", () => {}, { timeout: -5 }), RangeError);
});

test("TaskGroup() rejects bad options with a clear error", () => {
  assert.throws(() => new TaskGroup({ concurrency: 0 }), {
    name: "RangeError",
    message:
      /Cannot create TaskGroup: 'concurrency' must be a positive integer or Infinity, received 0/,
  });
  assert.throws(
    () => new TaskGroup({ failFast: "yes" as never }),
    /'failFast' must be a boolean, received "yes"/,
  );
  assert.throws(
    () => new TaskGroup({ signal: 1 as never }),
    /'signal' must be an AbortSignal/,
  );
  // A group runs through a manager when made by manager.group(); the option
  // that once did it is refused with a message that says so.
  assert.throws(
    () => new TaskGroup({ manager: new TaskManager() } as never),
    {
      name: "TypeError",
      message:
        "Cannot create TaskGroup: 'manager' is not an option: make a group that runs through a manager with manager.group()",
    },
  );
});
