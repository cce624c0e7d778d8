import assert from "node:assert/strict";
import { TaskManager, TaskScope } from "../../mod.ts";
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
