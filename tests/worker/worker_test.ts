import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { TaskManager } from "../../mod.ts";
import { transfer, WorkerPool } from "../../src/worker/mod.ts";
import type { Operation } from "./fixtures/pool_worker.ts";
import { flush, test } from "../_harness.ts";

// WorkerPool needs the web `Worker` (Deno, Bun, browsers). Node 22 has none:
// there the tests that start workers do not exist (they run under Deno and
// Bun), and the argument checks and the "no Worker" rejection run.
const hasWorker = typeof Worker === "function";

/** A test that starts workers: registered where there is a web Worker. */
function workerTest(name: string, fn: () => Promise<void>): void {
  if (hasWorker) test(name, fn);
}

const MODULE = new URL("./fixtures/pool_worker.ts", import.meta.url);
const BROKEN = new URL("./fixtures/broken_worker.ts", import.meta.url);

/** A pool over the fixture's default export. */
function pool(size = 1): WorkerPool<Operation, unknown> {
  return new WorkerPool<Operation, unknown>(MODULE, { size });
}

/**
 * Shared flags for "spin" and "hold": [0] is set by the worker when the run
 * starts, [1] by the test to let it return.
 */
function flags(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(8));
}

/** Resolves once the worker has set flags[0]. */
async function whenStarted(shared: Int32Array): Promise<void> {
  const result = Atomics.waitAsync(shared, 0, 0);
  if (result.async) await result.value;
}

/** Lets a "spin" or "hold" run return (where termination did not stop it). */
function release(shared: Int32Array): void {
  Atomics.store(shared, 1, 1);
  Atomics.notify(shared, 1);
}

workerTest("run() returns the function's result", async () => {
  const workers = pool();
  try {
    const value = {
      text: "thumb",
      sizes: [150, 300],
      at: new Date(0),
      tags: new Map([["a", 1]]),
    };
    assert.deepEqual(await workers.run({ op: "echo", value }), value);
  } finally {
    await workers.close();
  }
});

workerTest("WorkerPool() calls the named export", async () => {
  const workers = new WorkerPool<number, number>(MODULE, {
    size: 1,
    export: "double",
  });
  try {
    assert.equal(await workers.run(21), 42);
  } finally {
    await workers.close();
  }
});

workerTest("run() waits for an async function", async () => {
  const workers = new WorkerPool<number, number>(MODULE, {
    size: 1,
    export: "later",
  });
  try {
    assert.equal(await workers.run(1), 2);
  } finally {
    await workers.close();
  }
});

workerTest("run() transfers the input buffers it is given", async () => {
  const workers = pool();
  try {
    const buffer = new ArrayBuffer(64);
    const length = await workers.run({ op: "byteLength", buffer }, {
      transfer: [buffer],
    });
    assert.equal(length, 64);
    assert.equal(buffer.byteLength, 0);
  } finally {
    await workers.close();
  }
});

workerTest(
  "run() of a run that waits takes its input at the call: later changes do not reach it",
  async () => {
    const workers = pool();
    const shared = flags();
    try {
      const held = workers.run({ op: "hold", flags: shared });
      const value = { n: 1 };
      const buffer = new Uint8Array([1, 2, 3]).buffer;
      const queued = workers.run({ op: "echo", value });
      const moved = workers.run({ op: "byteLength", buffer }, {
        transfer: [buffer],
      });
      assert.equal(workers.pendingCount, 2);
      assert.equal(buffer.byteLength, 0, "detached when run() returned");
      value.n = 2;
      await whenStarted(shared);
      release(shared);
      assert.equal(await held, "held");
      assert.deepEqual(await queued, { n: 1 });
      assert.equal(await moved, 3);
    } finally {
      release(shared);
      await workers.close();
    }
  },
);

workerTest(
  "run() of a run that waits rejects at once an input that cannot be cloned",
  async () => {
    const workers = pool();
    const shared = flags();
    try {
      const held = workers.run({ op: "hold", flags: shared });
      await assert.rejects(
        workers.run({ op: "echo", value: () => {} }),
        { name: "DataCloneError" },
      );
      assert.equal(workers.pendingCount, 0);
      await whenStarted(shared);
      release(shared);
      assert.equal(await held, "held");
    } finally {
      release(shared);
      await workers.close();
    }
  },
);

