// The manager in edge sandboxes: Cloudflare's workerd (through miniflare) and
// Vercel's edge runtime (the edge-runtime package). Each test bundles
// examples/edge/ with Bun, loads it into a fresh sandbox and watches it from
// outside: in workerd through a service binding served by a Node function, in
// the edge runtime through a `fetch` the test provides. Background work is
// held on gates the test opens, so the order of events is forced; the only
// waits are bounded ones that fail a test instead of hanging it.
//
// Where each sandbox runs: both run inside the test process under Node and
// Bun. Under Deno the edge runtime does too, and each workerd test runs in a
// Node 22 child process (see `workerdTest`).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { EdgeRuntime } from "edge-runtime";
import { TaskManager } from "../../mod.ts";
import { runScenario } from "../../examples/edge/scenario.ts";
import { flush, gate, test } from "../_harness.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bun = join(root, "node_modules", ".bin", "bun");

/** The compatibility date the Worker is run with. */
const COMPATIBILITY_DATE = "2026-01-01";
/** How long any one observation may take before the test fails. */
const WAIT_MS = 10_000;
/** The globals the core needs in a sandbox (see examples/edge/scenario.ts). */
const REQUIRED_GLOBALS = [
  "AbortController",
  "AbortSignal.timeout",
  "AbortSignal.abort",
  "EventTarget",
  "Event",
  "queueMicrotask",
  "DOMException",
  "AggregateError",
] as const;

// ---------------------------------------------------------------------------
// Bundles

/** Runs `bun build` on `entry` and resolves with the bundle's text. */
function bundle(entry: string, format: "esm" | "iife"): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      bun,
      ["build", "--target=browser", `--format=${format}`, entry],
      { cwd: root, timeout: 30_000, maxBuffer: 1 << 26 },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(`bun build ${entry} failed: ${stderr}`, {
              cause: error,
            }),
          );
        } else resolve(stdout);
      },
    );
  });
}

const bundles = new Map<string, Promise<string>>();

/** examples/edge/`file` (a Worker) as one ES module, made once per process. */
function workerScript(file: string): Promise<string> {
  const key = `worker ${file}`;
  let made = bundles.get(key);
  if (made === undefined) {
    made = bundle(`examples/edge/${file}`, "esm");
    bundles.set(key, made);
  }
  return made;
}

/**
 * examples/edge/`file` (a Vercel function) as a classic script, edge-runtime's
 * `initialCode`, made once per process. It is called the way Vercel calls a
 * function: from a `fetch` event listener, with the event as the context whose
 * `waitUntil` keeps the function alive.
 */
function vercelScript(file: string): Promise<string> {
  const key = `vercel ${file}`;
  let made = bundles.get(key);
  if (made === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "edge-test-"));
    const entry = join(dir, "entry.ts");
    const handler = JSON.stringify(join(root, "examples", "edge", file));
    writeFileSync(
      entry,
      `import handler from ${handler};\n` +
        `addEventListener("fetch", (event: any) =>\n` +
        `  event.respondWith(handler(event.request, event)));\n`,
    );
    made = bundle(entry, "iife").finally(() =>
      rmSync(dir, { recursive: true, force: true })
    );
    bundles.set(key, made);
  }
  return made;
}

// ---------------------------------------------------------------------------
// The API the app calls, served from this process

/** One call the app made to its API. */
interface Call {
  /** `/emails`, `/confirmed`, `/slow`, `/cleanup`. */
  path: string;
  /** The order or job id from the body. */
  id: string;
  body: Record<string, unknown>;
  /** The caller went away before the answer: cancelled by its host or signal. */
  aborted: boolean;
}

/**
 * Records the app's calls (and the sandbox's output) and answers the calls,
 * holding a call while its gate is closed. Every wait is bounded by
 * {@linkcode WAIT_MS}.
 */
class FakeApi {
  readonly calls: Call[] = [];
  /** What the sandbox printed. */
  output = "";
  readonly #gates = new Map<string, PromiseWithResolvers<void>>();
  readonly #watchers = new Set<() => void>();

