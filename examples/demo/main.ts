// Starts the demo on Deno (`Deno.serve`) or Bun (`Bun.serve`), on 127.0.0.1.
//
//   deno run -A examples/demo/main.ts      bun examples/demo/main.ts
//
// Environment (all optional):
//   PORT                 port to listen on (0: any free port)        8000
//   DATA_DIR             photos, outbox and orders.db                ./data
//   MAX_UPLOAD_BYTES     largest POST /photos body                   10485760
//   MAX_UPLOADS          uploads received at once; beyond, 503       32
//                        with Retry-After
//   MAX_IMAGE_WORK       the most decode work an upload may declare, 24000000
//                        width x height x (1 + scans/100)
//   IMAGE_TIMEOUT_MS     a thumbnail's timeout (from its start)   10 s + 1 µs
//                                                          per unit of work
//   WORKERS              image processes      one less than the cores, 1 to 4
//   MAIL_ATTEMPTS        tries per confirmation email                4
//   MAIL_RETRY_MS        first wait between email tries (doubles)    500
//   SHUTDOWN_TIMEOUT_MS  wait for the requests in flight and the     2500
//                        tasks, before cancelling the tasks
//   SHUTDOWN_GRACE_MS    then wait for cancelled tasks to return     500
//   SHUTDOWN_CLOSE_MS    then close the queue, the workers, the      1000
//                        database and the listener
//
// Durable mode (durable.ts; README.md, "Durable mode"), off by default:
//   DURABLE              "sqlite": the emails and thumbnails are tasks of a
//                        durable queue in DATA_DIR/queue.sqlite, no server
//                        (Deno and Bun), shared by every process of the
//                        machine with the same DATA_DIR;
//                        "redis": the queue is in Redis, at REDIS_URL;
//                        "kv": Deno KV in DATA_DIR/tasks.sqlite (Deno only,
//                        one process); "off": in-process tasks even with
//                        REDIS_URL set.
//                        Unset: "redis" when REDIS_URL is set, else "off"
//   REDIS_URL            redis://host:port (Deno and Bun), shared by every
//                        process with the same REDIS_URL and DATA_DIR
//   DURABLE_CONCURRENCY  queued tasks this process runs at once        4
//                        (0: none, the process only enqueues)
//   SQLITE_LEASE_MS      a process's lease on a task it took         30000
//                        (a dead process's tasks come back within this)
//   REDIS_LOCK_MS        a process's lock on a running task          30000
//                        (a dead process's tasks come back within twice this)
//
// Benchmark knobs (bench/server.ts, bench/health.ts), off by default:
//   SEND_EMAILS=0            POST /orders sends no confirmation email: the
//                            same handler without its background task
//   SEND_EMAILS=noop         POST /orders starts an empty task instead of
//                            the email (same name): the manager's own cost
//   IMAGES_ON_MAIN_THREAD=1  decode and resize images on the main thread
//                            instead of the worker pool
//
// On SIGINT or SIGTERM, gracefulShutdown (@background/tasks/shutdown)
// answers new requests 503, lets the requests in flight finish, drains the
// tasks (cancelling what is left after the timeout), closes the queue, the
// worker pool and the database, stops the listener and exits 0; all of it
// within 4 s by default. A second signal changes nothing. Work cut short is
// picked up at the next start; in durable mode, the queue hands it to another
// process at once, or keeps it for the next start.

import { join } from "node:path";
import process from "node:process";
import {
  gracefulShutdown,
  type StoppableServer,
} from "@background/tasks/shutdown";
import { createDemo, type Demo, type DemoConfig } from "./app.ts";
import type { DurableSettings } from "./durable.ts";

const HOSTNAME = "127.0.0.1";

interface Server {
  port: number;
  /** What gracefulShutdown stops last. */
  server: StoppableServer;
}

type Fetch = (request: Request) => Response | Promise<Response>;

interface BunRuntime {
  serve(options: {
    hostname: string;
    port: number;
    fetch: Fetch;
    idleTimeout: number;
  }): { port: number; stop(closeActiveConnections?: boolean): Promise<void> };
}

/** Reads an integer setting from the environment. */
function integer(
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `${name} must be an integer from ${min} to ${max}, received ${
        JSON.stringify(raw)
      }`,
    );
  }
  return value;
}

/** Reads SEND_EMAILS: "1" (the default), "0" or "noop". */
function sendEmails(): boolean | "noop" {
  const raw = process.env.SEND_EMAILS ?? "";
  if (raw === "" || raw === "1") return true;
  if (raw === "0") return false;
  if (raw === "noop") return "noop";
  throw new RangeError(
    `SEND_EMAILS must be "1", "0" or "noop", received ${JSON.stringify(raw)}`,
  );
}