workerTest(
  "aborting a signal that a running and a queued run share starts no worker for the queued one",
  async () => {
    const Original = globalThis.Worker;
    let started = 0;
    globalThis.Worker = class extends Original {
      constructor(...args: ConstructorParameters<typeof Worker>) {
        super(...args);
        started++;
      }
    };
    const workers = pool();
    const shared = flags();
    try {
      const controller = new AbortController();
      const { signal } = controller;
      const running = workers.run({ op: "hold", flags: shared }, { signal });
      const queued = workers.run({ op: "echo", value: 1 }, { signal });
      await whenStarted(shared);
      controller.abort();
      await assert.rejects(running, { name: "AbortError" });
      await assert.rejects(queued, { name: "AbortError" });
      await flush();
      assert.equal(started, 1);
      assert.equal(workers.busyCount + workers.pendingCount, 0);
    } finally {
      globalThis.Worker = Original;
      release(shared);
      await workers.close();
    }
  },
);

workerTest("transfer() moves a result's buffers to the caller", async () => {
  const workers = pool();
  try {
    const bytes = await workers.run({ op: "bytes", size: 3 });
    assert.ok(bytes instanceof Uint8Array);
    assert.deepEqual([...bytes], [7, 7, 7]);
    assert.equal(await workers.run({ op: "lastSentDetached" }), true);
  } finally {
    await workers.close();
  }
});

workerTest(
  "run() rejects with the error's class, name and message",
  async () => {
    const workers = pool();
    try {
      const run = workers.run({
        op: "throw",
        name: "RangeError",
        message: "width out of range",
      });
      await assert.rejects(run, (error: unknown) => {
        assert.ok(error instanceof RangeError);
        assert.equal(error.message, "width out of range");
        return true;
      });
      const custom = workers.run({
        op: "throw",
        name: "ValidationError",
        message: "not an image",
      });
      await assert.rejects(custom, (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.equal(error.name, "ValidationError");
        assert.equal(error.message, "not an image");
        return true;
      });
    } finally {
      await workers.close();
    }
  },
);

workerTest("run() rejects with a thrown non-Error value as it is", async () => {
  const workers = pool();
  try {
    for (const value of [{ code: 7 }, { code: 7, message: "has a message" }]) {
      await assert.rejects(
        workers.run({ op: "throwValue", value }),
        (reason: unknown) => {
          assert.ok(!(reason instanceof Error));
          assert.deepEqual(reason, value);
          return true;
        },
      );
    }
  } finally {
    await workers.close();
  }
});

workerTest("run() rejects a result that cannot be cloned", async () => {
  const workers = pool();
  try {
    await assert.rejects(workers.run({ op: "returnFunction" }), {
      name: "DataCloneError",
    });
    assert.equal(await workers.run({ op: "echo", value: 1 }), 1);
  } finally {
    await workers.close();
  }
});

workerTest("run() rejects an input that cannot be cloned", async () => {
  const workers = pool();
  try {
    await assert.rejects(
      workers.run({ op: "echo", value: () => {} }),
      { name: "DataCloneError" },
    );
    assert.equal(workers.busyCount, 0);
    assert.equal(await workers.run({ op: "echo", value: 1 }), 1);
  } finally {
    await workers.close();
  }
});

workerTest(
  "run() rejects naming the module when its worker exits itself, and the pool goes on",
  async () => {
    const workers = pool();
    try {
      await assert.rejects(
        workers.run({ op: "exit" }),
        (error: unknown) => {
          assert.ok(error instanceof Error);
          assert.ok(error.message.includes(MODULE.href), error.message);
          assert.match(error.message, /before its function returned/);
          return true;
        },
      );
      assert.equal(workers.busyCount, 0);
      assert.equal(await workers.run({ op: "echo", value: "next" }), "next");
    } finally {
      await workers.close();
    }
  },
);

workerTest(
  "a message the function posts itself is not taken for its result",
  async () => {
    const workers = pool();
    try {
      const first = workers.run({
        op: "post",
        message: { progress: 0.5 },
        value: "first",
      });
      const second = workers.run({ op: "echo", value: "second" });
      const third = workers.run({ op: "post", message: "a string", value: 3 });
      assert.deepEqual(await Promise.all([first, second, third]), [
        "first",
        "second",
        3,
      ]);
    } finally {
      await workers.close();
    }
  },
);

workerTest(
  "run() rejects naming the module when its worker crashes, and replaces it",
  async () => {
    const workers = pool();
    try {
      const before = await workers.run({ op: "whoami" });
      await assert.rejects(
        workers.run({ op: "crash", message: "kaboom" }),
        (error: unknown) => {
          assert.ok(error instanceof Error);
          assert.match(error.message, /crashed/);
          assert.ok(error.message.includes(MODULE.href), error.message);
          assert.match(error.message, /kaboom/);
          return true;
        },
      );
      assert.equal(workers.busyCount, 0);
      const after = await workers.run({ op: "whoami" });
      assert.notEqual(after, before);
    } finally {
      await workers.close();
    }
  },
);