  /** Holds the next call to `path` for `id` until the returned function runs. */
  hold(path: string, id: string): () => void {
    const held = gate();
    this.#gates.set(`${path} ${id}`, held);
    return () => held.resolve();
  }

  /** Opens every gate, so nothing stays pending after a test. */
  releaseAll(): void {
    for (const held of this.#gates.values()) held.resolve();
  }

  /** Records a call; `answer` resolves when it may be answered. */
  receive(path: string, text: string): { call: Call; answer: Promise<void> } {
    const body = text === "" ? {} : JSON.parse(text) as Record<string, unknown>;
    const id = String(body.order ?? body.job ?? "");
    const call: Call = { path, id, body, aborted: false };
    this.calls.push(call);
    this.#changed();
    const held = this.#gates.get(`${path} ${id}`);
    return { call, answer: held?.promise ?? Promise.resolve() };
  }

  /** Marks a call whose caller went away before the answer. */
  abort(call: Call): void {
    call.aborted = true;
    this.#changed();
  }

  print(text: string): void {
    this.output += text;
    this.#changed();
  }

  find(path: string, id: string): Call | undefined {
    return this.calls.find((call) => call.path === path && call.id === id);
  }

  /** Resolves with the first call to `path` for `id` that matches, now or later. */
  call(
    what: string,
    path: string,
    id: string,
    match: (call: Call) => boolean = () => true,
  ): Promise<Call> {
    return this.until(
      what,
      () =>
        this.calls.find((call) =>
          call.path === path && call.id === id && match(call)
        ),
    );
  }

  /** Resolves once the sandbox printed a line that matches `pattern`. */
  printed(what: string, pattern: RegExp): Promise<RegExpExecArray> {
    return this.until(what, () => pattern.exec(this.output) ?? undefined);
  }

  /** Resolves with what `probe` finds, now or after a later change. */
  until<T>(what: string, probe: () => T | undefined): Promise<T> {
    const found = probe();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = probe();
        if (value === undefined) return;
        done();
        resolve(value);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `Waited ${WAIT_MS} ms for ${what}. Calls: ${
              JSON.stringify(this.calls)
            }\nOutput:\n${this.output}`,
          ),
        );
      }, WAIT_MS);
      const done = () => {
        clearTimeout(timer);
        this.#watchers.delete(check);
      };
      this.#watchers.add(check);
    });
  }

  #changed(): void {
    for (const watcher of [...this.#watchers]) watcher();
  }

  /** The service binding's Node handler (workerd). */
  readonly serve = (request: IncomingMessage, response: ServerResponse) => {
    let text = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => text += chunk);
    request.on("end", () => {
      const path = new URL(request.url ?? "/", "http://api").pathname;
      const { call, answer } = this.receive(path, text);
      response.on("close", () => {
        if (!response.writableFinished) this.abort(call);
      });
      answer.then(() => {
        if (!response.destroyed) response.end("ok");
      });
    });
  };
}

// ---------------------------------------------------------------------------
// Sandboxes

/** A `handleRuntimeStdio` that hands workerd's output to `sink` instead of printing it. */
function capture(
  sink: (text: string) => void,
): (stdout: Readable, stderr: Readable) => void {
  return (stdout, stderr) => {
    stdout.setEncoding("utf8").on("data", sink);
    stderr.setEncoding("utf8").on("data", sink);
  };
}

interface Workerd {
  api: FakeApi;
  /** Sends a JSON POST (or a GET without a body) to the Worker. */
  request(path: string, body?: unknown): Promise<Response>;
}

/**
 * Runs `fn` against examples/edge/`file` in a fresh workerd, then disposes
 * it. The bindings `API` and `EMAIL` are service bindings to `api`.
 */
