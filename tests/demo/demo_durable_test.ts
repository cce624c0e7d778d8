// The demo server's durable mode over real HTTP, on SQLite (DURABLE=sqlite:
// a file in DATA_DIR, no server) and on Redis (REDIS_URL: each test starts its
// own redis-server on 127.0.0.1, no persistence), with demo processes, one on
// Deno and one on Bun, that share the queue and one DATA_DIR; every process is
// killed in `finally`. Where redis-server is not installed, each Redis test
// fails saying how to install it (`npm test` installs it first where it can).

import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { TaskManager } from "../../mod.ts";
import { DurableQueue, RedisBackend } from "../../src/durable/mod.ts";
import { within } from "../durable/fixtures/_process.ts";
import { type RedisServer, startRedis } from "../durable/fixtures/_redis.ts";
import {
  type DemoServer,
  gradient,
  photoForm,
  poll,
  removeDir,
  request,
  type Runtime,
  startDemo,
  tempDir,
} from "./fixtures/server.ts";
import { test } from "../_harness.ts";

// Bun gives each test 5 s by default; a test here starts two servers.
if ((process.versions as Record<string, string | undefined>).bun) {
  const bunTest = "bun:test";
  const { setDefaultTimeout } = await import(bunTest);
  setDefaultTimeout(60_000);
}

/** A test that needs a Redis server; it gets a fresh one and a fresh DATA_DIR. */
function redisTest(
  name: string,
  fn: (redis: RedisServer, dataDir: string) => Promise<void>,
): void {
  test(name, async () => {
    const redis = await startRedis();
    const dataDir = await tempDir();
    try {
      await fn(redis, dataDir);
    } finally {
      await redis.stop();
      await removeDir(dataDir);
    }
  });
}

/** A test of the SQLite mode: it gets a fresh DATA_DIR, and needs no server. */
function sqliteTest(
  name: string,
  fn: (dataDir: string) => Promise<void>,
): void {
  test(name, async () => {
    const dataDir = await tempDir();
    try {
      await fn(dataDir);
    } finally {
      await removeDir(dataDir);
    }
  });
}

/**
 * The demo's durable mode on SQLite, as `durableEnv` for Redis: one queued
 * task at a time per process, short leases, one image worker.
 */
const SQLITE_ENV: Record<string, string> = {
  DURABLE: "sqlite",
  DURABLE_CONCURRENCY: "1",
  SQLITE_LEASE_MS: "1000",
  WORKERS: "1",
};

/**
 * The demo's durable mode on `redis`: one queued task at a time per process
 * (so that one process cannot take all the work at once), short locks (so
 * that a killed process's task comes back within about 2 s), one image worker.
 */
function durableEnv(redis: RedisServer): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    DURABLE_CONCURRENCY: "1",
    REDIS_LOCK_MS: "1000",
    WORKERS: "1",
  };
}

/**
 * Starts one demo per runtime on `dataDir`, at once; each is added to
 * `servers` as soon as it runs, for the caller's `finally` to kill.
 */
async function startAll(
  runtimes: Runtime[],
  dataDir: string,
  env: Record<string, string>,
  servers: DemoServer[],
): Promise<DemoServer[]> {
  const started = await Promise.allSettled(
    runtimes.map(async (runtime) => {
      const server = await startDemo(runtime, dataDir, env);
      servers.push(server);
      return server;
    }),
  );
  for (const result of started) {
    if (result.status === "rejected") throw result.reason;
  }
  return started.map((result) =>
    (result as PromiseFulfilledResult<DemoServer>)
      .value
  );
}

/** A Deno and a Bun demo on one `dataDir`, each with its task log. */
interface Pair {
  a: DemoServer;
  b: DemoServer;
  logA: TaskLog;
  logB: TaskLog;
}

/**
 * Runs `fn` with a Deno demo (A) and a Bun demo (B) started at once on
 * `dataDir`, and their task logs; closes the logs and kills both after.
 */
async function withPair(
  dataDir: string,
  env: Record<string, string>,
  fn: (pair: Pair) => Promise<void>,
): Promise<void> {
  const servers: DemoServer[] = [];
  const logs: TaskLog[] = [];
  try {
    const [a, b] = await startAll(["deno", "bun"], dataDir, env, servers);
    for (const server of [a, b]) logs.push(await TaskLog.open(server));
    const [logA, logB] = logs;
    await fn({ a, b, logA, logB });
  } finally {
    for (const log of logs) await log.close();
    for (const server of servers) await server.kill();
  }
}