workerTest(
  "run() rejects naming the module when it fails to load",
  async () => {
    const workers = new WorkerPool(BROKEN, { size: 1 });
    try {
      await assert.rejects(workers.run(undefined), (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.ok(error.message.includes(BROKEN.href), error.message);
        assert.match(error.message, /broken at load/);
        assert.ok(error.cause instanceof Error);
        return true;
      });
      // The worker was replaced: the next run tries the import again.
      await assert.rejects(workers.run(undefined), /broken at load/);
    } finally {
      await workers.close();
    }
  },
);

workerTest(
  "run() rejects naming the export when it is not a function",
  async () => {
    const workers = new WorkerPool(MODULE, { size: 1, export: "notAFunction" });
    try {
      await assert.rejects(workers.run(undefined), (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.match(error.message, /"notAFunction"/);
        assert.match(error.message, /no function export/);
        assert.match(error.message, /"double"/);
        return true;
      });
    } finally {
      await workers.close();
    }
  },
);

workerTest(
  "run() aborting a busy worker terminates and replaces it",
  async () => {
    const workers = pool();
    const shared = flags();
    try {
      const before = await workers.run({ op: "whoami" });
      const controller = new AbortController();
      const run = workers.run({ op: "spin", flags: shared }, {
        signal: controller.signal,
      });
      await whenStarted(shared);
      const reason = new Error("took too long");
      controller.abort(reason);
      await assert.rejects(run, (error: unknown) => error === reason);
      assert.equal(workers.busyCount, 0);
      const after = await workers.run({ op: "whoami" });
      assert.notEqual(after, before);
    } finally {
      // Deno 2.9 does not interrupt a worker in a synchronous loop: end it here.
      release(shared);
      await workers.close();
    }
  },
);

workerTest("run() rejects at once with an already aborted signal", async () => {
  const workers = pool();
  try {
    const reason = new Error("gone");
    const run = workers.run({ op: "echo", value: 1 }, {
      signal: AbortSignal.abort(reason),
    });
    assert.equal(workers.busyCount, 0);
    assert.equal(workers.pendingCount, 0);
    await assert.rejects(run, (error: unknown) => error === reason);
  } finally {
    await workers.close();
  }
});

workerTest(
  "run() aborting a queued run takes it out of the queue",
  async () => {
    const workers = pool();
    const shared = flags();
    try {
      const held = workers.run({ op: "hold", flags: shared });
      const controller = new AbortController();
      const queued = workers.run({ op: "echo", value: 1 }, {
        signal: controller.signal,
      });
      assert.equal(workers.pendingCount, 1);
      controller.abort();
      await assert.rejects(queued, { name: "AbortError" });
      assert.equal(workers.pendingCount, 0);
      await whenStarted(shared);
      release(shared);
      assert.equal(await held, "held");
    } finally {
      release(shared);
      await workers.close();
    }
  },
);

workerTest("run() removes its abort listener when it settles", async () => {
  const workers = pool();
  try {
    const controller = new AbortController();
    const signal = controller.signal;
    let listeners = 0;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<typeof add>) => {
      listeners++;
      add(...args);
    }) as typeof add;
    signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      listeners--;
      remove(...args);
    }) as typeof remove;
    await workers.run({ op: "echo", value: 1 }, { signal });
    assert.equal(listeners, 0);
    await assert.rejects(
      workers.run({ op: "throw", name: "Error", message: "no" }, { signal }),
      /no/,
    );
    assert.equal(listeners, 0);
  } finally {
    await workers.close();
  }
});

workerTest(
  "run() queues runs in FIFO order when every worker is busy",
  async () => {
    const workers = pool(2);
    const first = flags();
    const second = flags();
    const counter = new Int32Array(new SharedArrayBuffer(4));
    try {
      const held = [
        workers.run({ op: "hold", flags: first }),
        workers.run({ op: "hold", flags: second }),
      ];
      const a = workers.run({ op: "stamp", counter });
      const b = workers.run({ op: "stamp", counter });
      assert.equal(workers.busyCount, 2);
      assert.equal(workers.pendingCount, 2);
      await whenStarted(first);
      release(first);
      // One worker is free: a runs, then b, in the order they were queued.
      assert.equal(await a, 1);
      assert.equal(await b, 2);
      assert.equal(workers.pendingCount, 0);
      release(second);
      assert.deepEqual(await Promise.all(held), ["held", "held"]);
      assert.equal(workers.busyCount, 0);
    } finally {
      release(first);
      release(second);
      await workers.close();
    }
  },
);

