import assert from "node:assert/strict";
import { type Context, type ExecutionContext, Hono } from "hono";
import {
  ManagerClosedError,
  type TaskGroup,
  TaskManager,
  type TaskScope,
} from "../../mod.ts";
import {
  backgroundTasks,
  type BackgroundTasksEnv,
} from "../../src/hono/mod.ts";
import { flush, gate, test } from "../_harness.ts";

/** What the Workers runtime passes as `ctx`, recording `waitUntil` calls. */
function executionContext(): {
  ctx: ExecutionContext;
  kept: Promise<unknown>[];
} {
  const kept: Promise<unknown>[] = [];
  const ctx: ExecutionContext = {
    waitUntil: (promise) => {
      kept.push(promise);
    },
    passThroughOnException: () => {},
    props: {},
  };
  return { ctx, kept };
}

/** Whether `promise` has settled, after the pending microtasks ran. */
async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await flush();
  return settled;
}

test("backgroundTasks() sets c.var.tasks over the manager", async () => {
  const tasks = new TaskManager();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  let seen: TaskScope | undefined;
  app.get("/", (c) => {
    seen = c.var.tasks;
    return c.text("ok");
  });
  const response = await app.request("/");
  assert.equal(await response.text(), "ok");
  assert.ok(seen !== undefined);
  assert.equal(seen.manager, tasks);
  assert.equal(typeof seen.run, "function");
});

test("backgroundTasks() types c.var.tasks on a chained app", async () => {
  const tasks = new TaskManager();
  const app = new Hono()
    .use(backgroundTasks(tasks))
    .get("/", (c) => {
      // Type-checked: c.var.tasks is a TaskScope without a cast.
      const handle = c.var.tasks.run("typed", () => {});
      return c.json({ name: handle.name });
    });
  const response = await app.request("/");
  assert.deepEqual(await response.json(), { name: "typed" });
  await tasks.idle();
});

test("backgroundTasks() runs tasks after the response is sent", async () => {
  const tasks = new TaskManager();
  const release = gate();
  const log: string[] = [];
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  app.post("/orders", (c) => {
    c.var.tasks.run("send-confirmation", async () => {
      await release.promise;
      log.push("email sent");
    });
    log.push("responded");
    return c.body(null, 201);
  });
  const response = await app.request("/orders", { method: "POST" });
  assert.equal(response.status, 201);
  assert.equal(tasks.activeCount, 1);
  assert.deepEqual(log, ["responded"]);
  release.resolve();
  await tasks.idle();
  assert.deepEqual(log, ["responded", "email sent"]);
});

test("backgroundTasks() registers each task with the execution context's waitUntil", async () => {
  const tasks = new TaskManager();
  const { ctx, kept } = executionContext();
  const first = gate();
  const second = gate<string>();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  let report: Promise<string> | undefined;
  app.post("/", (c) => {
    c.var.tasks.run("index-update", () => first.promise);
    report = c.var.tasks.runWithResult("report", () => second.promise).value;
    return c.body(null, 202);
  });
  const response = await app.request("/", { method: "POST" }, {}, ctx);
  assert.equal(response.status, 202);
  assert.equal(kept.length, 2);
  assert.equal(await isSettled(kept[0]), false);
  assert.equal(await isSettled(kept[1]), false);
  first.resolve();
  await kept[0];
  assert.equal(await isSettled(kept[1]), false);
  second.resolve("/reports/7.pdf");
  await kept[1];
  assert.equal(await report, "/reports/7.pdf");
  assert.equal(kept.length, 2);
});

test("backgroundTasks() passes waitUntil a promise that resolves when a task fails", async () => {
  const errors: string[] = [];
  const tasks = new TaskManager({
    onError: (error) => errors.push((error as Error).message),
  });
  const { ctx, kept } = executionContext();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  app.get("/", (c) => {
    c.var.tasks.run("flaky", () => {
      throw new Error("SMTP unavailable");
    });
    return c.text("ok");
  });
  await app.request("/", {}, {}, ctx);
  assert.equal(kept.length, 1);
  assert.equal(await kept[0], undefined);
  assert.deepEqual(errors, ["SMTP unavailable"]);
});

