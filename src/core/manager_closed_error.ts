/**
 * What `run`, `runWithResult` and `TaskGroup.add` throw once their
 * {@linkcode TaskManager} is closed: after `shutdown()` began, or its
 * `signal` aborted. Nothing was accepted: the task never exists.
 *
 * It is a class of its own so that a request handler can tell "the server is
 * going down" (answer 503, let another instance take the request) from a
 * real failure; the Hono middleware does exactly that.
 *
 * @example Tell a closed manager from other failures
 * ```ts
 * import { ManagerClosedError, TaskManager } from "@background/tasks";
 * import assert from "node:assert/strict";
 *
 * const tasks = new TaskManager();
 * await tasks.shutdown();
 * try {
 *   tasks.run("send-confirmation", () => {});
 *   assert.fail("run() should have thrown");
 * } catch (error) {
 *   assert.ok(error instanceof ManagerClosedError);
 *   assert.equal(error.taskName, "send-confirmation");
 *   assert.equal(
 *     error.message,
 *     'Cannot run task "send-confirmation": the TaskManager is shut down',
 *   );
 * }
 * ```
 */
export class ManagerClosedError extends Error {
  /** The name of the task that was refused. */
  readonly taskName: string;

  /**
   * Makes the error; the manager throws it.
   *
   * @param verb The call that was refused: `"run"`, `"runWithResult"` or `"add"`.
   * @param taskName The name of the task that was refused.
   */
  constructor(verb: string, taskName: string) {
    super(
      `Cannot ${verb} task ${
        JSON.stringify(taskName)
      }: the TaskManager is shut down`,
    );
    this.name = "ManagerClosedError";
    this.taskName = taskName;
  }
}