interface TaskMessage {
  event: string;
  task: { id: string; name: string; status: string };
}

/** The task events a demo process streams on `GET /tasks/events`, as they come. */
class TaskLog {
  readonly events: TaskMessage[] = [];
  readonly #controller = new AbortController();
  #reading: Promise<void> = Promise.resolve();
  #waiters: (() => void)[] = [];
  #ended = false;

  /** Opens the stream and resolves once its snapshot came (bounded). */
  static async open(server: DemoServer): Promise<TaskLog> {
    const log = new TaskLog();
    const snapshot = Promise.withResolvers<void>();
    const response = await within(
      fetch(`${server.url}/tasks/events`, { signal: log.#controller.signal }),
      15_000,
      () => `no answer from ${server.url}/tasks/events within 15 s`,
    );
    assert.equal(response.status, 200);
    log.#reading = (async () => {
      try {
        for await (const message of readEvents(response.body!)) {
          if (message.event === "snapshot") snapshot.resolve();
          else log.events.push(message as unknown as TaskMessage);
          log.#wake();
        }
      } catch {
        // Closed by `close`, or the process died.
      } finally {
        log.#ended = true;
        snapshot.reject(new Error(`${server.url}/tasks/events ended`));
        log.#wake();
      }
    })();
    try {
      await within(snapshot.promise, 15_000, () => "no snapshot within 15 s");
    } catch (error) {
      await log.close();
      throw error;
    }
    return log;
  }