test("c.var.tasks.group() registers each added task with waitUntil", async () => {
  const tasks = new TaskManager();
  const { ctx, kept } = executionContext();
  const release = gate();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  let group: TaskGroup | undefined;
  app.post("/upload", (c) => {
    group = c.var.tasks.group({ concurrency: 2 });
    for (const size of [150, 300, 600]) {
      group.add(`thumb-${size}`, async () => {
        await release.promise;
        return `photo-${size}.jpg`;
      });
    }
    return c.body(null, 202);
  });
  await app.request("/upload", { method: "POST" }, {}, ctx);
  assert.ok(group !== undefined);
  assert.equal(kept.length, 3);
  await flush();
  assert.equal(group.activeCount, 2);
  assert.equal(await isSettled(Promise.all(kept)), false);
  release.resolve();
  const results = await group.awaitAll();
  assert.deepEqual(
    results.map((r) => r.status === "fulfilled" ? r.value : r.status),
    ["photo-150.jpg", "photo-300.jpg", "photo-600.jpg"],
  );
  await Promise.all(kept);
});

test("c.var.tasks.group().cancel() cancels the group's tasks and settles their waitUntil promises", async () => {
  const tasks = new TaskManager();
  const { ctx, kept } = executionContext();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  let group: TaskGroup | undefined;
  app.get("/", (c) => {
    group = c.var.tasks.group();
    group.add(
      "watch",
      ({ signal }) =>
        new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => resolve())
        ),
    );
    return c.text("ok");
  });
  await app.request("/", {}, {}, ctx);
  assert.ok(group !== undefined);
  await flush();
  assert.equal(group.cancel(), 1);
  const [result] = await group.awaitAll();
  assert.equal(result.status, "cancelled");
  await Promise.all(kept);
  assert.equal(kept.length, 1);
});

test("backgroundTasks() registers nothing without an execution context", async () => {
  // The manager's own waitUntil is used only when no per-task one is given:
  // it is called for every task, so the middleware added none.
  const registered: Promise<void>[] = [];
  const tasks = new TaskManager({
    waitUntil: (promise) => registered.push(promise),
  });
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  app.get("/", (c) => {
    assert.throws(() => c.executionCtx); // Deno, Bun and Node have none
    c.var.tasks.run("a", () => {});
    c.var.tasks.runWithResult("b", () => 1);
    c.var.tasks.group().add("c", () => 2);
    return c.text("ok");
  });
  await app.request("/");
  assert.equal(registered.length, 3);
  await Promise.all(registered);
});

test("backgroundTasks() lets a task's own waitUntil replace the request's", async () => {
  const tasks = new TaskManager();
  const { ctx, kept } = executionContext();
  const own: Promise<void>[] = [];
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  app.get("/", (c) => {
    const waitUntil = (promise: Promise<void>) => {
      own.push(promise);
    };
    c.var.tasks.run("a", () => {}, { waitUntil });
    c.var.tasks.runWithResult("b", () => 1, { waitUntil });
    c.var.tasks.group().add("c", () => 2, { waitUntil });
    c.var.tasks.run("d", () => {}, { timeout: 1000 });
    return c.text("ok");
  });
  await app.request("/", {}, {}, ctx);
  assert.equal(own.length, 3);
  assert.equal(kept.length, 1); // only "d", which kept its other options
  await Promise.all([...own, ...kept]);
  await tasks.idle();
});

test("backgroundTasks() does not tie tasks to the request's signal", async () => {
  const tasks = new TaskManager();
  const client = new AbortController();
  const release = gate();
  let aborted: boolean | undefined;
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  app.get("/", (c) => {
    c.var.tasks.run("outlives", async ({ signal }) => {
      await release.promise;
      aborted = signal.aborted;
    });
    return c.text("ok");
  });
  const response = await app.request("/", { signal: client.signal });
  assert.equal(await response.text(), "ok");
  client.abort();
  release.resolve();
  await tasks.idle();
  assert.equal(aborted, false);
});

