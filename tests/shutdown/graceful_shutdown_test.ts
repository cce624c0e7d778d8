// The shutdown hook and the middleware together, in a real server process on
// the runtime that runs the test (Deno.serve under Deno, Bun.serve under Bun,
// @hono/node-server under Node), driven over raw sockets and signals; and the
// hook's own rules (order, bounds, idempotence, exit code) in process.

import assert from "node:assert/strict";
import { connect } from "node:net";
import { TaskManager } from "../../mod.ts";
import { gracefulShutdown } from "../../src/shutdown/mod.ts";
import { within } from "../durable/fixtures/_process.ts";
import { ServerProcess } from "./fixtures/_server_process.ts";
import { gate, test } from "../_harness.ts";

interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
  /** Resolves `true` once the server closes the connection, `false` after 2 s. */
  closed: Promise<boolean>;
}

/** One HTTP/1.1 request on a fresh connection, read up to the end of its body. */
function rawRequest(
  port: number,
  method: string,
  path: string,
): Promise<RawResponse> {
  return within(
    new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      const { promise: closed, resolve: close } = Promise.withResolvers<
        boolean
      >();
      let data = "";
      let answered = false;
      socket.setEncoding("utf8");
      socket.on("error", reject);
      socket.on("end", () => close(true));
      socket.on("close", () => close(true));
      socket.on("data", (chunk) => {
        data += chunk;
        const end = data.indexOf("\r\n\r\n");
        if (answered || end === -1) return;
        const [statusLine, ...lines] = data.slice(0, end).split("\r\n");
        const headers = new Map(
          lines.map((line) => {
            const colon = line.indexOf(":");
            return [
              line.slice(0, colon).trim().toLowerCase(),
              line.slice(colon + 1).trim(),
            ] as const;
          }),
        );
        const body = data.slice(end + 4);
        if (body.length < Number(headers.get("content-length") ?? 0)) return;
        answered = true;
        const timer = setTimeout(() => close(false), 2_000);
        closed.then(() => {
          clearTimeout(timer);
          socket.destroy();
        });
        resolve({
          status: Number(statusLine.split(" ")[1]),
          headers,
          body,
          closed,
        });
      });
      socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n`,
      );
    }),
    10_000,
    () => `no answer to ${method} ${path}`,
  );
}

async function startServer(
  env: Record<string, string> = {},
): Promise<{ child: ServerProcess; port: number }> {
  const child = new ServerProcess(env);
  const { port } = await child.waitFor({ event: "listening" });
  return { child, port: port as number };
}

/**
 * Deno 2.9 sends `Connection: close` but leaves the connection open until
 * the client closes it (as RFC 9112 says a client must) or the server stops;
 * Bun and Node close it after the response.
 */
const closesConnections = typeof Deno === "undefined";

test("gracefulShutdown() on SIGTERM: new requests get 503, the request in its handler finishes, exit 0", async () => {
  const { child, port } = await startServer();
  try {
    const before = await rawRequest(port, "POST", "/orders");
    assert.equal(before.status, 201);
    const slow = rawRequest(port, "POST", "/slow");
    await child.waitFor({ event: "in-handler" });
    child.signal("SIGTERM");
    await child.waitFor({ event: "log", message: "SIGTERM: shutting down" });
    // A second signal is harmless: the same shutdown goes on.
    child.signal("SIGINT");
    const refused = await rawRequest(port, "POST", "/orders");
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.equal(refused.headers.get("connection"), "close");
    assert.match(refused.body, /shutting down/);
    if (closesConnections) {
      assert.equal(await refused.closed, true, "the server closed it");
    }
    // The request already in its handler finishes, and its task runs.
    assert.equal((await rawRequest(port, "POST", "/release")).status, 200);
    assert.equal((await slow).status, 201);
    assert.equal(await child.exit(), 0, child.output.join("\n"));
    const log = child.events.filter((e) => e.event === "log").map((e) =>
      e.message
    );
    assert.deepEqual(log, [
      "SIGTERM: shutting down",
      "shutdown: 1 task(s) completed, 0 cancelled, 0 abandoned",
    ]);
  } finally {
    await child.stop();
  }
});

test("gracefulShutdown() exits 1 and names the task when a task ignores its signal", async () => {
  const { child, port } = await startServer({
    SHUTDOWN_TIMEOUT_MS: "50",
    SHUTDOWN_GRACE_MS: "50",
  });
  try {
    assert.equal((await rawRequest(port, "POST", "/stuck")).status, 201);
    child.signal("SIGTERM");
    assert.equal(await child.exit(), 1);
    const log = child.events.filter((e) => e.event === "log").map((e) =>
      e.message
    );
    assert.equal(
      log[1],
      "shutdown: 0 task(s) completed, 0 cancelled, 1 abandoned",
    );
    assert.match(
      String(log[2]),
      /^shutdown: task "stuck" \(id \d+\) was still running$/,
    );
  } finally {
    await child.stop();
  }
});

test("gracefulShutdown() runs the steps in order: tasks, close list, handlers, server", async () => {
  const steps: string[] = [];
  const tasks = new TaskManager();
  const release = gate();
  tasks.run("write", async () => {
    await release.promise;
    steps.push("task");
  });
  const hook = gracefulShutdown({
    tasks,
    server: { shutdown: () => Promise.resolve(void steps.push("server")) },
    close: [
      { close: () => void steps.push("pool") },
      {
        [Symbol.asyncDispose]: () => Promise.resolve(void steps.push("queue")),
      },
    ],
    signals: [],
    exit: false,
    log: (line) => steps.push(line),
  }).onShutdown(() => void steps.push("handler 1"))
    .onShutdown(() => Promise.resolve(void steps.push("handler 2")));
  const shutdown = hook.shutdown();
  assert.equal(hook.signal.aborted, true);
  assert.equal(hook.shutdown(), shutdown, "a second call: the same shutdown");
  release.resolve();
  const report = await shutdown;
  assert.deepEqual(steps, [
    "shutdown(): shutting down",
    "task",
    "pool",
    "queue",
    "handler 1",
    "handler 2",
    "server",
    "shutdown: 1 task(s) completed, 0 cancelled, 0 abandoned",
  ]);
  assert.equal(report.reason, "shutdown()");
  assert.equal(report.exitCode, 0);
  assert.deepEqual(report.errors, []);
});

test("gracefulShutdown() logs a failing or late step, goes on, and exits 1", async () => {
  const lines: string[] = [];
  let stopped = false;
  const hook = gracefulShutdown({
    tasks: new TaskManager(),
    server: { shutdown: () => Promise.resolve(void (stopped = true)) },
    close: [{
      close: () => {
        throw new Error("disk gone");
      },
    }],
    closeTimeout: 20,
    signals: [],
    exit: false,
    log: (line) => lines.push(line),
  }).onShutdown(() => new Promise(() => {})); // never ends
  const report = await hook.shutdown("SIGINT");
  assert.equal(
    stopped,
    true,
    "the server still stopped, after the time ran out",
  );
  assert.equal(report.exitCode, 1);
  assert.equal(report.errors.length, 2);
  assert.deepEqual(lines, [
    "SIGINT: shutting down",
    "shutdown: closing an object failed: Error: disk gone",
    "shutdown: a shutdown handler failed: Error: a shutdown handler did not finish within closeTimeout (20 ms)",
    "shutdown: 0 task(s) completed, 0 cancelled, 0 abandoned",
  ]);
});

test("gracefulShutdown() rejects bad options with a clear error", () => {
  const tasks = new TaskManager();
  assert.throws(() => gracefulShutdown(undefined as never), {
    name: "TypeError",
    message:
      "Cannot set up gracefulShutdown: 'options' must be an object with the TaskManager as 'tasks', received undefined",
  });
  assert.throws(() => gracefulShutdown({ tasks: {} as TaskManager }), {
    name: "TypeError",
    message:
      "Cannot set up gracefulShutdown: 'manager' must be a TaskManager, received an object",
  });
  assert.throws(
    () => gracefulShutdown({ tasks, server: {} as never, signals: [] }),
    /'server' must be a server \(what Deno.serve or Bun.serve returns, or a Node http.Server\), received an object/,
  );
  assert.throws(
    () => gracefulShutdown({ tasks, close: [{}] as never, signals: [] }),
    /'close' must be an array of objects with close\(\) or \[Symbol.asyncDispose\]\(\), received an array/,
  );
  assert.throws(
    () => gracefulShutdown({ tasks, timeout: -1, signals: [] }),
    { name: "RangeError", message: /'timeout' must be 0, a positive number/ },
  );
  assert.throws(
    () => gracefulShutdown({ tasks, signals: ["SIGKILL"] as never }),
    /'signals' must be an array of "SIGTERM", "SIGINT", "SIGHUP" or "SIGQUIT"/,
  );
});