workerTest(
  "close() rejects running and queued runs, and later runs",
  async () => {
    const workers = pool();
    const shared = flags();
    try {
      const running = assert.rejects(
        workers.run({ op: "hold", flags: shared }),
        { name: "AbortError" },
      );
      const queued = assert.rejects(workers.run({ op: "echo", value: 1 }), {
        name: "AbortError",
      });
      await whenStarted(shared);
      await workers.close();
      await running;
      await queued;
      assert.equal(workers.busyCount, 0);
      assert.equal(workers.pendingCount, 0);
      await assert.rejects(
        workers.run({ op: "echo", value: 1 }),
        (error: unknown) => {
          assert.ok(error instanceof Error);
          assert.match(error.message, /closed/);
          assert.ok(error.message.includes(MODULE.href), error.message);
          return true;
        },
      );
      await workers.close(); // again: nothing to do
    } finally {
      release(shared);
      await workers.close();
    }
  },
);

workerTest(
  "run() in a TaskManager task: cancelling the task terminates its worker",
  async () => {
    const tasks = new TaskManager();
    const workers = pool();
    const shared = flags();
    try {
      const before = await workers.run({ op: "whoami" });
      const thumb = tasks.runWithResult(
        "thumbnail",
        ({ signal }) => workers.run({ op: "spin", flags: shared }, { signal }),
      );
      await whenStarted(shared);
      assert.equal(thumb.cancel(), true);
      await assert.rejects(thumb.value, { name: "AbortError" });
      assert.equal(thumb.status, "cancelled");
      assert.equal(workers.busyCount, 0);
      assert.notEqual(await workers.run({ op: "whoami" }), before);
    } finally {
      release(shared);
      await workers.close();
      await tasks.shutdown({ timeout: 0 });
    }
  },
);

test("run() rejects where the runtime has no Worker", async () => {
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  if (descriptor !== undefined) {
    Object.defineProperty(globalThis, "Worker", {
      value: undefined,
      configurable: true,
      writable: true,
    });
  }
  try {
    const workers = new WorkerPool(MODULE);
    await assert.rejects(workers.run(undefined), /has no web Worker/);
    await workers.close();
  } finally {
    if (descriptor !== undefined) {
      Object.defineProperty(globalThis, "Worker", descriptor);
    }
  }
});

test("WorkerPool() rejects a module that is not an absolute URL", () => {
  assert.throws(() => new WorkerPool("./fixtures/pool_worker.ts"), {
    name: "TypeError",
    message:
      /Cannot create WorkerPool: 'module' must be a URL or an absolute URL string .*, received "\.\/fixtures\/pool_worker\.ts"/,
  });
  assert.throws(() => new WorkerPool(42 as unknown as string), {
    name: "TypeError",
    message: /'module' .* received 42/,
  });
});

test("WorkerPool() rejects a size that is not a positive integer", () => {
  assert.throws(() => new WorkerPool(MODULE, { size: 0 }), {
    name: "RangeError",
    message:
      "Cannot create WorkerPool: 'size' must be a positive integer, received 0",
  });
  assert.throws(() => new WorkerPool(MODULE, { size: 1.5 }), {
    name: "RangeError",
    message: /received 1\.5/,
  });
  assert.throws(() => new WorkerPool(MODULE, { size: Infinity }), {
    name: "RangeError",
    message: /received Infinity/,
  });
  assert.throws(
    () => new WorkerPool(MODULE, { size: "2" as unknown as number }),
    { name: "TypeError", message: /'size' .* received "2"/ },
  );
});

test("WorkerPool() rejects an export that is not a non-empty string", () => {
  assert.throws(() => new WorkerPool(MODULE, { export: "" }), {
    name: "TypeError",
    message:
      `Cannot create WorkerPool: 'export' must be a non-empty string, received ""`,
  });
  assert.throws(() => new WorkerPool(MODULE, null as unknown as object), {
    name: "TypeError",
    message: /'options' must be an object, received null/,
  });
});

test("WorkerPool() defaults to between 1 and 4 workers, none started", async () => {
  const workers = new WorkerPool(MODULE);
  assert.ok(workers.size >= 1 && workers.size <= 4, String(workers.size));
  assert.equal(workers.busyCount, 0);
  assert.equal(workers.pendingCount, 0);
  await workers.close();
});

