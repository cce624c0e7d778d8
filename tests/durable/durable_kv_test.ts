// DenoKvBackend on a real Deno KV (a SQLite file in a temporary folder), in
// this process and across consumer processes (fixtures/worker.ts).
// Deno only: Bun and Node have no Deno.openKv, so under them this file
// registers no test at all (the backend is not theirs to run). Under Deno
// the project's deno.json turns Deno KV on; without it the tests fail.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TaskManager } from "../../mod.ts";
import { DenoKvBackend, DurableQueue } from "../../src/durable/mod.ts";
import type { KvDatabase } from "../../src/durable/mod.ts";
import { Child, within } from "./fixtures/_process.ts";
import {
  backendScenarios,
  enqueueOnce,
  processScenarios,
  settles,
  starts,
  turnScenario,
} from "./fixtures/_scenarios.ts";
import { gate, test } from "../_harness.ts";

type Deno = { openKv(path: string): Promise<KvDatabase> };
const deno = (globalThis as { Deno?: Deno }).Deno;

/** A test that needs Deno KV: registered under Deno only. */
function kvTest(name: string, fn: (file: string) => Promise<void>): void {
  if (deno === undefined) return;
  test(name, async () => {
    const folder = await mkdtemp(join(tmpdir(), "durable-kv-"));
    try {
      await fn(join(folder, "tasks.sqlite"));
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
}

/**
 * Deno KV hands a message whose process died to another process only once
 * its lease ran out: 5 s after the dead process last renewed it. This is
 * Deno KV's constant, not ours; the tests wait it out with a margin.
 */
const KV_LEASE = 5_000 + 700;

const WORKER = "./worker.ts";

/** Enqueues one task from this process. */
async function enqueue(
  file: string,
  name: string,
  payload: unknown,
): Promise<string> {
  return enqueueOnce(await DenoKvBackend.open(file), name, payload);
}

/** The keys left under the backend's prefix (state records, dead letters). */
async function keys(file: string): Promise<string[]> {
  const kv = await deno!.openKv(file);
  try {
    const found: string[] = [];
    for await (
      const entry of kv.list({ prefix: ["@background/tasks/durable"] })
    ) {
      found.push(String(entry.key[1]));
    }
    return found;
  } finally {
    kv.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

turnScenario(
  "DenoKvBackend",
  (name, body) =>
    kvTest(name, (file) => body({ open: () => DenoKvBackend.open(file) })),
);

backendScenarios("DenoKvBackend", (name, body) =>
  kvTest(name, (file) =>
    body({
      open: () => DenoKvBackend.open(file),
      afterwards: async (left) =>
        assert.deepEqual(await keys(file), left === "nothing" ? [] : ["dead"]),
      // Deno KV stores due times in whole milliseconds.
      earlyBy: 1,
      // Deno KV hands a process at most 100 messages at once, in the order
      // they came due; the backend puts the due ones first among those.
      backlog: 60,
      dueMargin: 1000,
    })));

processScenarios("DenoKvBackend", (name, body) =>
  kvTest(name, (file) =>
    body({
      kind: "kv",
      location: file,
      options: { pollInterval: 100 },
      open: () => DenoKvBackend.open(file),
      afterKill: () => sleep(KV_LEASE),
      earlyBy: 1,
    })));

kvTest(
  "DenoKvBackend hands the manager at most `concurrency` tasks at once",
  async (file) => {
    const queue = new DurableQueue(await DenoKvBackend.open(file));
    const hold = gate();
    let running = 0;
    let most = 0;
    // Counted in the handler: a task's `start` event comes before its
    // attempt is recorded, and its handler after.
    const two = gate();
    queue.define("t", async () => {
      most = Math.max(most, ++running);
      if (running === 2) two.resolve();
      await hold.promise;
      running--;
    });
    const tasks = new TaskManager();
    const settled = settles(tasks, 4);
    for (let i = 0; i < 4; i++) await queue.enqueue("t", i);
    queue.consume(tasks, { concurrency: 2 });
    await within(two.promise, 10_000, () => "two tasks did not start");
    assert.equal(tasks.activeCount + tasks.pendingCount, 2);
    hold.resolve();
    await settled;
    assert.equal(most, 2);
    await tasks.shutdown();
    await queue.close();
  },
);

kvTest(
  "DenoKvBackend: what a closing queue holds is handed back to the next consumer, attempts not counted",
  async (file) => {
    const first = new DurableQueue(await DenoKvBackend.open(file));
    let second: DurableQueue | undefined;
    try {
      first.define(
        "sync",
        (_payload, { signal }) =>
          new Promise<void>((_, reject) =>
            signal.addEventListener("abort", () => reject(signal.reason))
          ),
      );
      const a = new TaskManager();
      // Both deliveries must have reached this process before it closes: a
      // message Deno KV leased to a process but had not handed over yet when
      // the database closed comes back only when its lease runs out.
      const started = starts(a, 2);
      const ids = [
        await first.enqueue("sync", 1),
        await first.enqueue("sync", 2),
      ];
      first.consume(a, { concurrency: 2 });
      await started;
      assert.deepEqual(await a.shutdown({ timeout: 0 }), {
        completed: 0,
        cancelled: 2,
        abandoned: [],
      });
      await first.close();

      second = new DurableQueue(await DenoKvBackend.open(file));
      const seen: [string, number][] = [];
      second.define("sync", (_payload, { id, attempt }) => {
        seen.push([id, attempt]);
      });
      const b = new TaskManager();
      const settled = settles(b, 2);
      second.consume(b, { concurrency: 2 });
      await settled;
      await b.shutdown();
      assert.deepEqual(seen.sort(), ids.map((id) => [id, 1]).sort());
    } finally {
      await first.close();
      await second?.close();
    }
    assert.deepEqual(await keys(file), []);
  },
);

kvTest(
  "DenoKvBackend: a consumer process runs a task that this process enqueues",
  async (file) => {
    const worker = new Child(WORKER, ["kv", file, '{"pollInterval":100}']);
    try {
      await worker.waitFor({ event: "ready" });
      const id = await enqueue(file, "record", { n: 1 });
      const done = await worker.waitFor({ event: "done", id });
      assert.deepEqual(done.payload, { n: 1 });
      assert.equal(done.attempt, 1);
      worker.kill("SIGTERM");
      await worker.waitFor({ event: "closed" });
    } finally {
      await worker.stop();
    }
    assert.deepEqual(await keys(file), []);
  },
);

kvTest("DenoKvBackend.open() refuses a bad path and options", async () => {
  await assert.rejects(DenoKvBackend.open(7 as unknown as string), {
    name: "TypeError",
    message: "Cannot open DenoKvBackend: 'path' must be a string, received 7",
  });
  await assert.rejects(DenoKvBackend.open(undefined, { pollInterval: 0 }), {
    name: "RangeError",
    message:
      "Cannot open DenoKvBackend: 'pollInterval' must be a positive number of milliseconds up to 2147483647, or Infinity, received 0",
  });
});

kvTest(
  "DenoKvBackend: a dead letter Deno KV wrote itself is listed with the time it was found, once",
  async (file) => {
    const backend = await DenoKvBackend.open(file);
    const queue = new DurableQueue(backend);
    queue.define("job", () => {});
    const id = await queue.enqueue("job", 1, { delay: 60_000 });
    // What Deno KV writes to `keysIfUndelivered` when its own redeliveries
    // run out: the queue message as enqueued.
    const root = "@background/tasks/durable";
    const kv = await deno!.openKv(file);
    const state = await kv.get([root, "task", id]);
    const enqueuedAt = Date.now() - 10_000;
    await kv.atomic().set([root, "dead", id], {
      kind: root,
      seq: (state.value as { seq: number }).seq,
      message: {
        id,
        name: "job",
        payload: 1,
        attempts: 3,
        backoff: 10,
        enqueuedAt,
      },
    }).commit();
    kv.close();
    const before = Date.now();
    const [letter] = await queue.deadLetters();
    assert.ok(letter.failedAt.getTime() >= before, "not the enqueue time");
    assert.deepEqual({ ...letter, failedAt: undefined }, {
      id,
      name: "job",
      payload: 1,
      attempts: 0,
      error: "Deno KV gave up delivering it before any attempt was recorded",
      failedAt: undefined,
    });
    const [again] = await queue.deadLetters();
    assert.equal(again.failedAt.getTime(), letter.failedAt.getTime());
    await queue.close();
    assert.deepEqual(await keys(file), ["dead"], "its state record is gone");
  },
);

kvTest(
  "DenoKvBackend: close() waits for the enqueues in progress; every one is stored",
  async (file) => {
    const queue = new DurableQueue(await DenoKvBackend.open(file));
    queue.define("job", () => {});
    const ids = Array.from({ length: 5 }, (_, n) => queue.enqueue("job", n));
    await queue.close();
    assert.equal((await Promise.all(ids)).length, 5);
    assert.deepEqual(await keys(file), [
      "task",
      "task",
      "task",
      "task",
      "task",
    ]);
  },
);