async function withWorkerd(
  file: string,
  fn: (workerd: Workerd) => Promise<void>,
): Promise<void> {
  const api = new FakeApi();
  const mf = new Miniflare({
    modules: true,
    script: await workerScript(file),
    compatibilityDate: COMPATIBILITY_DATE,
    host: "127.0.0.1",
    port: 0,
    serviceBindings: { API: { node: api.serve }, EMAIL: { node: api.serve } },
    handleRuntimeStdio: capture((text) => api.print(text)),
  });
  try {
    await fn({
      api,
      request: (path, body) =>
        mf.dispatchFetch(
          `http://app${path}`,
          body === undefined
            ? {}
            : { method: "POST", body: JSON.stringify(body) },
        ) as unknown as Promise<Response>,
    });
  } finally {
    api.releaseAll();
    await mf.dispose();
  }
}

type EdgeResponse = Response & { waitUntil(): Promise<unknown> };

interface Edge {
  api: FakeApi;
  request(path: string, body?: unknown): Promise<EdgeResponse>;
}

/**
 * Runs `fn` against examples/edge/`file` (a Vercel function) in a fresh edge
 * runtime, whose `fetch` calls `api`.
 */
async function withEdgeRuntime(
  file: string,
  fn: (edge: Edge) => Promise<void>,
): Promise<void> {
  const api = new FakeApi();
  const deadlines = new Set<ReturnType<typeof setTimeout>>();
  const runtime = new EdgeRuntime({
    initialCode: await vercelScript(file),
    extend(context) {
      // The sandbox's AbortSignal.timeout is a plain, never cleared Node
      // timer, and the app's manager gives every task a 25 s deadline: such
      // timers would outlive the test (and hold Node's event loop open).
      // Deadlines longer than any test are made here instead, and cleared
      // when the test ends, as a host does when it discards the isolate.
      // Shorter ones stay the sandbox's own.
      const timeout = context.AbortSignal.timeout.bind(context.AbortSignal);
      context.AbortSignal.timeout = (ms: number) => {
        if (ms <= WAIT_MS) return timeout(ms);
        const controller = new context.AbortController();
        const timer = setTimeout(() => {
          deadlines.delete(timer);
          controller.abort(
            new context.DOMException("The deadline elapsed", "TimeoutError"),
          );
        }, ms);
        deadlines.add(timer);
        return controller.signal;
      };
      // The sandbox's `fetch`, which the app's API calls go through.
      context.fetch = (input: unknown, init?: RequestInit) => {
        const path = new URL(String(input)).pathname;
        const { call, answer } = api.receive(path, String(init?.body ?? ""));
        const signal = init?.signal ?? undefined;
        return new Promise((resolve, reject) => {
          const onAbort = () => {
            api.abort(call);
            reject(signal!.reason);
          };
          if (signal?.aborted) return onAbort();
          signal?.addEventListener("abort", onAbort, { once: true });
          answer.then(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve(new context.Response("ok"));
          });
        });
      };
      return context;
    },
  });
  try {
    await fn({
      api,
      request: (path, body) =>
        runtime.dispatchFetch(
          `http://app${path}`,
          body === undefined
            ? {}
            : { method: "POST", body: JSON.stringify(body) },
        ) as Promise<EdgeResponse>,
    });
  } finally {
    api.releaseAll();
    for (const timer of deadlines) clearTimeout(timer);
  }
}

const underDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;

/**
 * Registers a workerd test. Under Deno it runs in a Node 22 child process
 * (`node --test` on this file, this test only): miniflare works in Deno, but
 * leaves a message port, a timer and a file removal behind after `dispose()`,
 * which Deno's sanitizers reject.
 */
function workerdTest(name: string, fn: () => Promise<void>): void {
  test(name, underDeno ? () => inNode(name) : fn);
}