test("run() rejects options of the wrong type", async () => {
  const workers = new WorkerPool(MODULE, { size: 1 });
  try {
    assert.throws(
      () =>
        workers.run(undefined, { signal: "stop" as unknown as AbortSignal }),
      {
        name: "TypeError",
        message:
          `Cannot run in WorkerPool: 'signal' must be an AbortSignal, received "stop"`,
      },
    );
    assert.throws(
      () =>
        workers.run(undefined, {
          transfer: new ArrayBuffer(1) as unknown as Transferable[],
        }),
      { name: "TypeError", message: /'transfer' must be an array/ },
    );
    assert.equal(workers.pendingCount, 0);
  } finally {
    await workers.close();
  }
});

test("transfer() rejects a list that is not an array", () => {
  assert.throws(
    () => transfer(1, new ArrayBuffer(1) as unknown as Transferable[]),
    {
      name: "TypeError",
      message:
        "Cannot mark a result for transfer: 'transferables' must be an array, received an instance of ArrayBuffer",
    },
  );
});

test("transfer() lists a typed array as its buffer", () => {
  const bytes = new Uint8Array(8).fill(1);
  const marked = transfer(bytes, [bytes]);
  assert.equal(marked.value, bytes);
  assert.deepEqual(marked.transfer, [bytes.buffer]);
  // Its `buffer`, typed ArrayBufferLike, is taken as it is.
  assert.deepEqual(transfer(bytes, [bytes.buffer]).transfer, [bytes.buffer]);
});

test("transfer() copies a result that is a view over part of a larger buffer", () => {
  const memory = new ArrayBuffer(64);
  const view = new Uint8Array(memory, 16, 8).fill(9);
  const marked = transfer(view, [view]);
  assert.notEqual(marked.value, view);
  assert.deepEqual([...marked.value], [...view]);
  assert.equal(marked.value.byteOffset, 0);
  assert.equal(marked.value.buffer.byteLength, 8);
  assert.deepEqual(marked.transfer, [marked.value.buffer]);
  assert.equal(memory.byteLength, 64, "the larger buffer is left alone");
  const data = new DataView(memory, 4, 4);
  const copied = transfer(data, [data]).value;
  assert.ok(copied instanceof DataView);
  assert.equal(copied.buffer.byteLength, 4);
});

test("transfer() refuses a partial view inside the result, and shared memory, saying what to do", () => {
  const view = new Uint8Array(new ArrayBuffer(64), 16, 8);
  assert.throws(() => transfer({ bytes: view }, [view]), {
    name: "TypeError",
    message:
      "Cannot mark a result for transfer: 'transferables[0]' is an instance of Uint8Array over 8 of the 64 bytes of its buffer: transferring the buffer would move the rest too. Put a copy in its place (view.slice()) and list the copy",
  });
  const shared = new SharedArrayBuffer(8);
  assert.throws(() => transfer(shared, [shared]), {
    name: "TypeError",
    message:
      "Cannot mark a result for transfer: 'transferables[0]' is a SharedArrayBuffer: it is shared between threads as it is, never transferred; leave it out of the list",
  });
  assert.throws(() => transfer(1, "bytes" as never), {
    name: "TypeError",
    message:
      "Cannot mark a result for transfer: 'transferables' must be an array, received \"bytes\"",
  });
});

workerTest(
  "run() transfers a typed array's buffer when given the typed array",
  async () => {
    const workers = pool();
    try {
      const bytes = new Uint8Array(1024).fill(3);
      const length = await workers.run({
        op: "byteLength",
        buffer: bytes.buffer as ArrayBuffer,
      }, { transfer: [bytes] });
      assert.equal(length, 1024);
      assert.equal(bytes.byteLength, 0, "detached: it moved to the worker");
    } finally {
      await workers.close();
    }
  },
);

/** Runs `script` with `runtime` from node_modules/.bin; its exit code and output. */
function runScript(
  runtime: "deno" | "bun",
  script: string,
): Promise<{ code: number | null; output: string }> {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const args = runtime === "deno" ? ["run", "-A", script] : [script];
  return new Promise((resolve, reject) => {
    execFile(
      join(root, "node_modules", ".bin", runtime),
      args,
      { cwd: root, timeout: 15_000, env: { ...process.env, NO_COLOR: "1" } },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") reject(error);
        else {
          resolve({
            code: error === null ? 0 : error.code as number,
            output: stdout + stderr,
          });
        }
      },
    );
  });
}

test("a Bun script that ran one pool job ends by itself: idle workers are unref'd", async () => {
  const { code, output } = await runScript(
    "bun",
    "tests/worker/fixtures/one_job.ts",
  );
  assert.equal(code, 0, output);
  assert.match(output, /\{"result":42\}/);
});