  /** Resolves with the first event that matches, waiting up to `ms`. */
  waitFor(
    what: string,
    match: (message: TaskMessage) => boolean,
    ms = 20_000,
  ): Promise<TaskMessage> {
    const found = (async () => {
      for (;;) {
        const message = this.events.find(match);
        if (message !== undefined) return message;
        if (this.#ended) throw new Error(`the stream ended before ${what}`);
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
      }
    })();
    return within(found, ms, () => `no ${what} within ${ms} ms`);
  }

  /** The first thumbnail this process started. */
  thumbnailStarted(by: string): Promise<TaskMessage> {
    return this.waitFor(
      `thumbnail started by the ${by} process`,
      ({ event, task }) =>
        event === "start" && /^thumbnail \d+px /.test(task.name),
    );
  }

  /** Resolves once this process made the last (600px) thumbnail of `photo`. */
  photoDone(photo: string, by: string): Promise<TaskMessage> {
    return this.waitFor(
      `photo ${photo} to be done by the ${by} process`,
      ({ event, task }) =>
        event === "settle" && task.status === "fulfilled" &&
        task.name === `thumbnail 600px ${photo}`,
      5_000,
    );
  }

  /** The durable tasks (`send-confirmation`, `make-thumbnails`) that settled fulfilled. */
  done(): number {
    return this.events.filter(({ event, task }) =>
      event === "settle" && task.status === "fulfilled" &&
      (task.name === "send-confirmation" || task.name === "make-thumbnails")
    ).length;
  }

  /** Ends the stream and waits until the reader stopped. */
  async close(): Promise<void> {
    this.#controller.abort();
    await this.#reading;
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** Parses a `text/event-stream` body into `{ event, ...data }` messages. */
async function* readEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<Record<string, unknown> & { event: string }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    while (true) {
      let end: number;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length > 0) {
          yield { ...JSON.parse(data.join("\n")), event };
        }
      }
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

async function json(response: Response): Promise<Record<string, unknown>> {
  assert.match(response.headers.get("content-type") ?? "", /application\/json/);
  return await response.json();
}

const ORDER = {
  email: "ada@example.com",
  items: [{ sku: "MUG-1", quantity: 2 }],
};

function postOrder(server: DemoServer): Promise<Response> {
  return request(`${server.url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(ORDER),
  });
}

function postPhoto(server: DemoServer, jpeg: Uint8Array): Promise<Response> {
  return request(`${server.url}/photos`, {
    method: "POST",
    body: photoForm(jpeg, "photo.jpg", "image/jpeg"),
  });
}

/** Posts `count` orders at once; returns their ids. */
async function order(server: DemoServer, count: number): Promise<string[]> {
  return await Promise.all(
    Array.from({ length: count }, async () => {
      const response = await postOrder(server);
      const body = await json(response);
      assert.equal(response.status, 201, JSON.stringify(body));
      return body.orderId as string;
    }),
  );
}

/** Uploads `count` photos at once; returns their ids. */
async function upload(
  server: DemoServer,
  jpeg: Uint8Array,
  count: number,
): Promise<string[]> {
  return await Promise.all(
    Array.from({ length: count }, async () => {
      const response = await postPhoto(server, jpeg);
      const body = await json(response);
      assert.equal(response.status, 201, JSON.stringify(body));
      assert.equal(body.status, "processing");
      return body.photoId as string;
    }),
  );
}

/** Waits until every order's email is sent and every photo is ready. */
async function untilDone(
  server: DemoServer,
  orders: string[],
  photos: string[],
): Promise<void> {
  for (const id of orders) {
    await poll(`the email of order ${id} to be sent`, async () => {
      const row = await json(await request(`${server.url}/orders/${id}`));
      assert.notEqual(row.emailStatus, "failed", JSON.stringify(row));
      return row.emailStatus === "sent";
    });
  }
  for (const id of photos) {
    await poll(`photo ${id} to be ready`, async () => {
      const body = await json(await request(`${server.url}/photos/${id}`));
      assert.notEqual(body.status, "failed", JSON.stringify(body));
      return body.status === "ready";
    });
  }
}

async function photoStatus(dataDir: string, id: string): Promise<string> {
  const meta = await readFile(join(dataDir, "photos", id, "meta.json"), "utf8");
  return JSON.parse(meta).status;
}

/** Writes a photo folder as an upload leaves it: "processing", no thumbnails. */
async function storePhoto(
  dataDir: string,
  jpeg: Uint8Array,
  queued: boolean,
): Promise<string> {
  const id = crypto.randomUUID();
  const folder = join(dataDir, "photos", id);
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, "original.jpg"), jpeg);
  await writeFile(
    join(folder, "meta.json"),
    JSON.stringify({
      id,
      status: "processing",
      type: "jpeg",
      width: 1200,
      height: 800,
      createdAt: new Date().toISOString(),
    }),
  );
  if (queued) await writeFile(join(folder, "queued"), crypto.randomUUID());
  return id;
}

const small = await gradient(1200, 800);

/** Everything posted to A; each process runs some; one try each. */
function splitTheWork(
  mode: string,
  env: Record<string, string>,
  dataDir: string,
): Promise<void> {
  return withPair(dataDir, env, async ({ a, b, logA, logB }) => {
    for (const server of [a, b]) {
      assert.match(server.output(), new RegExp(`durable mode \\(${mode}\\)`));
    }

    // Everything is posted to A only.
    const [photos, orders] = await Promise.all([
      upload(a, small.jpeg, 4),
      order(a, 8),
    ]);
    await untilDone(a, orders, photos);
    await poll(
      "both processes to report every task settled",
      () => Promise.resolve(logA.done() + logB.done() >= 12),
    );

    assert.ok(
      logA.done() > 0 && logB.done() > 0,
      `each process ran some of the 12 tasks: Deno ${logA.done()}, Bun ${logB.done()}`,
    );
    // One try each, wherever it ran; every file is where both see it.
    for (const id of orders) {
      const row = await json(await request(`${b.url}/orders/${id}`));
      assert.equal(row.emailAttempts, 1, JSON.stringify(row));
    }
    const outbox = await readdir(join(dataDir, "outbox"));
    assert.deepEqual(outbox.sort(), orders.map((id) => `${id}.eml`).sort());
  });
}

/** B is killed while it makes a thumbnail; A finishes everything. */
async function killOneMidWork(
  mode: string,
  env: Record<string, string>,
  dataDir: string,
): Promise<void> {
  const big = await gradient(2400, 1600);
  await withPair(dataDir, env, async ({ a, b, logA, logB }) => {
    for (const server of [a, b]) {
      assert.match(server.output(), new RegExp(`durable mode \\(${mode}\\)`));
    }

    const [photos, orders] = await Promise.all([
      upload(a, big.jpeg, 3),
      order(a, 4),
    ]);
    // B is making a thumbnail: kill it there.
    const { task } = await logB.thumbnailStarted("Bun");
    const photo = task.name.split(" ")[2];
    assert.ok(photos.includes(photo), task.name);
    // Read the status as soon as SIGKILL is sent: waiting for B's pipes to
    // close also waits for its image process (a child that shares its
    // stderr and finishes its job), long enough for B's lease to lapse and
    // A to finish the photo.
    const killed = b.kill();
    assert.equal(
      await photoStatus(dataDir, photo),
      "processing",
      "B had finished the photo before the kill landed",
    );
    await killed;

    await untilDone(a, orders, photos);
    await logA.photoDone(photo, "Deno");
  });
}

redisTest(
  "durable mode: a Deno and a Bun demo process sharing Redis and DATA_DIR split the emails and thumbnails",
  (redis, dataDir) => splitTheWork("redis", durableEnv(redis), dataDir),
);

redisTest(
  "durable mode: SIGKILL of one demo process mid-work leaves its task to the other, which finishes everything",
  (redis, dataDir) => killOneMidWork("redis", durableEnv(redis), dataDir),
);

sqliteTest(
  "durable mode (sqlite): a Deno and a Bun demo process sharing DATA_DIR split the emails and thumbnails, with no server",
  (dataDir) => splitTheWork("sqlite", SQLITE_ENV, dataDir),
);

sqliteTest(
  "durable mode (sqlite): SIGKILL of one demo process mid-work leaves its task to the other, which finishes everything",
  (dataDir) => killOneMidWork("sqlite", SQLITE_ENV, dataDir),
);

redisTest(
  "durable mode: POST /orders and POST /photos answer 503 when Redis cannot store the task",
  async (redis, dataDir) => {
    let server: DemoServer | undefined;
    try {
      server = await startDemo("bun", dataDir, durableEnv(redis));
      await redis.stop();
      const [ordered, uploaded] = await Promise.all([
        postOrder(server),
        postPhoto(server, small.jpeg),
      ]);
      for (
        const [response, pattern] of [[ordered, /order/], [
          uploaded,
          /photo/,
        ]] as const
      ) {
        const body = await json(response);
        assert.equal(response.status, 503, JSON.stringify(body));
        assert.match(body.error as string, /could not be queued/);
        assert.match(body.error as string, pattern);
        assert.equal(response.headers.get("retry-after"), "5");
      }
      // The order row stays, "pending"; the upload leaves nothing.
      const report = await json(
        await request(`${server.url}/reports`, { method: "POST" }),
      );
      const result = await poll("the report", async () => {
        const body = await json(
          await request(`${server!.url}/reports/${report.taskId}`),
        );
        return body.status === "fulfilled" &&
          body.result as {
            orders: { count: number; email: Record<string, number> };
            photos: { count: number };
          };
      });
      assert.equal(result.orders.count, 1);
      assert.equal(result.orders.email.pending, 1);
      assert.equal(result.photos.count, 0);
      assert.deepEqual(await readdir(join(dataDir, "photos")), []);
    } finally {
      await server?.kill();
    }
  },
);

redisTest(
  "durable mode: SIGTERM hands the task cut short back to the queue, and the other process does it",
  async (redis, dataDir) => {
    const big = await gradient(2400, 1600);
    // No wait for running tasks at shutdown: cancel them at once.
    const env = { ...durableEnv(redis), SHUTDOWN_TIMEOUT_MS: "0" };
    await withPair(dataDir, env, async ({ a, b, logA, logB }) => {
      const photos = await upload(a, big.jpeg, 3);
      const { task } = await logB.thumbnailStarted("Bun");
      const photo = task.name.split(" ")[2];
      assert.equal(await b.stop("SIGTERM"), 0, b.output());
      assert.match(
        b.output(),
        /shutdown: \d+ task\(s\) completed, [1-9]\d* cancelled/,
      );

      await untilDone(a, [], photos);
      await logA.photoDone(photo, "Deno");
    });
  },
);

redisTest(
  "durable mode: a photo stored but never queued is queued at the next start",
  async (redis, dataDir) => {
    // What a process that died between storing an upload and queueing it leaves.
    const id = await storePhoto(dataDir, small.jpeg, false);
    let server: DemoServer | undefined;
    try {
      server = await startDemo("bun", dataDir, durableEnv(redis));
      assert.match(server.output(), /queued 1 photo\(s\)/);
      await untilDone(server, [], [id]);
      const folder = await readdir(join(dataDir, "photos", id));
      assert.ok(folder.includes("queued"), String(folder));
    } finally {
      await server?.kill();
    }
  },
);

redisTest(
  "durable mode: a photo whose task became a dead letter unsaid is marked failed at the next start",
  async (redis, dataDir) => {
    const id = await storePhoto(dataDir, small.jpeg, true);
    // Its task fails its only attempt in a consumer that does not record it,
    // as when a process dies during a task's last attempt. "demo" is the
    // demo's queue name (examples/demo/durable.ts).
    const queue = new DurableQueue(
      await RedisBackend.open(redis.url, { queue: "demo" }),
      { attempts: 1 },
    );
    queue.define("make-thumbnails", () => {
      throw new Error("the process died");
    });
    const tasks = new TaskManager({ onError: () => {} });
    const settled = new Promise((resolve) =>
      tasks.addEventListener("settle", resolve, { once: true })
    );
    queue.consume(tasks);
    await queue.enqueue("make-thumbnails", { photoId: id });
    await within(settled, 10_000, () => "the task did not settle in 10 s");
    await tasks.shutdown();
    await queue.close();

    let server: DemoServer | undefined;
    try {
      server = await startDemo("bun", dataDir, durableEnv(redis));
      assert.match(server.output(), /marked 1 order\(s\) or photo\(s\) failed/);
      const body = await json(await request(`${server.url}/photos/${id}`));
      assert.equal(body.status, "failed");
      assert.equal(body.error, "the process died");
    } finally {
      await server?.kill();
    }
  },
);

sqliteTest(
  "durable mode (sqlite): a dead letter can be retried as a fresh task, or deleted",
  async (dataDir) => {
    let server: DemoServer | undefined;
    try {
      // One attempt per email, and an outbox that cannot be written: each
      // email becomes a dead letter.
      const outbox = join(dataDir, "outbox");
      await writeFile(outbox, "not a folder");
      server = await startDemo("deno", dataDir, {
        ...SQLITE_ENV,
        MAIL_ATTEMPTS: "1",
      });
      const url = server.url;
      const first = (await json(await postOrder(server))).orderId as string;
      const second = (await json(await postOrder(server))).orderId as string;
      const letters = await poll("two dead letters", async () => {
        const body = await json(await request(`${url}/dead-letters`));
        const list = body.deadLetters as { id: string; payload: unknown }[];
        if (list.length < 2) return false;
        assert.deepEqual(body.actions, { retry: true, delete: true });
        return list;
      });
      const letterOf = (orderId: string) =>
        letters.find((l) =>
          (l.payload as { orderId?: string }).orderId === orderId
        )!.id;
      await rm(outbox);

      const retried = await request(
        `${url}/dead-letters/${letterOf(first)}/retry`,
        { method: "POST" },
      );
      assert.deepEqual(await json(retried), { retried: true });
      await poll("the retried email to be sent", async () => {
        const order = await json(await request(`${url}/orders/${first}`));
        return order.emailStatus === "sent";
      });

      const deleted = await request(`${url}/dead-letters/${letterOf(second)}`, {
        method: "DELETE",
      });
      assert.deepEqual(await json(deleted), { deleted: true });
      const left = await json(await request(`${url}/dead-letters`));
      assert.deepEqual(left.deadLetters, []);
      // Again, or an id it never had: nothing to do.
      const again = await request(`${url}/dead-letters/${letterOf(second)}`, {
        method: "DELETE",
      });
      assert.deepEqual(await json(again), { deleted: false });
      const unknown = await request(
        `${url}/dead-letters/${crypto.randomUUID()}/retry`,
        { method: "POST" },
      );
      assert.deepEqual(await json(unknown), { retried: false });
      assert.equal(
        (await json(await request(`${url}/orders/${second}`))).emailStatus,
        "failed",
      );
    } finally {
      await server?.kill();
    }
  },
);
