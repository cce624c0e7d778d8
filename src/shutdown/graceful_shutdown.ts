// gracefulShutdown(): one shutdown hook for Deno, Bun and Node. On SIGTERM or
// SIGINT it drains the manager (the Hono middleware answers 503 from that
// moment), closes worker pools and queues, runs the user's handlers, stops
// the server, logs the report and exits.

import { schedulerOf } from "../core/_registry.ts";
import {
  BOOLEAN,
  BOUND,
  checkOptions,
  FUNCTION,
  Rule,
  show,
} from "../core/_validate.ts";
import type { ShutdownReport, TaskManager } from "../core/task_manager.ts";
import {
  canListen,
  exit,
  forceStopServer,
  isServer,
  onSignal,
  type StoppableServer,
  stopServer,
} from "./_runtime.ts";

export type { StoppableServer };

/** Something the hook closes after the tasks drained: a `WorkerPool`, a `DurableQueue`, a database. */
export type Closable =
  | { close(): unknown }
  | { [Symbol.asyncDispose](): PromiseLike<void> };

/** A signal the hook can listen for. */
export type ShutdownSignal = "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGQUIT";

/** Options for {@linkcode gracefulShutdown}. */
export interface GracefulShutdownOptions {
  /** The manager to drain. */
  tasks: TaskManager;
  /**
   * The server to stop, last: what `Deno.serve` or `Bun.serve` returned, or
   * a Node `http.Server` (what `serve()` of `@hono/node-server` returns). It
   * keeps accepting until then, so that the Hono middleware answers new
   * requests 503 with `Connection: close` instead of the connection being
   * refused.
   *
   * @default {none}
   */
  server?: StoppableServer;
  /**
   * What to close, in this order, once the tasks drained: worker pools,
   * durable queues, anything with `close()` or `[Symbol.asyncDispose]()`.
   *
   * @default {[]}
   */
  close?: readonly Closable[];
  /**
   * Milliseconds to wait for the tasks, and for the requests still in their
   * handlers, before cancelling the tasks (the manager's `shutdown` timeout).
   *
   * @default {3000}
   */
  timeout?: number;
  /**
   * Milliseconds the cancelled tasks get to return (the manager's `shutdown`
   * grace).
   *
   * @default {1000}
   */
  grace?: number;
  /**
   * Milliseconds for what comes after the tasks: closing, the handlers given
   * to `onShutdown`, stopping the server. With the defaults the whole
   * shutdown takes at most 4.5 s, under Deno Deploy's 5 s between SIGINT and
   * the kill.
   *
   * @default {500}
   */
  closeTimeout?: number;
  /**
   * The signals that start the shutdown.
   *
   * @default {["SIGTERM", "SIGINT"]}
   */
  signals?: readonly ShutdownSignal[];
  /**
   * Whether to end the process when the shutdown is over: with 0, or with 1
   * when tasks were abandoned or a step failed.
   *
   * @default {true}
   */
  exit?: boolean;
  /**
   * Where the hook's lines go: what started the shutdown, the report, what
   * failed.
   *
   * @default {`console.log`, and `console.error` for problems}
   */
  log?: (message: string, problem: boolean) => void;
}

/** What a shutdown found; {@linkcode GracefulShutdown.prototype.shutdown} resolves with it. */
export interface GracefulShutdownReport {
  /** What started it: the signal's name, or `"shutdown()"`. */
  readonly reason: string;
  /** The manager's report: completed, cancelled, abandoned. */
  readonly tasks: ShutdownReport;
  /** What failed while closing, in the handlers or stopping the server, in order. */
  readonly errors: readonly unknown[];
  /** 0, or 1 when tasks were abandoned or something failed or ran out of time. */
  readonly exitCode: 0 | 1;
}

const SIGNALS: readonly ShutdownSignal[] = ["SIGTERM", "SIGINT"];