test("c.var.tasks.run() leaves bad options to the manager's checks", async () => {
  const tasks = new TaskManager();
  const { ctx } = executionContext();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  let thrown: unknown;
  app.get("/", (c) => {
    try {
      c.var.tasks.run("bad", () => {}, "fast" as never);
    } catch (error) {
      thrown = error;
    }
    return c.text("ok");
  });
  await app.request("/", {}, {}, ctx);
  assert.ok(thrown instanceof TypeError);
  assert.match(thrown.message, /'options' must be an object, received "fast"/);
  assert.equal(tasks.pendingCount + tasks.activeCount, 0);
});

test("backgroundTasks() rejects a manager that is not a TaskManager", () => {
  assert.throws(() => backgroundTasks({} as TaskManager), {
    name: "TypeError",
    message:
      "Cannot create backgroundTasks middleware: 'manager' must be a TaskManager, received an object",
  });
  assert.throws(() => backgroundTasks(undefined as unknown as TaskManager), {
    name: "TypeError",
    message: /received undefined/,
  });
  // A manager from another copy of the package (another version, say).
  class TaskManager2 {}
  Object.defineProperty(TaskManager2, "name", { value: "TaskManager" });
  assert.throws(
    () => backgroundTasks(new TaskManager2() as unknown as TaskManager),
    {
      name: "TypeError",
      message:
        "Cannot create backgroundTasks middleware: 'manager' must be a TaskManager, received an instance of TaskManager from another copy of @background/tasks: import the manager and the middleware from the same one",
    },
  );
});

test("c.var.tasks keeps a task's inherited or getter options where it adds waitUntil", async () => {
  const tasks = new TaskManager({ onError: () => {} });
  const { ctx, kept } = executionContext();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks));
  const reason = new Error("request aborted");
  class Options {
    get signal() {
      return AbortSignal.abort(reason);
    }
  }
  let handles: { status: string; value: Promise<unknown> }[] = [];
  app.post("/", (c) => {
    handles = [
      c.var.tasks.runWithResult("getter signal", () => "ran", new Options()),
      c.var.tasks.runWithResult(
        "inherited timeout",
        ({ signal }) =>
          new Promise((_, reject) =>
            signal.addEventListener("abort", () => reject(signal.reason))
          ),
        Object.create({ timeout: 1 }),
      ),
    ];
    return c.body(null, 202);
  });
  await app.request("/", { method: "POST" }, {}, ctx);
  const outcomes = await Promise.all(
    handles.map((handle) => handle.value.catch((error) => error)),
  );
  assert.equal(outcomes[0], reason);
  assert.equal((outcomes[1] as Error).name, "TimeoutError");
  assert.equal(kept.length, 2, "each still registered with waitUntil");
  await Promise.all(kept);
});

test("backgroundTasks() with executionContext: false never reads c.executionCtx", async () => {
  const registered: Promise<void>[] = [];
  const tasks = new TaskManager({
    waitUntil: (promise) => registered.push(promise),
  });
  // A context whose waitUntil records each read: the default reads it for a
  // request with tasks; `false` never does, and uses the manager's own.
  let reads = 0;
  const { ctx, kept } = executionContext();
  const counted = {
    ...ctx,
    get waitUntil() {
      reads++;
      return ctx.waitUntil;
    },
  };
  const handler = (c: Context<BackgroundTasksEnv>) => {
    c.var.tasks.run("a", () => {});
    c.var.tasks.group().add("b", () => 1);
    return c.text("ok");
  };
  const probing = new Hono<BackgroundTasksEnv>();
  probing.use(backgroundTasks(tasks, { executionContext: true }));
  probing.get("/", handler);
  const skipping = new Hono<BackgroundTasksEnv>();
  skipping.use(backgroundTasks(tasks, { executionContext: false }));
  skipping.get("/", handler);

  assert.equal((await probing.request("/", {}, {}, counted)).status, 200);
  const readsWhenProbing = reads;
  assert.ok(readsWhenProbing > 0);
  assert.equal(kept.length, 2);
  assert.equal(registered.length, 0);

  assert.equal((await skipping.request("/", {}, {}, counted)).status, 200);
  assert.equal(reads, readsWhenProbing, "not read at all");
  assert.equal(kept.length, 2);
  assert.equal(
    registered.length,
    2,
    "the manager's waitUntil, as without a context",
  );
  await Promise.all([...kept, ...registered]);
  assert.equal(tasks.activeCount + tasks.pendingCount, 0);
});

