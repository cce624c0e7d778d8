/**
 * Run work in the background of a web server without blocking the response,
 * and keep track of it: send the confirmation email after an order, make
 * thumbnails after an upload, update a search index.
 *
 * {@linkcode TaskManager} starts, tracks, cancels and drains tasks;
 * {@linkcode TaskGroup} runs related tasks as one unit; {@linkcode TaskScope}
 * gives the tasks of one request the same options. Both are built only on
 * web standards (`AbortSignal`, `EventTarget`, `queueMicrotask`, promises, and
 * `setTimeout` for timeouts), so they run unchanged on Deno, Bun, Node and edge
 * runtimes, and have no dependencies.
 *
 * @example Fire and forget, with nothing lost
 * ```ts
 * import { TaskManager } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const errors: string[] = [];
 * const tasks = new TaskManager({
 *   concurrency: 4,
 *   onError: (error, task) => errors.push(`${task.name}: ${(error as Error).message}`),
 * });
 * tasks.run("send-confirmation", async ({ signal }) => {
 *   signal.throwIfAborted();
 *   throw new Error("SMTP unavailable");
 * });
 * const report = await tasks.shutdown({ timeout: 1000 });
 * assert.equal(report.completed, 1);
 * assert.deepEqual(errors, ["send-confirmation: SMTP unavailable"]);
 * ```
 *
 * @module
 */

export {
  type IdleOptions,
  type ShutdownOptions,
  type ShutdownReport,
  type TaskEventListener,
  TaskManager,
  type TaskManagerOptions,
} from "./src/core/task_manager.ts";
export {
  TaskGroup,
  type TaskGroupOptions,
  type TaskResult,
} from "./src/core/task_group.ts";
export { TaskScope, type TaskScopeOptions } from "./src/core/task_scope.ts";
export { ManagerClosedError } from "./src/core/manager_closed_error.ts";
export {
  TaskEvent,
  type TaskEventInit,
  type TaskEventMap,
  type TaskEventType,
} from "./src/core/task_event.ts";
export type {
  RateLimit,
  RetryOptions,
  RunOptions,
  Task,
  TaskContext,
  TaskFunction,
  TaskHandle,
  TaskInfo,
  TaskStatus,
} from "./src/core/types.ts";
