// RedisBackend (BullMQ over ioredis) on a real redis-server that each test
// starts on a free port and stops, in this process and across consumer
// processes (fixtures/worker.ts) run by the same runtime as the test.
// Where redis-server is not installed, each test fails saying how to install
// it (`npm test` installs it first where it can).

import assert from "node:assert/strict";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { TaskManager } from "../../mod.ts";
import { DurableQueue, RedisBackend } from "../../src/durable/mod.ts";
import { Child } from "./fixtures/_process.ts";
import {
  backendScenarios,
  enqueueOnce,
  processScenarios,
  settles,
} from "./fixtures/_scenarios.ts";
import { freePort, type RedisServer, startRedis } from "./fixtures/_redis.ts";
import { test } from "../_harness.ts";

/** A test that needs a Redis server. */
function redisTest(
  name: string,
  fn: (server: RedisServer) => Promise<void>,
): void {
  test(name, async () => {
    const server = await startRedis();
    try {
      await fn(server);
    } finally {
      await server.stop();
    }
  });
}

const WORKER = "./worker.ts";
/** Short locks, so that a killed worker's task comes back within seconds. */
const WORKER_OPTIONS = JSON.stringify({ lockDuration: 1000 });

/** Enqueues one task from this process. */
async function enqueue(
  url: string,
  name: string,
  payload: unknown,
): Promise<string> {
  return enqueueOnce(await RedisBackend.open(url), name, payload);
}

backendScenarios(
  "RedisBackend",
  (name, body) =>
    redisTest(name, ({ url }) => body({ open: () => RedisBackend.open(url) })),
);

processScenarios(
  "RedisBackend",
  (name, body) =>
    redisTest(name, ({ url }) =>
      body({
        kind: "redis",
        location: url,
        options: { lockDuration: 1000 },
        open: () => RedisBackend.open(url),
        // BullMQ keeps due times in whole milliseconds.
        earlyBy: 1,
      })),
);

redisTest(
  "RedisBackend: a consumer process runs a task that this process enqueues",
  async ({ url }) => {
    const worker = new Child(WORKER, ["redis", url, WORKER_OPTIONS]);
    try {
      await worker.waitFor({ event: "ready" });
      const id = await enqueue(url, "record", { n: 1 });
      const done = await worker.waitFor({ event: "done", id });
      assert.deepEqual(done.payload, { n: 1 });
      assert.equal(done.attempt, 1);
      worker.kill("SIGTERM");
      await worker.waitFor({ event: "closed" });
    } finally {
      await worker.stop();
    }
  },
);

test("RedisBackend.open() rejects when no server answers", async () => {
  const port = await freePort();
  await assert.rejects(RedisBackend.open(`redis://127.0.0.1:${port}`), {
    name: "Error",
    message: new RegExp(
      `^Cannot open RedisBackend: cannot connect to Redis: .*ECONNREFUSED`,
    ),
  });
});

test("RedisBackend.open() refuses a bad URL and options", async () => {
  await assert.rejects(RedisBackend.open("http://127.0.0.1:6379"), {
    name: "TypeError",
    message:
      `Cannot open RedisBackend: 'url' must be a redis:// or rediss:// URL, received "http://..."`,
  });
  await assert.rejects(
    RedisBackend.open("redis://127.0.0.1:1", { queue: "a:b" }),
    {
      name: "TypeError",
      message:
        `Cannot open RedisBackend: 'queue' must be a non-empty string without ':', received "a:b"`,
    },
  );
  for (const [lockDuration, shown] of [[0, "0"], [1500.5, "1500.5"]] as const) {
    // Redis takes whole milliseconds only: 1500.5 used to be accepted, and
    // then every delivery failed.
    await assert.rejects(
      RedisBackend.open("redis://127.0.0.1:1", { lockDuration }),
      {
        name: "RangeError",
        message:
          `Cannot open RedisBackend: 'lockDuration' must be a whole number of milliseconds from 1 to 2147483647, received ${shown}`,
      },
    );
  }
});

redisTest(
  "RedisBackend: an error with an empty message is kept in the dead letter by its name",
  async ({ url }) => {
    const queue = new DurableQueue(await RedisBackend.open(url), {
      attempts: 1,
    });
    queue.define("fail", () => {
      throw new TypeError("");
    });
    const tasks = new TaskManager({ onError: () => {} });
    const settled = settles(tasks, 1);
    queue.consume(tasks);
    await queue.enqueue("fail", null);
    await settled;
    let letters = await queue.deadLetters();
    for (let i = 0; letters.length === 0 && i < 50; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      letters = await queue.deadLetters();
    }
    assert.equal(letters[0]?.error, "TypeError");
    await tasks.shutdown();
    await queue.close();
  },
);

redisTest(
  "RedisBackend: a retry waits 30 days at most, however many attempts failed",
  async ({ url }) => {
    const DAY = 24 * 60 * 60 * 1000;
    const queue = new DurableQueue(await RedisBackend.open(url), {
      attempts: 3,
      backoff: 20 * DAY,
    });
    queue.define("fail", () => {
      throw new Error("no");
    });
    const tasks = new TaskManager({ onError: () => {} });
    queue.consume(tasks);
    const raw = new Redis(url);
    const bull = new Queue("background-tasks", { connection: raw });
    try {
      const id = await queue.enqueue("fail", null);
      /** Days until the task is due again, once it waits for its retry. */
      const waits = async (): Promise<number> => {
        for (let i = 0; i < 250; i++) {
          const score = await raw.zscore("bull:background-tasks:delayed", id);
          if (score !== null) {
            return (Math.floor(Number(score) / 0x1000) - Date.now()) / DAY;
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        throw new Error("the task never waited for a retry");
      };
      const first = await waits();
      assert.ok(first > 19.9 && first <= 20, `${first} days`);
      // As if 20 days had passed: attempt 2 runs and fails; doubling would
      // make the next wait 40 days.
      await (await bull.getJob(id))!.promote();
      const settledAt = Date.now();
      while ((await raw.zscore("bull:background-tasks:delayed", id)) !== null) {
        if (Date.now() - settledAt > 5000) throw new Error("not promoted");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const second = await waits();
      assert.ok(second > 29.9 && second <= 30, `${second} days`);
    } finally {
      await bull.close();
      raw.disconnect();
      await tasks.shutdown();
      await queue.close();
    }
  },
);

redisTest(
  "RedisBackend: close() ends while Redis is unreachable",
  async (server) => {
    const backend = await RedisBackend.open(server.url);
    const queue = new DurableQueue(backend);
    await server.stop();
    const closed = queue.close().then(() => "closed");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise((resolve) => {
      timer = setTimeout(resolve, 5000, "hung");
    });
    try {
      assert.equal(await Promise.race([closed, late]), "closed");
    } finally {
      clearTimeout(timer);
    }
    // ioredis's disconnect() may leave a timer of its own (to destroy a
    // socket that already closed, 2 s by default); let it run out.
    await new Promise((resolve) => setTimeout(resolve, 2100));
  },
);