/** Reads the durable mode's settings; `undefined` when it is off. */
function durable(dataDir: string): DurableSettings | undefined {
  const mode = process.env.DURABLE ?? "";
  const url = process.env.REDIS_URL ?? "";
  if (!["", "sqlite", "redis", "kv", "off"].includes(mode)) {
    throw new RangeError(
      `DURABLE must be "sqlite", "redis", "kv" or "off", received ${
        JSON.stringify(mode)
      }`,
    );
  }
  if (mode === "off" || (mode === "" && url === "")) return undefined;
  const concurrency = integer("DURABLE_CONCURRENCY", 4, 0, 64);
  if (mode === "sqlite") {
    return {
      backend: "sqlite",
      path: join(dataDir, "queue.sqlite"),
      leaseDuration: integer("SQLITE_LEASE_MS", 30_000, 100, 600_000),
      concurrency,
    };
  }
  if (mode === "kv") {
    if (typeof Deno === "undefined") {
      throw new RangeError(
        "DURABLE=kv needs Deno (Deno KV); on Bun, use DURABLE=sqlite or set REDIS_URL",
      );
    }
    return {
      backend: "kv",
      path: join(dataDir, "tasks.sqlite"),
      concurrency,
    };
  }
  if (!/^rediss?:\/\//.test(url)) {
    // The scheme only: a URL may hold a password.
    throw new RangeError(
      `REDIS_URL must be a redis:// or rediss:// URL, received ${
        url === "" ? "nothing" : JSON.stringify(`${url.split("//")[0]}//...`)
      }`,
    );
  }
  return {
    backend: "redis",
    url,
    lockDuration: integer("REDIS_LOCK_MS", 30_000, 100, 600_000),
    concurrency,
  };
}

function serve(fetch: Fetch, port: number): Promise<Server> {
  const bun = (globalThis as { Bun?: BunRuntime }).Bun;
  if (bun !== undefined) {
    // Bun closes a connection idle this many seconds; event streams send a
    // heartbeat every 15 s.
    const server = bun.serve({
      hostname: HOSTNAME,
      port,
      fetch,
      idleTimeout: 60,
    });
    return Promise.resolve({ port: server.port, server });
  }
  if (typeof Deno !== "undefined") {
    const server = Deno.serve(
      { hostname: HOSTNAME, port, onListen() {} },
      fetch,
    );
    return Promise.resolve({ port: server.addr.port, server });
  }
  throw new Error("The demo server runs on Deno or Bun");
}

async function main(): Promise<void> {
  let config: DemoConfig;
  let port: number;
  let timeout: number;
  let grace: number;
  let closeTimeout: number;
  // Aborted when the shutdown begins: the event streams end.
  const closing = new AbortController();
  try {
    port = integer("PORT", 8000, 0, 65535);
    timeout = integer("SHUTDOWN_TIMEOUT_MS", 2500, 0, 600_000);
    grace = integer("SHUTDOWN_GRACE_MS", 500, 0, 600_000);
    closeTimeout = integer("SHUTDOWN_CLOSE_MS", 1000, 0, 600_000);
    const dataDir = process.env.DATA_DIR || "./data";
    config = {
      dataDir,
      closing: closing.signal,
      maxUploadBytes: integer("MAX_UPLOAD_BYTES", 10 * 1024 * 1024, 1, 2 ** 30),
      maxUploads: integer("MAX_UPLOADS", 32, 1, 10_000),
      maxImageWork: integer("MAX_IMAGE_WORK", 24_000_000, 1, 2 ** 40),
      imageTimeout: process.env.IMAGE_TIMEOUT_MS
        ? integer("IMAGE_TIMEOUT_MS", 0, 1, 3_600_000)
        : undefined,
      workers: process.env.WORKERS ? integer("WORKERS", 1, 1, 64) : undefined,
      mailAttempts: integer("MAIL_ATTEMPTS", 4, 1, 100),
      mailRetryDelay: integer("MAIL_RETRY_MS", 500, 0, 600_000),
      sendEmails: sendEmails(),
      imagesOnMainThread: integer("IMAGES_ON_MAIN_THREAD", 0, 0, 1) === 1,
      durable: durable(dataDir),
    };
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }

  let demo: Demo;
  let resumed: { photos: number; orders: number };
  try {
    demo = await createDemo(config);
    resumed = await demo.resume();
  } catch (error) {
    const queue = config.durable === undefined
      ? ""
      : ` and the ${config.durable.backend} task queue`;
    console.error(
      `Cannot start with DATA_DIR ${JSON.stringify(config.dataDir)}${queue}:`,
      error,
    );
    process.exit(1);
  }
  if (config.durable !== undefined) {
    const { backend, concurrency } = config.durable;
    console.log(
      `durable mode (${backend}): running up to ${concurrency} queued task(s) at once`,
    );
    if (resumed.photos > 0) {
      console.log(
        `queued ${resumed.photos} photo(s) that the last run stored but did not queue`,
      );
    }
  } else if (resumed.photos + resumed.orders > 0) {
    console.log(
      `resumed ${resumed.photos} photo(s) and ${resumed.orders} email(s) left by the last run`,
    );
  }
  const { server, port: listening } = await serve(demo.app.fetch, port);
  const hook = gracefulShutdown({
    tasks: demo.manager,
    server,
    close: [{ close: () => demo.closeResources() }],
    timeout,
    grace,
    closeTimeout,
  });
  hook.signal.addEventListener("abort", () => closing.abort());
  console.log(`listening on http://${HOSTNAME}:${listening}/`);
}

await main();
