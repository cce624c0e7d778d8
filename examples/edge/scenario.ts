// A scripted run of the core API (cancel, a timeout, a group, a pre-aborted
// signal, events, activeTasks, a retry, priorities, a rate limit, progress)
// that returns plain JSON. The debug route runs
// it inside Cloudflare's workerd and Vercel's edge runtime; the edge test runs
// it in Deno, Bun and Node too and checks that the reports are equal.

import type { TaskEvent, TaskManager } from "@background/tasks";

/** What {@linkcode runScenario} observed. */
export interface ScenarioReport {
  /** Every `start`, `cancel`, `retry`, `progress` and `settle` of the scenario's tasks, in order. */
  events: string[];
  /** `activeTasks` (the scenario's own) while one task was running. */
  activeWhileRunning: string[];
  /** What `cancel()` returned, first and second time. */
  cancelReturned: boolean[];
  /** How each awaited task ended. */
  outcomes: Record<string, string>;
  /** `activeTasks` (the scenario's own) once every task settled. */
  activeAfter: string[];
}

/**
 * Runs the script on `tasks`. Only the scenario's own tasks are reported, so
 * the manager may be shared with other work.
 */
export async function runScenario(tasks: TaskManager): Promise<ScenarioReport> {
  const ids = new Set<string>();
  const events: string[] = [];
  const record = (event: TaskEvent) => {
    if (ids.has(event.task.id)) events.push(describe(event));
  };
  const own = () =>
    tasks.activeTasks.filter((task) => ids.has(task.id)).map((task) =>
      `${task.name} ${task.status}`
    );
  const types = ["start", "cancel", "retry", "progress", "settle"] as const;
  for (const type of types) tasks.addEventListener(type, record);
  try {
    // 1. Cancel a running task: its signal aborts, it returns, it settles as
    //    cancelled, and `value` rejects with the reason.
    const waiting = tasks.runWithResult(
      "wait-for-cancel",
      ({ signal }) =>
        new Promise<string>((resolve) =>
          signal.addEventListener("abort", () => resolve("stopped"), {
            once: true,
          })
        ),
    );
    ids.add(waiting.id);
    await Promise.resolve(); // tasks start in a microtask
    const activeWhileRunning = own();
    const cancelReturned = [waiting.cancel(), waiting.cancel()];
    const outcomes: Record<string, string> = {};
    outcomes["wait-for-cancel"] = await outcome(waiting.value);

    // 2. A timeout aborts the signal with a TimeoutError; the task rejects
    //    with it once its function returns.
    const slow = tasks.runWithResult(
      "times-out",
      ({ signal }) =>
        new Promise<string>((resolve) =>
          signal.addEventListener(
            "abort",
            () => resolve(`aborted: ${(signal.reason as Error).name}`),
            { once: true },
          )
        ),
      { timeout: 20 },
    );
    ids.add(slow.id);
    outcomes["times-out"] = await outcome(slow.value);

    // 3. A group: one task succeeds, one throws; awaitAll collects both.
    const group = tasks.group();
    ids.add(group.add("adds", () => 40 + 2).id);
    ids.add(
      group.add("throws", () => {
        throw new Error("boom");
      }).id,
    );
    const results = await group.awaitAll();
    outcomes.group = results.map((result) =>
      result.status === "fulfilled"
        ? `${result.name} fulfilled ${result.value}`
        : result.status === "rejected"
        ? `${result.name} rejected ${(result.error as Error).message}`
        : `${result.name} cancelled`
    ).join(", ");

    // 4. An already aborted signal: the task never starts.
    const never = tasks.runWithResult("never-starts", () => "ran", {
      signal: AbortSignal.abort(new Error("caller gave up")),
    });
    ids.add(never.id);
    outcomes["never-starts"] = await outcome(never.value);

    // 5. A retry: the first attempt fails, the second (after 5 ms) succeeds.
    const flaky = tasks.runWithResult("retries", ({ attempt }) => {
      if (attempt === 1) throw new Error("first attempt");
      return `attempt ${attempt}`;
    }, { retry: { attempts: 2, backoff: 5 } });
    ids.add(flaky.id);
    outcomes.retries = await outcome(flaky.value);

    // 6. Priorities and a rate limit, in a group with one slot and two
    //    starts per 20 ms: "first" takes the slot, then the highest waits
    //    least; the third start waits for the window.
    const ordered = tasks.group({
      concurrency: 1,
      rate: { limit: 2, interval: 20 },
    });
    const started: string[] = [];
    for (const [name, priority] of [["first", 0], ["low", -1], ["high", 1]]) {
      ids.add(
        ordered.add(name as string, () => void started.push(name as string), {
          priority: priority as number,
        }).id,
      );
    }
    await ordered.awaitAll();
    outcomes.priorities = started.join(", ");

    // 7. Progress, seen in activeTasks and by a progress listener.
    const gate = Promise.withResolvers<void>();
    const reporting = tasks.runWithResult("reports-progress", async (
      { progress },
    ) => {
      progress(0.5);
      await gate.promise;
      return "done";
    });
    ids.add(reporting.id);
    await Promise.resolve();
    outcomes.progress = tasks.activeTasks
      .filter((task) => task.id === reporting.id)
      .map((task) => `${task.name} ${String(task.progress)}`).join("");
    gate.resolve();
    await reporting.value;

    return {
      events,
      activeWhileRunning,
      cancelReturned,
      outcomes,
      activeAfter: own(),
    };
  } finally {
    for (const type of types) tasks.removeEventListener(type, record);
  }
}

