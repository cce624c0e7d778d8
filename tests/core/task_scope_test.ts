import assert from "node:assert/strict";
import { ManagerClosedError, TaskManager, TaskScope } from "../../mod.ts";
import { flush, gate, test } from "../_harness.ts";

test("TaskScope.run() gives a task the scope's waitUntil and timeout", async () => {
  const tasks = new TaskManager({ onError: () => {} });
  const kept: Promise<void>[] = [];
  const scope = new TaskScope(tasks, {
    timeout: 1,
    waitUntil: (promise) => kept.push(promise),
  });
  const task = scope.runWithResult(
    "hang",
    ({ signal }) =>
      new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason))
      ),
  );
  scope.run("quick", () => {});
  assert.equal(kept.length, 2);
  await assert.rejects(task.value, { name: "TimeoutError" });
  await Promise.all(kept);
  assert.equal(tasks.activeCount + tasks.pendingCount, 0);
});

test("TaskScope.run() lets a task's own options win over the scope's", async () => {
  const tasks = new TaskManager();
  const byScope: Promise<void>[] = [];
  const byTask: Promise<void>[] = [];
  const scope = new TaskScope(tasks, {
    timeout: 1,
    waitUntil: (promise) => byScope.push(promise),
  });
  const task = scope.runWithResult(
    "slow",
    ({ signal }) =>
      new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason))
      ),
    {
      timeout: 2,
      waitUntil: (promise) => byTask.push(promise),
    },
  );
  await assert.rejects(task.value, {
    name: "TimeoutError",
    message: 'Task "slow" timed out after 2 ms',
  });
  assert.equal(byScope.length, 0);
  assert.equal(byTask.length, 1);
});

test("TaskScope.group() gives each task of the group the scope's options", async () => {
  const tasks = new TaskManager();
  const kept: Promise<void>[] = [];
  const scope = new TaskScope(tasks, { waitUntil: (p) => kept.push(p) });
  const group = scope.group({ concurrency: 1 });
  group.add("a", () => 1);
  group.add("b", () => 2);
  assert.equal(kept.length, 2);
  const results = await group.awaitAll();
  assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled"]);
  await Promise.all(kept);
  // A real TaskGroup: disposable, and counted by the manager.
  assert.equal(typeof group[Symbol.asyncDispose], "function");
});

test("TaskScope tasks are the manager's tasks: its events, counts and cancel", async () => {
  const tasks = new TaskManager();
  const started: string[] = [];
  tasks.addEventListener("start", (event) => started.push(event.task.name));
  const scope = new TaskScope(tasks);
  const release = gate();
  const handle = scope.run("held", () => release.promise);
  await flush();
  assert.equal(tasks.activeCount, 1);
  assert.deepEqual(tasks.activeTasks.map((t) => t.id), [handle.id]);
  assert.equal(tasks.cancel(handle.id), true);
  release.resolve();
  await tasks.idle();
  assert.deepEqual(started, ["held"]);
  assert.equal(handle.status, "cancelled");
  assert.equal(scope.manager, tasks);
});

test("TaskScope reads its options when a task starts, once per task", async () => {
  const tasks = new TaskManager();
  let reads = 0;
  const kept: Promise<void>[] = [];
  const options = {
    get waitUntil() {
      reads++;
      return (promise: Promise<void>) => void kept.push(promise);
    },
  };
  const scope = new TaskScope(tasks, options);
  assert.equal(reads, 0, "not read when the scope is made");
  scope.run("a", () => {});
  scope.run("b", () => {});
  assert.equal(reads, 2);
  assert.equal(kept.length, 2);
  await tasks.idle();
});