/** Runs the test called `name` of this file under Node 22's `node --test`. */
function inNode(name: string): Promise<void> {
  const pattern = `^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`;
  return new Promise((resolve, reject) => {
    execFile(
      join(root, "node_modules", ".bin", "node"),
      [
        "--disable-warning=ExperimentalWarning",
        "--test",
        `--test-name-pattern=${pattern}`,
        "tests/edge/edge_test.ts",
      ],
      { cwd: root, timeout: 60_000, maxBuffer: 1 << 26 },
      (error, stdout, stderr) => {
        if (error === null && /^# pass 1$/m.test(stdout)) resolve();
        else {
          reject(new Error(`Under Node: ${name}\n${stdout}${stderr}`));
        }
      },
    );
  });
}

/** Records whether `promise` has settled. */
function track(promise: Promise<unknown>): { settled: boolean } {
  const state = { settled: false };
  promise.then(() => state.settled = true, () => state.settled = true);
  return state;
}

// ---------------------------------------------------------------------------
// Cloudflare workerd

workerdTest(
  "new TaskManager() at module top level loads in workerd, where new AbortController() does not",
  async () => {
    // The control: workerd refuses a controller made at top level.
    let output = "";
    const control = new Miniflare({
      modules: true,
      script: "const controller = new AbortController();\n" +
        "export default { fetch: () => new Response('ok') };",
      compatibilityDate: COMPATIBILITY_DATE,
      host: "127.0.0.1",
      port: 0,
      handleRuntimeStdio: capture((text) => output += text),
    });
    await assert.rejects(control.ready, /failed to start/);
    await control.dispose().catch(() => {});
    assert.match(output, /Disallowed operation called within global scope/);

    // Both examples make their manager at top level, and answer.
    await withWorkerd("worker.ts", async ({ request }) => {
      const response = await request("/orders/none");
      assert.equal(response.status, 404);
      assert.deepEqual(await response.json(), {
        id: "none",
        error: "unknown order",
      });
    });
    await withWorkerd("cloudflare_worker.ts", async ({ request }) => {
      const response = await request("/", { id: "w-top" });
      assert.equal(response.status, 201);
      await response.body?.cancel();
    });
  },
);

workerdTest(
  "backgroundTasks() in workerd: POST /orders answers 201 before its task finishes, and the task finishes after",
  async () => {
    await withWorkerd("worker.ts", async ({ api, request }) => {
      const release = api.hold("/emails", "w-1");
      const response = await request("/orders", { id: "w-1" });
      assert.equal(response.status, 201);
      assert.deepEqual(await response.json(), {
        id: "w-1",
        status: "received",
      });

      // The task is running, blocked on the email API: it has not finished.
      await api.call("the email call", "/emails", "w-1");
      assert.equal(api.find("/confirmed", "w-1"), undefined);

      release();
      const confirmed = await api.call("the confirmation", "/confirmed", "w-1");
      assert.equal(confirmed.aborted, false);
      const status = await request("/orders/w-1");
      assert.deepEqual(await status.json(), { id: "w-1", status: "confirmed" });
    });
  },
);

workerdTest(
  "RunOptions.waitUntil in a plain Worker keeps the task alive after the response",
  async () => {
    await withWorkerd("cloudflare_worker.ts", async ({ api, request }) => {
      const release = api.hold("/send", "w-2");
      const response = await request("/", { id: "w-2" });
      assert.equal(response.status, 201);
      assert.deepEqual(await response.json(), {
        id: "w-2",
        status: "received",
      });

      await api.call("the email call", "/send", "w-2");
      assert.doesNotMatch(api.output, /confirmation sent for order w-2/);
      release();
      await api.printed(
        "the task's last line",
        /confirmation sent for order w-2/,
      );
      assert.equal(api.find("/send", "w-2")?.aborted, false);
    });
  },
);

workerdTest(
  "TaskManager.run() without waitUntil in workerd is cancelled once the response is sent",
  async () => {
    await withWorkerd("worker.ts", async ({ api, request }) => {
      const release = api.hold("/emails", "w-lost");
      const response = await request("/debug/unregistered-orders", {
        id: "w-lost",
      });
      assert.equal(response.status, 201);
      await response.body?.cancel();

      // workerd cuts the task's pending call off once the response is sent.
      await api.call(
        "the unregistered task's email call to be cut off",
        "/emails",
        "w-lost",
        (call) => call.aborted,
      );
      release();

      // A registered order that starts afterwards completes; the unregistered
      // one never reports, and its order stays unconfirmed.
      const kept = await request("/orders", { id: "w-kept" });
      await kept.body?.cancel();
      await api.call(
        "the registered order's confirmation",
        "/confirmed",
        "w-kept",
      );
      assert.equal(api.find("/confirmed", "w-lost"), undefined);
      const status = await request("/orders/w-lost");
      assert.deepEqual(await status.json(), {
        id: "w-lost",
        status: "received",
      });
    });
  },
);

workerdTest(
  "runScenario() in workerd reports what it reports here",
  async () => {
    const expected = await runScenario(new TaskManager());
    await withWorkerd("worker.ts", async ({ request }) => {
      const response = await request("/debug/scenario", {});
      const { globals, report } = await response.json();
      assert.deepEqual(report, expected);
      for (const name of REQUIRED_GLOBALS) {
        assert.equal(globals[name], true, `workerd lacks ${name}`);
      }
    });
  },
);

workerdTest(
  "RunOptions.timeout in workerd aborts a task over its budget, and its cleanup runs",
  async () => {
    await withWorkerd("worker.ts", async ({ api, request }) => {
      api.hold("/slow", "w-job"); // never answered: the task would run for ever
      const response = await request("/debug/budget", { id: "w-job", ms: 200 });
      assert.equal(response.status, 202);
      await response.body?.cancel();

      const cleanup = await api.call("the cleanup call", "/cleanup", "w-job");
      assert.deepEqual(cleanup.body, {
        job: "w-job",
        aborted: true,
        reason: "TimeoutError",
      });
      // The call the task was blocked on was aborted through its signal.
      await api.call(
        "the slow call to be aborted",
        "/slow",
        "w-job",
        (call) => call.aborted,
      );
    });
  },
);

workerdTest(
  "c.var.tasks.group() in workerd: POST /orders/batch confirms one order at a time after the response",
  async () => {
    await withWorkerd("worker.ts", async ({ api, request }) => {
      const ids = ["w-b1", "w-b2", "w-b3"];
      const releases = ids.map((id) => api.hold("/emails", id));
      const response = await request("/orders/batch", { ids });
      assert.equal(response.status, 202);
      await response.body?.cancel();

      for (const [i, id] of ids.entries()) {
        await api.call(`the email call for ${id}`, "/emails", id);
        // With concurrency 1, the next one has not started.
        assert.equal(api.find("/emails", ids[i + 1] ?? "none"), undefined);
        releases[i]();
        await api.call(`the confirmation of ${id}`, "/confirmed", id);
      }
      const done = await api.printed("the batch summary", /batch done: (.*)/);
      assert.equal(done[1], "fulfilled, fulfilled, fulfilled");
    });
  },
);

workerdTest(
  "TaskManager({ concurrency }) shared by requests in workerd: a task queued by one request and started by another's never finishes",
  async () => {
    // A documented limitation, shown here so the docs stay true.
    await withWorkerd("worker.ts", async ({ api, request }) => {
      const releaseFirst = api.hold("/emails", "w-first");
      const first = await request("/debug/limited-orders", { id: "w-first" });
      await first.body?.cancel();
      await api.call("the first email call", "/emails", "w-first");
      const second = await request("/debug/limited-orders", { id: "w-second" });
      await second.body?.cancel();
      const queued = await request("/debug/limited-orders");
      assert.deepEqual(await queued.json(), { running: 1, pending: 1 });

      // The first task settles, and the second starts inside the first
      // request's I/O context, which workerd then ends: the second task's
      // email call may or may not go out, but its answer never comes back,
      // so the task never finishes, while a later order does.
      releaseFirst();
      await api.call("the first confirmation", "/confirmed", "w-first");
      const kept = await request("/orders", { id: "w-after" });
      await kept.body?.cancel();
      await api.call("a later order's confirmation", "/confirmed", "w-after");
      assert.equal(api.find("/confirmed", "w-second"), undefined);
      const stuck = await request("/debug/limited-orders");
      assert.deepEqual(await stuck.json(), { running: 1, pending: 0 });
    });
  },
);

// ---------------------------------------------------------------------------
// Vercel's edge runtime

test("backgroundTasks() in the edge runtime: POST /orders answers 201 first, and response.waitUntil() resolves once its task finished", async () => {
  await withEdgeRuntime("vercel.ts", async ({ api, request }) => {
    const release = api.hold("/emails", "v-1");
    const response = await request("/orders", { id: "v-1" });
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { id: "v-1", status: "received" });

    await api.call("the email call", "/emails", "v-1");
    const waiting = track(response.waitUntil());
    await flush();
    assert.equal(waiting.settled, false); // the host still waits for the task
    assert.equal(api.find("/confirmed", "v-1"), undefined);

    release();
    await response.waitUntil();
    assert.notEqual(api.find("/confirmed", "v-1"), undefined);
    const status = await request("/orders/v-1");
    assert.deepEqual(await status.json(), { id: "v-1", status: "confirmed" });
  });
});

