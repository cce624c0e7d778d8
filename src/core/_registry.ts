// The one way to recognise a TaskManager, and to reach the scheduler behind
// it: every manager registers itself here when it is made. The integrations
// (the Hono middleware, the durable queue) and TaskScope ask here.

import type { Scheduler } from "./_scheduler.ts";
import { show } from "./_validate.ts";

const schedulers: WeakMap<object, Scheduler> = new WeakMap();

/** Called once by each TaskManager's constructor. */
export function register(manager: object, scheduler: Scheduler): void {
  schedulers.set(manager, scheduler);
}

/**
 * The scheduler behind `manager`; throws a TypeError that names `where` when
 * it is not a TaskManager of this copy of the library. `user` names what
 * takes the manager ("the middleware"), for the hint about two copies.
 */
export function schedulerOf(
  where: string,
  manager: unknown,
  user: string,
): Scheduler {
  const scheduler = typeof manager === "object" && manager !== null
    ? schedulers.get(manager)
    : undefined;
  if (scheduler !== undefined) return scheduler;
  const twin =
    (manager as { constructor?: { name?: unknown } } | null)?.constructor
      ?.name === "TaskManager";
  throw new TypeError(
    `${where}: 'manager' must be a TaskManager, received ${show(manager)}${
      twin
        ? ` from another copy of @background/tasks: import the manager and ${user} from the same one`
        : ""
    }`,
  );
}
