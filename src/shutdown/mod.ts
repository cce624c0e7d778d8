/**
 * One graceful shutdown for a server on Deno, Bun and Node: on SIGTERM or
 * SIGINT, drain the {@linkcode TaskManager} (the Hono middleware of
 * `@background/tasks/hono` answers new requests 503 from that moment, and
 * requests already in their handlers finish), close worker pools and durable
 * queues, run your handlers, stop the server, log the report, and exit.
 *
 * The runtime-specific code of the package lives here only: the core never
 * imports this module.
 *
 * @example Deno.serve, Bun.serve or Node: the same call
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import { gracefulShutdown } from "@background/tasks/shutdown";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * // const server = Deno.serve(app.fetch);        // Deno
 * // const server = Bun.serve({ fetch: app.fetch }); // Bun
 * // const server = serve({ fetch: app.fetch });  // Node, with @hono/node-server
 * const server = { shutdown: () => Promise.resolve() };
 * const hook = gracefulShutdown({ tasks, server, exit: false, log: () => {} });
 * const report = await hook.shutdown("SIGTERM");
 * assert.equal(report.exitCode, 0);
 * ```
 *
 * @module
 */

export {
  type Closable,
  GracefulShutdown,
  gracefulShutdown,
  type GracefulShutdownOptions,
  type GracefulShutdownReport,
  type ShutdownSignal,
  type StoppableServer,
} from "./graceful_shutdown.ts";