test("RunOptions.waitUntil in a plain Vercel function keeps the task alive after the response", async () => {
  await withEdgeRuntime("vercel_function.ts", async ({ api, request }) => {
    const release = api.hold("/send", "v-2");
    const response = await request("/", { id: "v-2" });
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { id: "v-2", status: "received" });

    await api.call("the email call", "/send", "v-2");
    const waiting = track(response.waitUntil());
    await flush();
    assert.equal(waiting.settled, false);
    release();
    await response.waitUntil();
    assert.equal(api.find("/send", "v-2")?.aborted, false);
  });
});

test("TaskManager.run() without waitUntil in the edge runtime is not waited for by the host", async () => {
  await withEdgeRuntime("vercel.ts", async ({ api, request }) => {
    const release = api.hold("/emails", "v-lost");
    const response = await request("/debug/unregistered-orders", {
      id: "v-lost",
    });
    assert.equal(response.status, 201);
    await response.body?.cancel();

    // The host's view: nothing is left to wait for, although the task is
    // still blocked on its email call. On Vercel the function may now be
    // frozen or stopped.
    await api.call("the email call", "/emails", "v-lost");
    await response.waitUntil();
    assert.equal(api.find("/confirmed", "v-lost"), undefined);

    // This sandbox does not stop the isolate, so let the task finish.
    release();
    await api.call("the late confirmation", "/confirmed", "v-lost");
  });
});

test("runScenario() in the edge runtime reports what it reports here", async () => {
  const expected = await runScenario(new TaskManager());
  await withEdgeRuntime("vercel.ts", async ({ request }) => {
    const response = await request("/debug/scenario", {});
    const { globals, report } = await response.json();
    assert.deepEqual(report, expected);
    for (const name of REQUIRED_GLOBALS) {
      assert.equal(globals[name], true, `the edge runtime lacks ${name}`);
    }
    // The two the core avoids are indeed missing there.
    assert.equal(globals["AbortSignal.any"], false);
    assert.equal(globals.CustomEvent, false);
  });
});

test("RunOptions.timeout in the edge runtime aborts a task over its budget, and its cleanup runs before waitUntil resolves", async () => {
  await withEdgeRuntime("vercel.ts", async ({ api, request }) => {
    api.hold("/slow", "v-job");
    const response = await request("/debug/budget", { id: "v-job", ms: 200 });
    assert.equal(response.status, 202);
    await response.body?.cancel();

    await response.waitUntil();
    assert.deepEqual(api.find("/cleanup", "v-job")?.body, {
      job: "v-job",
      aborted: true,
      reason: "TimeoutError",
    });
    assert.equal(api.find("/slow", "v-job")?.aborted, true);
  });
});