test("backgroundTasks() rejects options of the wrong type, naming them", () => {
  const tasks = new TaskManager();
  assert.throws(
    () =>
      backgroundTasks(tasks, { executionContext: "no" as unknown as boolean }),
    {
      name: "TypeError",
      message:
        `Cannot create backgroundTasks middleware: 'executionContext' must be a boolean, received "no"`,
    },
  );
  assert.throws(
    () => backgroundTasks(tasks, 5 as unknown as { executionContext: boolean }),
    { name: "TypeError", message: /'options' must be an object, received 5/ },
  );
  assert.throws(
    () =>
      backgroundTasks(tasks, null as unknown as { executionContext: boolean }),
    {
      name: "TypeError",
      message: /'options' must be an object, received null/,
    },
  );
  // Left out, or undefined, the default (true) holds.
  backgroundTasks(tasks, {});
  backgroundTasks(tasks, { executionContext: undefined });
});

test("c.var.tasks.group() is the core's TaskGroup: it can be disposed", async () => {
  const tasks = new TaskManager();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks, { executionContext: false }));
  let aborted = false;
  app.get("/", async (c) => {
    // What `await using group = c.var.tasks.group()` does at the end of the
    // scope (written out: Node 22 cannot parse `await using`).
    const group = c.var.tasks.group();
    group.add(
      "watch",
      ({ signal }) =>
        new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => {
            aborted = true;
            resolve();
          })
        ),
    );
    await flush();
    await group[Symbol.asyncDispose]();
    return c.text("ok");
  });
  assert.equal(await (await app.request("/")).text(), "ok");
  assert.equal(aborted, true);
  assert.equal(tasks.activeCount, 0);
});

test("backgroundTasks() answers 503 with Retry-After and Connection: close once the manager shuts down", async () => {
  const tasks = new TaskManager();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks, { executionContext: false, retryAfter: 7 }));
  let handled = 0;
  const release = gate();
  app.post("/orders", (c) => {
    handled++;
    c.var.tasks.run("send-confirmation", () => release.promise);
    return c.json({ ok: true }, 201);
  });
  assert.equal((await app.request("/orders", { method: "POST" })).status, 201);
  const shutdown = tasks.shutdown({ timeout: 60_000 });
  const response = await app.request("/orders", { method: "POST" });
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "7");
  assert.equal(response.headers.get("connection"), "close");
  assert.match(await response.text(), /shutting down/);
  assert.equal(handled, 1, "the handler did not run");
  release.resolve();
  assert.deepEqual(await shutdown, {
    completed: 1,
    cancelled: 0,
    abandoned: [],
  });
});

test("backgroundTasks() lets a request already in its handler finish, the tasks it starts included", async () => {
  const tasks = new TaskManager();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks, { executionContext: false }));
  const inHandler = gate();
  const release = gate();
  let sent = false;
  app.post("/orders", async (c) => {
    inHandler.resolve();
    await release.promise; // the shutdown begins while it waits here
    c.var.tasks.run("send-confirmation", () => {
      sent = true;
    });
    return c.json({ ok: true }, 201);
  });
  const pending = app.request("/orders", { method: "POST" });
  await inHandler.promise;
  let done = false;
  const shutdown = tasks.shutdown({ timeout: 60_000 }).then((report) => {
    done = true;
    return report;
  });
  await flush();
  assert.equal(done, false, "the shutdown waits for the request");
  release.resolve();
  assert.equal((await pending).status, 201);
  assert.deepEqual(await shutdown, {
    completed: 1,
    cancelled: 0,
    abandoned: [],
  });
  assert.equal(sent, true);
});

test("backgroundTasks() answers 503, not 500, for a task started after the shutdown gave up waiting", async () => {
  const tasks = new TaskManager();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks, { executionContext: false }));
  // Hono's default error handler would log the error; an app's own can tell
  // this one from real failures.
  let seen: unknown;
  app.onError((error, c) => {
    seen = error;
    return c.text("Internal server error", 500);
  });
  const inHandler = gate();
  const release = gate();
  app.post("/orders", async (c) => {
    inHandler.resolve();
    await release.promise;
    c.var.tasks.run("send-confirmation", () => {});
    return c.json({ ok: true }, 201);
  });
  const pending = app.request("/orders", { method: "POST" });
  await inHandler.promise;
  await tasks.shutdown({ timeout: 1, grace: 1 });
  release.resolve();
  const response = await pending;
  assert.ok(seen instanceof ManagerClosedError);
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "5");
  assert.equal(response.headers.get("connection"), "close");
});

