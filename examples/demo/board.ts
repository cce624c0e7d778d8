// What the operator's page shows besides the managers' own lists: the
// thumbnail tasks waiting for an image process (a TaskManager counts its
// queued tasks, `pendingCount`, but lists only the running ones), and the
// recent failures with their errors. Fed by the managers' events.

import type { TaskEvent, TaskHandle, TaskManager } from "@background/tasks";
import { messageOf } from "./http.ts";

/** A task that failed or was cancelled, as the page lists it. */
export interface Failure {
  id: string;
  name: string;
  status: "rejected" | "cancelled";
  error: string;
  at: string;
}

/** How many failures the board keeps. */
const KEEP = 50;

/** See the module's header. */
export class TaskBoard {
  readonly #queued: Map<string, { task: TaskHandle; queuedAt: string }> =
    new Map();
  readonly #failures: Failure[] = [];

  /** Follows `manager`'s events, for as long as the server runs. */
  watch(manager: TaskManager): void {
    manager.addEventListener("start", (event) => this.#started(event));
    manager.addEventListener("settle", (event) => this.#settled(event));
  }

  /** Lists `task` as queued until it starts or settles. */
  track(task: TaskHandle): void {
    if (task.status === "pending") {
      this.#queued.set(task.id, { task, queuedAt: new Date().toISOString() });
    }
  }

  /** The tracked tasks still queued, oldest first. */
  queued(): { id: string; name: string; queuedAt: string }[] {
    const list = [];
    for (const [id, { task, queuedAt }] of this.#queued) {
      if (task.status !== "pending") this.#queued.delete(id);
      else list.push({ id, name: task.name, queuedAt });
    }
    return list;
  }

  /** The last failures, newest first. */
  failures(): Failure[] {
    return [...this.#failures];
  }

  #started(event: TaskEvent): void {
    this.#queued.delete(event.task.id);
  }

  #settled(event: TaskEvent): void {
    const { task } = event;
    this.#queued.delete(task.id);
    if (task.status !== "rejected" && task.status !== "cancelled") return;
    this.#failures.unshift({
      id: task.id,
      name: task.name,
      status: task.status,
      error: messageOf(task.status === "rejected" ? event.error : event.reason),
      at: new Date().toISOString(),
    });
    this.#failures.length = Math.min(this.#failures.length, KEEP);
  }
}
