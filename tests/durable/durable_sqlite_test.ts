// SqliteBackend on a real SQLite file in a temporary folder, on every
// runtime (node:sqlite on Deno and Node, bun:sqlite on Bun): in this process,
// across consumer processes (fixtures/worker.ts) of the runtime that runs the
// test, and across processes of two different runtimes on one file.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TaskManager } from "../../mod.ts";
import { DurableQueue, SqliteBackend } from "../../src/durable/mod.ts";
import { openSqlite } from "../../src/durable/_sqlite_driver.ts";
import { Child, otherRuntime } from "./fixtures/_process.ts";
import {
  backendScenarios,
  enqueueOnce,
  processScenarios,
  settles,
  turnScenario,
  waitUntil,
} from "./fixtures/_scenarios.ts";
import { gate, test } from "../_harness.ts";

/** A test with a fresh folder for its file. */
function sqliteTest(name: string, fn: (file: string) => Promise<void>): void {
  test(name, async () => {
    const folder = await mkdtemp(join(tmpdir(), "durable-sqlite-"));
    try {
      await fn(join(folder, "queue.sqlite"));
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
}

/** How many rows each table holds. */
async function rows(file: string): Promise<{ tasks: number; dead: number }> {
  const db = await openSqlite(file);
  try {
    const count = (table: string) =>
      db.get(`SELECT COUNT(*) AS n FROM ${table}`)!.n as number;
    return {
      tasks: count("background_tasks"),
      dead: count("background_dead_letters"),
    };
  } finally {
    db.close();
  }
}

const WORKER = "./worker.ts";
/** Short leases and polls, so that the process tests take seconds. */
const OPTIONS = { leaseDuration: 1000, pollInterval: 50 };

turnScenario(
  "SqliteBackend",
  (name, body) =>
    sqliteTest(name, (file) => body({ open: () => SqliteBackend.open(file) })),
);

backendScenarios(
  "SqliteBackend",
  (name, body) =>
    sqliteTest(name, (file) =>
      body({
        open: () => SqliteBackend.open(file),
        afterwards: async (left) =>
          assert.deepEqual(
            await rows(file),
            left === "nothing" ? { tasks: 0, dead: 0 } : { tasks: 0, dead: 1 },
          ),
      })),
);

processScenarios(
  "SqliteBackend",
  (name, body) =>
    sqliteTest(name, (file) =>
      body({
        kind: "sqlite",
        location: file,
        options: OPTIONS,
        open: () => SqliteBackend.open(file, OPTIONS),
      })),
);

sqliteTest(
  "SqliteBackend wakes a consumer of this process at once when it enqueues, not at the next poll",
  async (file) => {
    // A poll of a minute: only the enqueue's own wake-up can start the task
    // within the 10 s that `settles` waits.
    const backend = await SqliteBackend.open(file, { pollInterval: 60_000 });
    const queue = new DurableQueue(backend);
    queue.define("ping", () => {});
    const tasks = new TaskManager();
    const settled = settles(tasks, 2);
    queue.consume(tasks);
    await queue.enqueue("ping", 1);
    // And a second backend of the process on the same file wakes it too.
    const other = await SqliteBackend.open(file);
    await enqueueOnce(other, "ping", 2);
    await settled;
    await tasks.shutdown();
    await queue.close();
    assert.deepEqual(await rows(file), { tasks: 0, dead: 0 });
  },
);

sqliteTest(
  "SqliteBackend: a consumer process finds a task this process enqueues within its poll",
  async (file) => {
    const worker = new Child(WORKER, [
      "sqlite",
      file,
      JSON.stringify({ pollInterval: 100 }),
    ]);
    try {
      await worker.waitFor({ event: "ready" });
      const enqueuedAt = Date.now();
      const id = await enqueueOnce(await SqliteBackend.open(file), "record", {
        n: 1,
      });
      const done = await worker.waitFor({ event: "done", id });
      assert.deepEqual(done.payload, { n: 1 });
      assert.equal(done.attempt, 1);
      console.log(
        `SqliteBackend: found by the other process in ${
          (done.at as number) - enqueuedAt
        } ms (poll: 100 ms)`,
      );
      worker.kill("SIGTERM");
      await worker.waitFor({ event: "closed" });
    } finally {
      await worker.stop();
    }
    assert.deepEqual(await rows(file), { tasks: 0, dead: 0 });
  },
);

sqliteTest(
  "SqliteBackend: processes of two runtimes share one file; a task killed in one runs in the other as attempt 2",
  async (file) => {
    const other = otherRuntime();
    const here = new Child(WORKER, [
      "sqlite",
      file,
      JSON.stringify({ ...OPTIONS, hang: true }),
    ]);
    let there: Child | undefined;
    try {
      await here.waitFor({ event: "ready" });
      const [id] = await Promise.all([
        enqueueOnce(await SqliteBackend.open(file), "hang", {}),
      ]);
      await here.waitFor({ event: "start", id, attempt: 1 });
      there = new Child(
        WORKER,
        ["sqlite", file, JSON.stringify({ ...OPTIONS, concurrency: 2 })],
        { runtime: other },
      );
      await there.waitFor({ event: "ready" });
      here.kill("SIGKILL");
      await here.exit();
      await there.waitFor({ event: "done", id, attempt: 2 });
      // Both runtimes on the file at once: the other one takes tasks that
      // this process enqueues.
      const ids: string[] = [];
      const backend = await SqliteBackend.open(file);
      const queue = new DurableQueue(backend);
      queue.define("record", () => {});
      for (let n = 0; n < 5; n++) ids.push(await queue.enqueue("record", n));
      await queue.close();
      for (const id of ids) await there.waitFor({ event: "done", id });
      // Its outcomes are written after the handler logs `done`: let it close.
      there.kill("SIGTERM");
      await there.waitFor({ event: "closed" });
    } finally {
      await here.stop();
      await there?.stop();
    }
    assert.deepEqual(await rows(file), { tasks: 0, dead: 0 });
  },
);

sqliteTest(
  "SqliteBackend renews the lease of a long task: no other process takes it",
  async (file) => {
    const lease = { leaseDuration: 300, pollInterval: 50 };
    const [id] = [
      await enqueueOnce(await SqliteBackend.open(file), "hang", {}),
    ];
    const a = new Child(WORKER, [
      "sqlite",
      file,
      JSON.stringify({ ...lease, hang: true }),
    ]);
    let b: Child | undefined;
    try {
      await a.waitFor({ event: "start", id, attempt: 1 });
      b = new Child(WORKER, ["sqlite", file, JSON.stringify(lease)]);
      await b.waitFor({ event: "ready" });
      // A negative: nothing may happen for several leases (each 300 ms, renewed
      // every 100 ms); then A hands it back and B takes it.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(b.events.some((e) => e.id === id), false, b.output.join());
      a.kill("SIGTERM");
      await b.waitFor({ event: "done", id, attempt: 1 });
    } finally {
      await a.stop();
      await b?.stop();
    }
  },
);

sqliteTest(
  "SqliteBackend: an enqueue that cannot get the write lock within busyTimeout rejects; the next one stores",
  async (file) => {
    const backend = await SqliteBackend.open(file, { busyTimeout: 100 });
    const queue = new DurableQueue(backend);
    queue.define("t", () => {});
    const holder = await openSqlite(file);
    try {
      holder.run("BEGIN IMMEDIATE");
      await assert.rejects(queue.enqueue("t", 1), /locked|busy/i);
      holder.run("COMMIT");
      assert.equal(typeof await queue.enqueue("t", 2), "string");
    } finally {
      holder.close();
      await queue.close();
    }
    assert.deepEqual(await rows(file), { tasks: 1, dead: 0 });
  },
);

sqliteTest(
  "SqliteBackend: close() hands back at once the tasks that had not started; a started one comes back when its lease lapses, counted",
  async (file) => {
    const lease = { leaseDuration: 300, pollInterval: 20 };
    const first = new DurableQueue(await SqliteBackend.open(file, lease));
    const hold = gate();
    first.define("job", async (_n: number, { signal }) => {
      await Promise.race([
        hold.promise,
        new Promise((resolve) => signal.addEventListener("abort", resolve)),
      ]);
    });
    // Its waiting task, handed back, fails here when it starts: not its
    // handler, which does not run, but the start that the closed file refuses.
    const errors: string[] = [];
    const a = new TaskManager({
      concurrency: 1,
      onError: (error) => errors.push((error as Error).message),
    });
    const [started, waiting] = [
      await first.enqueue("job", 1),
      await first.enqueue("job", 2),
    ];
    first.consume(a, { concurrency: 2 });
    await waitUntil(
      () => a.activeCount === 1 && a.pendingCount === 1,
      () => `${a.activeCount} running, ${a.pendingCount} waiting`,
    );
    // Closed under the manager: the waiting task is handed back, the running
    // one keeps its lease, no longer renewed.
    await first.close({ timeout: 0 });
    const second = new DurableQueue(await SqliteBackend.open(file, lease));
    const seen: [string, number, number][] = [];
    const closedAt = Date.now();
    second.define("job", (_n: number, { id, attempt }) => {
      seen.push([id, attempt, Date.now() - closedAt]);
    });
    const b = new TaskManager();
    const settled = settles(b, 2);
    second.consume(b, { concurrency: 2 });
    await settled;
    assert.deepEqual(seen.map(([id, attempt]) => [id, attempt]), [
      [waiting, 1],
      [started, 2],
    ]);
    assert.ok(
      seen[0][2] < 300,
      `the handed-back task ran ${seen[0][2]} ms later`,
    );
    hold.resolve();
    await a.shutdown();
    assert.deepEqual(errors, ["The SqliteBackend is closed"]);
    await b.shutdown();
    await second.close();
    assert.deepEqual(await rows(file), { tasks: 0, dead: 0 });
  },
);

sqliteTest(
  'SqliteBackend with synchronous: "full" stores and runs tasks as with the default',
  async (file) => {
    const queue = new DurableQueue(
      await SqliteBackend.open(file, { synchronous: "full" }),
    );
    queue.define("t", () => {});
    const tasks = new TaskManager();
    const settled = settles(tasks, 1);
    queue.consume(tasks);
    await queue.enqueue("t", 1);
    assert.equal((await settled)[0].task.status, "fulfilled");
    await tasks.shutdown();
    await queue.close();
    assert.deepEqual(await rows(file), { tasks: 0, dead: 0 });
  },
);

test("SqliteBackend.open() refuses a bad path and options", async () => {
  await assert.rejects(SqliteBackend.open(7 as unknown as string), {
    name: "TypeError",
    message:
      "Cannot open SqliteBackend: 'path' must be a non-empty string, received 7",
  });
  await assert.rejects(SqliteBackend.open("x.sqlite", { leaseDuration: 0 }), {
    name: "RangeError",
    message:
      "Cannot open SqliteBackend: 'leaseDuration' must be a whole number of milliseconds from 1 to 2147483647, received 0",
  });
  await assert.rejects(
    SqliteBackend.open("x.sqlite", { pollInterval: "1s" as unknown as number }),
    {
      name: "TypeError",
      message:
        `Cannot open SqliteBackend: 'pollInterval' must be a number of milliseconds, received "1s"`,
    },
  );
  await assert.rejects(
    SqliteBackend.open("x.sqlite", {
      synchronous: "off" as unknown as "full",
    }),
    {
      name: "TypeError",
      message:
        `Cannot open SqliteBackend: 'synchronous' must be "normal" or "full", received "off"`,
    },
  );
  await assert.rejects(
    SqliteBackend.open(join(tmpdir(), "no-such-folder-here", "q.sqlite")),
    { name: "Error", message: /^Cannot open SqliteBackend: cannot open "/ },
  );
});