test("backgroundTasks() lets allowed paths through while shutting down, and answers the readiness path", async () => {
  const tasks = new TaskManager();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks, {
    executionContext: false,
    allow: ["/health"],
    readiness: "/ready",
  }));
  app.get("/health", (c) => c.json({ ok: true }));
  app.get("/other", (c) => c.text("other"));
  const ready = await app.request("/ready");
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true });
  await tasks.shutdown();
  assert.equal((await app.request("/health")).status, 200);
  assert.equal((await app.request("/other")).status, 503);
  const notReady = await app.request("/ready");
  assert.equal(notReady.status, 503);
  assert.equal(notReady.headers.get("connection"), "close");
  // A function decides as well.
  const byFunction = new Hono<BackgroundTasksEnv>();
  byFunction.use(backgroundTasks(tasks, {
    executionContext: false,
    allow: (c) => c.req.method === "GET",
  }));
  byFunction.get("/", (c) => c.text("ok"));
  byFunction.post("/", (c) => c.text("ok"));
  assert.equal((await byFunction.request("/")).status, 200);
  assert.equal((await byFunction.request("/", { method: "POST" })).status, 503);
});

test("backgroundTasks() rejects bad draining options with a clear error", () => {
  const tasks = new TaskManager();
  assert.throws(() => backgroundTasks(tasks, { retryAfter: -1 }), {
    name: "RangeError",
    message:
      "Cannot create backgroundTasks middleware: 'retryAfter' must be a whole number of seconds from 0, received -1",
  });
  assert.throws(() => backgroundTasks(tasks, { allow: ["health"] }), {
    name: "TypeError",
    message:
      "Cannot create backgroundTasks middleware: 'allow' must be an array of paths or a function, received an array",
  });
  assert.throws(() => backgroundTasks(tasks, { readiness: "ready" }), {
    name: "TypeError",
    message:
      'Cannot create backgroundTasks middleware: \'readiness\' must be a path that starts with "/", received "ready"',
  });
});

test("backgroundTasks() answers while shutting down with the unavailable option's response, headers kept", async () => {
  const tasks = new TaskManager();
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks, {
    executionContext: false,
    unavailable: (c) => c.json({ error: "The server is shutting down" }, 503),
  }));
  app.get("/", (c) => c.text("ok"));
  await tasks.shutdown();
  const response = await app.request("/");
  assert.equal(response.status, 503);
  assert.deepEqual(await response.json(), {
    error: "The server is shutting down",
  });
  assert.equal(response.headers.get("retry-after"), "5");
  assert.equal(response.headers.get("connection"), "close");
  assert.throws(
    () => backgroundTasks(tasks, { unavailable: "503" as never }),
    /'unavailable' must be a function, received "503"/,
  );
});

test("c.var.tasks takes retry, priority and progress as the manager does", async () => {
  const tasks = new TaskManager({ concurrency: 1 });
  const app = new Hono<BackgroundTasksEnv>();
  app.use(backgroundTasks(tasks, { executionContext: false }));
  const order: string[] = [];
  const progress: unknown[] = [];
  tasks.addEventListener("progress", (event) => progress.push(event.value));
  const release = gate();
  app.post("/", (c) => {
    c.var.tasks.run("blocker", async ({ progress }) => {
      progress(0.5);
      await release.promise;
    });
    c.var.tasks.run("low", () => void order.push("low"), { priority: -1 });
    c.var.tasks.run("flaky", ({ attempt }) => {
      order.push(`flaky#${attempt}`);
      if (attempt === 1) throw new Error("once");
    }, { priority: 1, retry: { attempts: 2, backoff: 0 } });
    return c.body(null, 202);
  });
  assert.equal((await app.request("/", { method: "POST" })).status, 202);
  await flush();
  release.resolve();
  await tasks.idle();
  assert.deepEqual(order, ["flaky#1", "low", "flaky#2"]);
  assert.deepEqual(progress, [0.5]);
});