test("TaskScope rejects a bad manager, bad options, and a bad option when it is read", async () => {
  assert.throws(() => new TaskScope({} as TaskManager), {
    name: "TypeError",
    message:
      "Cannot create TaskScope: 'manager' must be a TaskManager, received an object",
  });
  const tasks = new TaskManager();
  assert.throws(() => new TaskScope(tasks, "fast" as never), {
    name: "TypeError",
    message:
      "Cannot create TaskScope: 'options' must be an object, received \"fast\"",
  });
  const scope = new TaskScope(tasks, { timeout: -5 });
  assert.throws(() => scope.run("resize", () => {}), {
    name: "RangeError",
    message:
      "A TaskScope's options: 'timeout' must be a positive number of milliseconds up to 2147483647, received -5",
  });
  assert.throws(() => scope.group(), { name: "RangeError" });
  assert.equal(tasks.pendingCount, 0, "nothing was accepted");
  await tasks.shutdown();
  assert.throws(
    () => new TaskScope(tasks).run("late", () => {}),
    /Cannot run task "late": the TaskManager is shut down/,
  );
});

test("TaskScope with hold: a shutdown waits for it and lets it start tasks until released", async () => {
  const tasks = new TaskManager();
  const request = new TaskScope(tasks, { hold: true });
  assert.equal(request.held, true);
  let done = false;
  const shutdown = tasks.shutdown({ timeout: 60_000 }).then((report) => {
    done = true;
    return report;
  });
  assert.equal(tasks.closed, true);
  assert.equal(tasks.closing, true);
  await flush();
  assert.equal(done, false, "the shutdown waits for the held scope");
  // Still in its handler: it may start tasks, groups included.
  const email = request.runWithResult("send-confirmation", () => "sent");
  const thumbnails = request.group();
  thumbnails.add("thumb-150", () => 150);
  // Others may not.
  assert.throws(() => tasks.run("late", () => {}), ManagerClosedError);
  assert.throws(
    () => new TaskScope(tasks).run("late", () => {}),
    ManagerClosedError,
  );
  assert.equal(await email.value, "sent");
  await flush();
  assert.equal(done, false, "idle, but still held");
  request.release();
  request.release(); // a second call does nothing
  assert.deepEqual(await shutdown, {
    completed: 2,
    cancelled: 0,
    abandoned: [],
  });
  assert.equal(tasks.closing, false);
  assert.throws(() => request.run("after", () => {}), ManagerClosedError);
});

test("TaskScope with hold made once the manager is closed holds nothing", async () => {
  const tasks = new TaskManager();
  await tasks.shutdown();
  const late = new TaskScope(tasks, { hold: true });
  assert.equal(late.held, false);
  assert.throws(() => late.run("late", () => {}), {
    name: "ManagerClosedError",
    message: 'Cannot run task "late": the TaskManager is shut down',
  });
});

test("TaskScope with hold: once the shutdown's timeout passed, its new tasks are refused", async () => {
  const tasks = new TaskManager();
  const request = new TaskScope(tasks, { hold: true });
  const report = await tasks.shutdown({ timeout: 1, grace: 1 });
  // The scope was never released: the shutdown gave up on it.
  assert.deepEqual(report, { completed: 0, cancelled: 0, abandoned: [] });
  assert.equal(request.held, true);
  assert.throws(() => request.run("late", () => {}), ManagerClosedError);
  request[Symbol.dispose]();
  assert.equal(request.held, false);
});

test("TaskScope with hold: a shutdown with timeout 0 does not wait for it", async () => {
  const tasks = new TaskManager();
  const request = new TaskScope(tasks, { hold: true });
  const shutdown = tasks.shutdown({ timeout: 0, grace: 0 });
  assert.throws(() => request.run("late", () => {}), ManagerClosedError);
  assert.deepEqual(await shutdown, {
    completed: 0,
    cancelled: 0,
    abandoned: [],
  });
  request.release();
});

test("TaskScope rejects a hold option that is not a boolean", () => {
  assert.throws(() => new TaskScope(new TaskManager(), { hold: 1 as never }), {
    name: "TypeError",
    message: "Cannot create TaskScope: 'hold' must be a boolean, received 1",
  });
});