/**
 * The shutdown hook that {@linkcode gracefulShutdown} makes. Its one
 * invariant: whatever starts it (a signal, a second signal, a call), the
 * shutdown runs once, in this order, and every step is bounded in time:
 *
 * 1. `signal` aborts, and the manager's `shutdown({ timeout, grace })`
 *    begins: from now on the Hono middleware answers new requests 503 with
 *    `Retry-After` and `Connection: close`, requests already in their
 *    handlers finish (the tasks they start included), and the tasks drain;
 * 2. the `close` list is closed, in order;
 * 3. the handlers given to `onShutdown` run, in order;
 * 4. the server stops;
 * 5. the report is logged and, unless `exit: false`, the process exits with
 *    `exitCode`.
 *
 * Steps 2 to 4 share `closeTimeout`; a step that fails or runs out of time
 * is logged, the next one still runs, and the exit code becomes 1.
 */
export class GracefulShutdown implements Disposable {
  readonly #tasks: TaskManager;
  readonly #server: StoppableServer | undefined;
  readonly #close: readonly Closable[];
  readonly #timeout: number;
  readonly #grace: number;
  readonly #closeTimeout: number;
  readonly #exit: boolean;
  readonly #log: (message: string, problem: boolean) => void;
  readonly #handlers: (() => unknown)[] = [];
  readonly #unlisten: (() => void)[] = [];
  readonly #controller = new AbortController();
  #report: Promise<GracefulShutdownReport> | undefined = undefined;

  /**
   * Listens for the signals; see {@linkcode gracefulShutdown}.
   *
   * @param options The manager, the server, what to close, the bounds.
   * @throws {TypeError} An option of the wrong type.
   * @throws {RangeError} A bound out of range.
   */
  constructor(options: GracefulShutdownOptions) {
    const where = "Cannot set up gracefulShutdown";
    checkOptions(where, options);
    if (options === undefined) {
      throw new TypeError(
        `${where}: 'options' must be an object with the TaskManager as 'tasks', received undefined`,
      );
    }
    schedulerOf(where, options.tasks, "the shutdown hook");
    SERVER.check(where, "server", options.server);
    CLOSABLES.check(where, "close", options.close);
    BOUND.check(where, "timeout", options.timeout);
    BOUND.check(where, "grace", options.grace);
    BOUND.check(where, "closeTimeout", options.closeTimeout);
    SIGNAL_LIST.check(where, "signals", options.signals);
    BOOLEAN.check(where, "exit", options.exit);
    FUNCTION.check(where, "log", options.log);
    this.#tasks = options.tasks;
    this.#server = options.server;
    this.#close = [...(options.close ?? [])];
    this.#timeout = options.timeout ?? 3000;
    this.#grace = options.grace ?? 1000;
    this.#closeTimeout = options.closeTimeout ?? 500;
    this.#exit = options.exit ?? true;
    this.#log = options.log ?? logToConsole;
    const signals = options.signals ?? SIGNALS;
    if (signals.length > 0 && !canListen) {
      throw new Error(
        `${where}: this runtime has no signals to listen for (it runs on Deno, Bun and Node); pass signals: [] and call shutdown() yourself`,
      );
    }
    for (const signal of signals) {
      this.#unlisten.push(onSignal(signal, () => void this.shutdown(signal)));
    }
  }