/**
 * Which of the globals the core relies on (and two it avoids) the host has.
 * The core needs every one but `AbortSignal.any` and `CustomEvent`.
 */
export function probeGlobals(): Record<string, boolean> {
  const g = globalThis as Record<string, unknown>;
  const signal = AbortSignal as unknown as Record<string, unknown>;
  return {
    AbortController: typeof g.AbortController === "function",
    "AbortSignal.timeout": typeof signal.timeout === "function",
    "AbortSignal.abort": typeof signal.abort === "function",
    EventTarget: typeof g.EventTarget === "function",
    Event: typeof g.Event === "function",
    queueMicrotask: typeof g.queueMicrotask === "function",
    DOMException: typeof g.DOMException === "function",
    AggregateError: typeof g.AggregateError === "function",
    "Promise.withResolvers":
      typeof (Promise as unknown as Record<string, unknown>).withResolvers ===
        "function",
    "Symbol.asyncDispose": typeof Symbol.asyncDispose === "symbol",
    "AbortSignal.any": typeof signal.any === "function",
    CustomEvent: typeof g.CustomEvent === "function",
  };
}

function describe(event: TaskEvent): string {
  const { task } = event;
  if (event.type === "start") return `start ${task.name}#${task.attempt}`;
  if (event.type === "retry") {
    return `retry ${task.name}#${task.attempt} ${
      nameOf(event.error)
    } in ${event.delay} ms`;
  }
  if (event.type === "progress") {
    return `progress ${task.name} ${String(event.value)}`;
  }
  if (event.type === "cancel") {
    return `cancel ${task.name} ${nameOf(event.reason)}`;
  }
  if (task.status === "fulfilled") {
    return `settle ${task.name} fulfilled ${String(event.value)}`;
  }
  if (task.status === "rejected") {
    return `settle ${task.name} rejected ${nameOf(event.error)}`;
  }
  return `settle ${task.name} cancelled ${nameOf(event.reason)}`;
}

// A TimeoutError's message is the host's own wording, so only its name is kept.
function nameOf(error: unknown): string {
  if (typeof error !== "object" || error === null || !("name" in error)) {
    return String(error);
  }
  const { name, message } = error as { name: string; message: string };
  return name === "TimeoutError" ? name : `${name}: ${message}`;
}

function outcome(value: Promise<unknown>): Promise<string> {
  return value.then(
    (result) => `fulfilled ${String(result)}`,
    (error) => `rejected ${nameOf(error)}`,
  );
}
