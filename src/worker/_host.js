// The script each WorkerPool worker runs (see worker_pool.ts). It imports the
// user's module on the first request, then answers every request with exactly
// one reply, as _protocol.ts describes (the typedefs below mirror
// it).
//
// Plain JavaScript on purpose: it loads unchanged in browsers and in packages
// whose TypeScript was compiled to JavaScript. It has no `// @ts-check` and
// imports no TypeScript, not even for types: either makes `deno test` type
// check it each time a worker starts (half a second per worker). Web
// standards only.

/** @typedef {{ module: string, export: string, input: unknown }} WorkerRequest */
/** @typedef {{ name: string, message: string, stack: string | undefined, dom: boolean }} RemoteError */
/**
 * @typedef {{ ok: true, value: unknown }
 *   | { ok: false, error: RemoteError }
 *   | { ok: false, thrown: unknown }
 *   | { ok: false, load: RemoteError }
 *   | { ok: false, exit: string }} Reply
 */
/** @typedef {Reply & { from: typeof FROM }} WorkerReply */
/** @typedef {(input: unknown) => unknown} Work */
/**
 * @typedef {object} WorkerScope
 * @property {(message: WorkerReply, transfer?: Transferable[]) => void} postMessage
 * @property {(type: "message", listener: (event: MessageEvent<WorkerRequest>) => void) => void} addEventListener
 */

/** The brand of a value made by `transfer()` in transfer.ts (same key). */
const TRANSFER = Symbol.for("@background/tasks/worker.transfer");

/** The `from` of every reply (`FROM` in _protocol.ts). */
const FROM = "@background/tasks/worker";

/**
 * Turns a thrown Error into something every runtime can clone.
 *
 * @param {unknown} error
 * @returns {RemoteError | undefined} `undefined` when `error` is no Error.
 */
function describe(error) {
  // Only an Error (a DOMException is one): any other value, even with a
  // `message`, is cloned as it is.
  if (!(error instanceof Error)) return undefined;
  const { name, message, stack } = /** @type {Partial<Error>} */ (error);
  if (typeof message !== "string") return undefined;
  return {
    name: typeof name === "string" ? name : "Error",
    message,
    stack: typeof stack === "string" ? stack : undefined,
    dom: typeof DOMException === "function" && error instanceof DOMException,
  };
}

/**
 * @param {unknown} error
 * @returns {RemoteError}
 */
function describeAny(error) {
  return describe(error) ?? /** @type {RemoteError} */ (
    describe(new Error(String(error)))
  );
}

/**
 * @param {unknown} error
 * @returns {boolean}
 */
function isCloneError(error) {
  return /** @type {{ name?: unknown } | null} */ (error)?.name ===
    "DataCloneError";
}

/**
 * @param {string} module
 * @param {string} name
 * @returns {Promise<Work>}
 */
async function load(module, name) {
  /** @type {Record<string, unknown>} */
  const namespace = await import(module);
  const work = namespace[name];
  if (typeof work !== "function") {
    const found = Object.keys(namespace)
      .filter((key) => typeof namespace[key] === "function")
      .map((key) => JSON.stringify(key));
    throw new TypeError(
      `the module has no function export ${JSON.stringify(name)} ` +
        `(function exports: ${found.length === 0 ? "none" : found.join(", ")})`,
    );
  }
  return /** @type {Work} */ (work);
}

/**
 * Answers requests, one reply each.
 *
 * @param {WorkerScope} scope
 */
function serve(scope) {
  /** @type {Promise<Work> | undefined} */
  let loading;

  /**
   * @param {Reply} reply
   * @param {Transferable[]} [transfer]
   */
  const send = (reply, transfer = []) =>
    scope.postMessage({ from: FROM, ...reply }, transfer);

  // A worker that ends itself fires no event on Deno (Bun fires `close`):
  // tell the pool first, so that the run it was doing is not left waiting.
  const global = /** @type {any} */ (globalThis);
  const deno = global.Deno;
  if (typeof global.close === "function") {
    const close = global.close;
    global.close = () => {
      send({ ok: false, exit: "close()" });
      close.call(globalThis);
    };
  }
  if (typeof deno?.exit === "function") {
    const exit = deno.exit;
    try {
      deno.exit = (/** @type {number | undefined} */ code) => {
        send({ ok: false, exit: `Deno.exit(${code ?? ""})` });
        return exit.call(deno, code);
      };
    } catch {
      // Not writable here: the pool then learns of nothing.
    }
  }

  /** @param {unknown} error */
  const fail = (error) => {
    const remote = describe(error);
    if (remote !== undefined) {
      return send({ ok: false, error: remote });
    }
    try {
      send({ ok: false, thrown: error });
    } catch {
      send({ ok: false, error: describeAny(error) });
    }
  };

  scope.addEventListener("message", async (event) => {
    const request = event.data;
    /** @type {Work} */
    let work;
    try {
      work = await (loading ??= load(request.module, request.export));
    } catch (error) {
      return send({ ok: false, load: describeAny(error) });
    }
    /** @type {unknown} */
    let result;
    try {
      result = await work(request.input);
    } catch (error) {
      return fail(error);
    }
    let value = result;
    /** @type {Transferable[]} */
    let transfer = [];
    if (result !== null && typeof result === "object" && TRANSFER in result) {
      // A result marked by `transfer()`: `{ value, transfer, [TRANSFER] }`.
      const marked =
        /** @type {{ value: unknown, transfer: Transferable[] }} */ (
          /** @type {unknown} */ (result)
        );
      value = marked.value;
      transfer = marked.transfer;
    }
    try {
      send({ ok: true, value }, transfer);
    } catch (error) {
      // Bun refuses to transfer some buffers (imagescript's encoder output
      // is "marked as untransferable"): copy them instead.
      if (transfer.length > 0 && isCloneError(error)) {
        try {
          return send({ ok: true, value });
        } catch (again) {
          return fail(again);
        }
      }
      // A value that cannot be cloned or transferred (a function, say).
      fail(error);
    }
  });
}

serve(/** @type {WorkerScope} */ (/** @type {unknown} */ (globalThis)));