  /**
   * Aborted the moment a shutdown begins: hand it to what should stop then
   * (an event stream, a long poll).
   *
   * @example End an event stream when the shutdown begins
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import { gracefulShutdown } from "@background/tasks/shutdown";
   * import assert from "node:assert/strict";
   *
   * const hook = gracefulShutdown({ tasks: new TaskManager(), signals: [], exit: false, log: () => {} });
   * assert.equal(hook.signal.aborted, false);
   * await hook.shutdown();
   * assert.equal(hook.signal.aborted, true);
   * ```
   */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Adds a handler that runs at step 3 (after the tasks drained and the
   * `close` list closed, before the server stops), after the handlers added
   * before it. It may be async; what it throws is logged and the exit code
   * becomes 1.
   *
   * @param handler What to run: close a database, flush logs.
   * @returns The hook, to chain.
   * @throws {TypeError} `handler` is not a function.
   *
   * @example Close a database after the tasks that use it
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import { gracefulShutdown } from "@background/tasks/shutdown";
   * import assert from "node:assert/strict";
   *
   * const steps: string[] = [];
   * const tasks = new TaskManager();
   * tasks.run("write", async () => { steps.push("task"); });
   * const hook = gracefulShutdown({ tasks, signals: [], exit: false, log: () => {} })
   *   .onShutdown(() => { steps.push("close database"); })
   *   .onShutdown(async () => { steps.push("flush logs"); });
   * await hook.shutdown();
   * assert.deepEqual(steps, ["task", "close database", "flush logs"]);
   * ```
   */
  onShutdown(handler: () => unknown): this {
    FUNCTION.require("Cannot add a shutdown handler", "handler", handler);
    this.#handlers.push(handler);
    return this;
  }

  /**
   * Runs the shutdown now, as a signal would. Calling it again, or a signal
   * arriving meanwhile, returns the same promise. It never rejects.
   *
   * @param reason What started it, for the log.
   * @returns What the shutdown found.
   *
   * @example Shut down from code, without exiting
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import { gracefulShutdown } from "@background/tasks/shutdown";
   * import assert from "node:assert/strict";
   *
   * const tasks = new TaskManager();
   * tasks.run("send-confirmation", async () => {});
   * const hook = gracefulShutdown({ tasks, signals: [], exit: false, log: () => {} });
   * const report = await hook.shutdown();
   * assert.equal(hook.shutdown(), hook.shutdown());
   * assert.deepEqual(report.tasks, { completed: 1, cancelled: 0, abandoned: [] });
   * assert.equal(report.exitCode, 0);
   * ```
   */
  shutdown(reason: string = "shutdown()"): Promise<GracefulShutdownReport> {
    this.#report ??= this.#run(String(reason));
    return this.#report;
  }

  /**
   * Stops listening for the signals, without shutting down.
   *
   * @example Stop listening
   * ```ts
   * import { TaskManager } from "@background/tasks";
   * import { gracefulShutdown } from "@background/tasks/shutdown";
   *
   * using _hook = gracefulShutdown({ tasks: new TaskManager(), exit: false });
   * ```
   */
  [Symbol.dispose](): void {
    for (const unlisten of this.#unlisten.splice(0)) unlisten();
  }

  async #run(reason: string): Promise<GracefulShutdownReport> {
    this.#controller.abort(
      new DOMException(`The server is shutting down (${reason})`, "AbortError"),
    );
    this.#log(`${reason}: shutting down`, false);
    const tasks = await this.#tasks.shutdown({
      timeout: this.#timeout,
      grace: this.#grace,
    });
    const errors: unknown[] = [];
    const deadline = Date.now() + this.#closeTimeout;
    for (const closable of this.#close) {
      await this.#step(
        `closing ${show(closable)}`,
        deadline,
        errors,
        () =>
          Symbol.asyncDispose in closable &&
            typeof closable[Symbol.asyncDispose] === "function"
            ? closable[Symbol.asyncDispose]()
            : (closable as { close(): unknown }).close(),
      );
    }
    for (const handler of this.#handlers) {
      await this.#step("a shutdown handler", deadline, errors, handler);
    }
    const server = this.#server;
    if (server !== undefined) {
      const stopped = await this.#step(
        "stopping the server",
        deadline,
        errors,
        () => stopServer(server),
      );
      if (!stopped) forceStopServer(server);
    }
    const { completed, cancelled, abandoned } = tasks;
    const exitCode = abandoned.length > 0 || errors.length > 0 ? 1 : 0;
    this.#log(
      `shutdown: ${completed} task(s) completed, ${cancelled} cancelled, ${abandoned.length} abandoned`,
      abandoned.length > 0,
    );
    for (const task of abandoned) {
      this.#log(
        `shutdown: task "${task.name}" (id ${task.id}) was still running`,
        true,
      );
    }
    this[Symbol.dispose]();
    const report = { reason, tasks, errors, exitCode } as const;
    if (this.#exit) exit(exitCode);
    return report;
  }

  /** Runs one step until `deadline`; `false` if it failed or ran out of time. */
  async #step(
    what: string,
    deadline: number,
    errors: unknown[],
    run: () => unknown,
  ): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const late = new Promise<"late">((resolve) => {
        timer = setTimeout(
          () => resolve("late"),
          Math.max(0, deadline - Date.now()),
        );
      });
      if (await Promise.race([Promise.resolve().then(run), late]) === "late") {
        throw new Error(
          `${what} did not finish within closeTimeout (${this.#closeTimeout} ms)`,
        );
      }
      return true;
    } catch (error) {
      errors.push(error);
      this.#log(`shutdown: ${what} failed: ${describe(error)}`, true);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Sets up one graceful shutdown for a server on Deno, Bun or Node: on SIGTERM
 * or SIGINT it drains `tasks` (the Hono middleware answers new requests 503
 * from then on, and requests in their handlers finish), closes the `close`
 * list, runs the `onShutdown` handlers, stops the server, logs the report and
 * exits: 0, or 1 when tasks were abandoned. See {@linkcode GracefulShutdown}
 * for the order and the bounds.
 *
 * A second signal, or calling `shutdown()` again, is harmless: it gets the
 * same shutdown. The defaults (3 s for the tasks, 1 s of grace, 0.5 s for
 * the rest) stay under Deno Deploy's 5 s between SIGINT and the kill.
 *
 * @param options The manager, the server, what to close, the bounds.
 * @returns The hook: its `signal`, `onShutdown`, `shutdown()`.
 * @throws {TypeError} An option of the wrong type.
 * @throws {RangeError} A bound out of range.
 *
 * @example One hook for Deno.serve, Bun.serve and Node
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import { gracefulShutdown } from "@background/tasks/shutdown";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * // In an app: const server = Deno.serve(app.fetch), Bun.serve({ fetch: app.fetch }),
 * // or serve({ fetch: app.fetch }) from @hono/node-server.
 * let stopped = false;
 * const server = { shutdown: async () => { stopped = true; } };
 * const lines: string[] = [];
 * const hook = gracefulShutdown({ tasks, server, exit: false, log: (line) => lines.push(line) });
 *
 * tasks.run("send-confirmation", async () => {});
 * const report = await hook.shutdown("SIGTERM"); // what SIGTERM does
 * assert.equal(stopped, true);
 * assert.equal(report.exitCode, 0);
 * assert.deepEqual(lines, [
 *   "SIGTERM: shutting down",
 *   "shutdown: 1 task(s) completed, 0 cancelled, 0 abandoned",
 * ]);
 * ```
 */
export function gracefulShutdown(
  options: GracefulShutdownOptions,
): GracefulShutdown {
  return new GracefulShutdown(options);
}

function logToConsole(message: string, problem: boolean): void {
  if (problem) console.error(message);
  else console.log(message);
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`
    : String(error);
}

const SERVER = new Rule(
  "a server (what Deno.serve or Bun.serve returns, or a Node http.Server)",
  isServer,
);

const CLOSABLES = new Rule(
  "an array of objects with close() or [Symbol.asyncDispose]()",
  (value) =>
    Array.isArray(value) &&
    value.every((item) =>
      typeof item === "object" && item !== null &&
      (typeof item.close === "function" ||
        typeof item[Symbol.asyncDispose] === "function")
    ),
);

const SIGNAL_LIST = new Rule(
  'an array of "SIGTERM", "SIGINT", "SIGHUP" or "SIGQUIT"',
  (value) =>
    Array.isArray(value) &&
    value.every((signal) =>
      ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"].includes(signal)
    ),
);
