// A model of TaskManager for the property tests. A random program of steps
// (run, cancel, release a gate, shut down, ...) is played against a real
// manager while recorders check, at every event and after every step, what
// src/core/_scheduler.ts promises:
// - each task dispatches at most one `start`, at most one `cancel` and exactly
//   one `settle`, in that order, and a task cancelled while pending never
//   starts; its final status follows from what happened (cancellation wins,
//   a timeout rejects with its `TimeoutError`);
// - running tasks (counted from the events) never exceed the concurrency of
//   the manager or of their group, tasks that ignore their signal included;
// - `activeCount`, `pendingCount` and `activeTasks` (ids and order) agree
//   with the events seen;
// - a failure reaches exactly one of `onError`, a reader of `value`, or the
//   group's `awaitAll`;
// - a task with `retry` (2 attempts) that fails its first attempt (or times
//   out) dispatches `retry` with that failure instead of settling, waits as a
//   pending task, and runs again; only the final outcome settles it;
// - a waiting task of higher priority starts before one of lower priority,
//   and equals start in the order they were queued (checked among the tasks
//   of the manager's own queue: not those held back by a group);
// - once everything settled: nothing running or queued, no listener left on
//   any signal the program handed in, every `idle()` waiter resolved.
//
// Nothing here sleeps. Gates (`Promise.withResolvers`) hold tasks until a step
// releases them, and `setTimeout` and `clearTimeout` are replaced, for the
// length of one program, by timers that only a `fire timer` step fires:
// timeouts and shutdown bounds happen exactly where the program says, on every
// runtime, and a timer left set once everything settled is a violation.

import fc from "fast-check";
import {
  type ShutdownReport,
  type Task,
  type TaskEvent,
  type TaskGroup,
  type TaskHandle,
  type TaskInfo,
  TaskManager,
} from "../../mod.ts";

// ---------------------------------------------------------------------------
// The language of programs
// ---------------------------------------------------------------------------

/** What a failing task throws or rejects with. */
export type Failure = "Error" | "string" | "undefined" | "null";

/** What a task's function does. */
export type Body =
  | { kind: "return" }
  | { kind: "throw"; failure: Failure }
  /**
   * Waits for a `release` step; on abort it ignores, rejects or resolves. It
   * returns a promise, a thenable, or a thenable that calls back twice.
   */
  | {
    kind: "gate";
    onAbort: "ignore" | "reject" | "resolve";
    wrap: "promise" | "thenable" | "twice";
  }
  /** Returns an object whose `then` getter, or `then` method, throws. */
  | { kind: "badThen"; how: "getter" | "method" }
  /** Starts a child task with `run` from inside the function, then returns. */
  | { kind: "spawn"; child: Body };

/** The external `signal` option of a task. */
export type SignalKind = "none" | "own" | "aborted" | "shared";

export interface TaskSpec {
  via: "run" | "runWithResult" | "group";
  /** Which group, modulo the groups made so far. */
  group: number;
  body: Body;
  signal: SignalKind;
  timeout: boolean;
  /** Read `value` right after adding it (runWithResult and group tasks). */
  readValue: boolean;
  /** A `start` listener cancels it: its function must never run. */
  cancelOnStart: boolean;
  /** The `priority` option. */
  priority: number;
  /** `retry: { attempts: 2, backoff: 0 }`: one retry, after a stubbed timer. */
  retry: boolean;
}

/** A shutdown bound: 0, Infinity, or a stubbed timer that `fireTimer` fires. */
export type Bound = number | "timer";

export type Op =
  | { op: "add"; spec: TaskSpec }
  | { op: "release"; task: number; ok: boolean; failure: Failure }
  | { op: "cancel"; task: number; byHandle: boolean; custom: boolean }
  | { op: "cancelAll"; custom: boolean }
  | { op: "abort"; signal: number }
  | { op: "fireTimer"; timer: number }
  | { op: "readValue"; task: number }
  | {
    op: "group";
    concurrency: number;
    failFast: boolean;
    signal: "none" | "live" | "aborted";
  }
  | { op: "groupCancel"; group: number; custom: boolean }
  | { op: "groupAbort"; group: number }
  /** `await using` ends: the group cancels what is left and waits for it. */
  | { op: "groupDispose"; group: number }
  | { op: "awaitAll"; group: number }
  | { op: "idle"; withSignal: boolean }
  | { op: "abortIdle"; waiter: number }
  /** A listener that acts once, from inside the next event of its type. */
  | {
    op: "onEvent";
    type: "start" | "settle" | "cancel";
    /** `readValue`: read the event's task's `value` (if it has one). */
    action: "run" | "cancelAll" | "shutdown" | "readValue";
    body: Body;
  }
  | { op: "shutdown"; timeout: Bound; grace: Bound }
  | { op: "closeSignal" }
  | { op: "flush"; rounds: number };

export interface Config {
  concurrency: number;
  /** A manager-wide default timeout (a stubbed timer). */
  timeout: boolean;
  /** The manager gets a `signal` that `closeSignal` aborts. */
  signal: boolean;
  /** The first group, g0, made with the manager. */
  group: { concurrency: number; failFast: boolean };
}

function describeBody(body: Body): string {
  switch (body.kind) {
    case "return":
      return "returns";
    case "throw":
      return `throws ${body.failure}`;
    case "gate":
      return `waits for a gate${
        body.wrap === "promise"
          ? ""
          : body.wrap === "thenable"
          ? " (thenable)"
          : " (thenable calling back twice)"
      }, ${
        body.onAbort === "ignore"
          ? "ignores abort"
          : `${body.onAbort}s on abort`
      }`;
    case "spawn":
      return `runs a child that ${describeBody(body.child)}`;
    case "badThen":
      return `returns an object whose then ${
        body.how === "getter" ? "getter" : "method"
      } throws`;
  }
}

function describeBound(bound: Bound): string {
  return bound === "timer" ? "a timer" : String(bound);
}

/** One line per step, as printed in a counterexample. */
export function describeOp(op: Op): string {
  switch (op.op) {
    case "add": {
      const s = op.spec;
      const where = s.via === "group" ? `group[${s.group}].add` : s.via;
      const extras = [
        s.signal === "none" ? "" : `signal ${s.signal}`,
        s.timeout ? "timeout" : "",
        s.priority === 0 ? "" : `priority ${s.priority}`,
        s.retry ? "retry once" : "",
        s.readValue && s.via !== "run" ? "reads value" : "",
        s.cancelOnStart ? "cancelled by its start listener" : "",
      ].filter(Boolean);
      return `${where}: ${describeBody(s.body)}${
        extras.length ? ` [${extras.join(", ")}]` : ""
      }`;
    }
    case "release":
      return `release gate[${op.task}] ${
        op.ok ? "resolved" : `rejected with ${op.failure}`
      }`;
    case "cancel":
      return `cancel task[${op.task}] ${op.byHandle ? "by handle" : "by id"}${
        op.custom ? " with a reason" : ""
      }`;
    case "cancelAll":
      return `cancelAll()${op.custom ? " with a reason" : ""}`;
    case "abort":
      return `abort signal[${op.signal}]`;
    case "fireTimer":
      return `fire timer[${op.timer}]`;
    case "readValue":
      return `read value of task[${op.task}]`;
    case "group":
      return `new group (concurrency ${op.concurrency}${
        op.failFast ? ", failFast" : ""
      }${op.signal === "none" ? "" : `, ${op.signal} signal`})`;
    case "groupCancel":
      return `group[${op.group}].cancel()${op.custom ? " with a reason" : ""}`;
    case "groupAbort":
      return `abort the signal of group[${op.group}]`;
    case "groupDispose":
      return `group[${op.group}][Symbol.asyncDispose]()`;
    case "awaitAll":
      return `group[${op.group}].awaitAll()`;
    case "idle":
      return `idle()${op.withSignal ? " with a signal" : ""}`;
    case "abortIdle":
      return `abort idle waiter[${op.waiter}]`;
    case "onEvent":
      return `on the next ${op.type} event, ${
        op.action === "run"
          ? `run a task that ${describeBody(op.body)}`
          : op.action === "cancelAll"
          ? "cancelAll()"
          : op.action === "readValue"
          ? "read that task's value"
          : "shutdown({ timeout: 0, grace: 0 })"
      }`;
    case "shutdown":
      return `shutdown({ timeout: ${describeBound(op.timeout)}, grace: ${
        describeBound(op.grace)
      } })`;
    case "closeSignal":
      return "abort the manager's signal";
    case "flush":
      return `let ${op.rounds} microtask round(s) run`;
  }
}

/** A generated program; fast-check prints it with `toString`. */
export class Program {
  readonly config: Config;
  readonly ops: Op[];
  constructor(config: Config, ops: Op[]) {
    this.config = config;
    this.ops = ops;
  }
  toString(): string {
    const c = this.config;
    const head = `new TaskManager({ concurrency: ${c.concurrency}${
      c.timeout ? ", timeout" : ""
    }${
      c.signal ? ", signal" : ""
    } }), group[0] = group({ concurrency: ${c.group.concurrency}${
      c.group.failFast ? ", failFast" : ""
    } })`;
    return [head, ...this.ops.map((op, i) => `  ${i + 1}. ${describeOp(op)}`)]
      .join("\n");
  }
  [fc.toStringMethod](): string {
    return `\n${this.toString()}\n`;
  }
}

// ---------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------

/** True rarely (1 in `n`); shrinks to false. */
const rarely = (n: number) =>
  fc.integer({ min: 0, max: n - 1 }).map((i) => i === n - 1);

const failureArb = fc.constantFrom<Failure>(
  "Error",
  "string",
  "undefined",
  "null",
);

const leafBodyArb: fc.Arbitrary<Body> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<Body>({ kind: "return" }) },
  {
    weight: 2,
    arbitrary: failureArb.map((failure): Body => ({ kind: "throw", failure })),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      onAbort: fc.constantFrom("ignore", "reject", "resolve"),
      wrap: fc.constantFrom(
        "promise",
        "promise",
        "promise",
        "thenable",
        "twice",
      ),
    }).map((g): Body => ({ kind: "gate", ...g })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom("getter", "method").map((how): Body => ({
      kind: "badThen",
      how,
    })),
  },
);

const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  { weight: 9, arbitrary: leafBodyArb },
  {
    weight: 1,
    arbitrary: leafBodyArb.map((child): Body => ({ kind: "spawn", child })),
  },
);

const specArb: fc.Arbitrary<TaskSpec> = fc.record({
  via: fc.constantFrom("run", "runWithResult", "group"),
  group: fc.nat(3),
  body: bodyArb,
  signal: fc.constantFrom<SignalKind>(
    "none",
    "none",
    "none",
    "own",
    "own",
    "shared",
    "aborted",
  ),
  timeout: rarely(5),
  readValue: fc.boolean(),
  cancelOnStart: rarely(10),
  priority: fc.constantFrom(0, 0, 0, 1, -1),
  retry: rarely(4),
});

const boundArb: fc.Arbitrary<Bound> = fc.constantFrom<Bound>(
  0,
  "timer",
  0,
  "timer",
  Infinity,
);

const index = fc.nat(20);

/** Weights: adds, releases and flushes dominate, as in a real server. */
export function opArb(shutdownWeight = 1): fc.Arbitrary<Op> {
  const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({
    weight,
    arbitrary: arbitrary as fc.Arbitrary<Op>,
  });
  return fc.oneof(
    w(40, specArb.map((spec) => ({ op: "add", spec }))),
    w(
      20,
      fc.record({
        op: fc.constant("release"),
        task: index,
        ok: fc.boolean(),
        failure: failureArb,
      }),
    ),
    w(
      16,
      fc.record({
        op: fc.constant("flush"),
        rounds: fc.constantFrom(1, 3, 10),
      }),
    ),
    w(
      6,
      fc.record({
        op: fc.constant("cancel"),
        task: index,
        byHandle: fc.boolean(),
        custom: fc.boolean(),
      }),
    ),
    w(2, fc.record({ op: fc.constant("cancelAll"), custom: fc.boolean() })),
    w(4, fc.record({ op: fc.constant("abort"), signal: index })),
    w(4, fc.record({ op: fc.constant("fireTimer"), timer: index })),
    w(3, fc.record({ op: fc.constant("readValue"), task: index })),
    w(
      2,
      fc.record({
        op: fc.constant("group"),
        concurrency: fc.constantFrom(Infinity, 1, 2),
        failFast: fc.boolean(),
        signal: fc.constantFrom("none", "live", "aborted"),
      }),
    ),
    w(
      2,
      fc.record({
        op: fc.constant("groupCancel"),
        group: index,
        custom: fc.boolean(),
      }),
    ),
    w(2, fc.record({ op: fc.constant("groupAbort"), group: index })),
    w(2, fc.record({ op: fc.constant("groupDispose"), group: index })),
    w(3, fc.record({ op: fc.constant("awaitAll"), group: index })),
    w(3, fc.record({ op: fc.constant("idle"), withSignal: fc.boolean() })),
    w(2, fc.record({ op: fc.constant("abortIdle"), waiter: index })),
    w(
      3,
      fc.record({
        op: fc.constant("onEvent"),
        type: fc.constantFrom("start", "settle", "cancel"),
        action: fc.constantFrom(
          "run",
          "run",
          "cancelAll",
          "shutdown",
          "readValue",
        ),
        body: leafBodyArb,
      }),
    ),
    w(
      shutdownWeight,
      fc.record({
        op: fc.constant("shutdown"),
        timeout: boundArb,
        grace: boundArb,
      }),
    ),
    w(1, fc.record({ op: fc.constant("closeSignal") })),
  );
}

export const configArb: fc.Arbitrary<Config> = fc.record({
  concurrency: fc.constantFrom(1, 2, 3, Infinity),
  timeout: rarely(6),
  signal: rarely(4),
  group: fc.record({
    concurrency: fc.constantFrom(1, 2, Infinity),
    failFast: rarely(3),
  }),
});

/** Programs of up to `maxSteps` steps. */
export function programArb(maxSteps = 60): fc.Arbitrary<Program> {
  return fc.tuple(
    configArb,
    fc.array(opArb(), { maxLength: maxSteps, size: "max" }),
  ).map(([config, ops]) => new Program(config, ops));
}

/** Programs that shut down in the middle: some steps, a shutdown, more steps. */
export function shutdownProgramArb(): fc.Arbitrary<Program> {
  const steps = (maxLength: number) =>
    fc.array(opArb(0), { maxLength, size: "max" });
  const shutdown = fc.record({
    op: fc.constant("shutdown" as const),
    timeout: boundArb,
    grace: boundArb,
  });
  return fc.tuple(configArb, steps(30), shutdown, steps(20)).map((
    [config, before, shutdown, after],
  ) => new Program(config, [...before, shutdown, ...after]));
}

// ---------------------------------------------------------------------------
// The world a program runs in
// ---------------------------------------------------------------------------

/** An expectation about an abort reason. */
interface Expect {
  text: string;
  test(reason: unknown): boolean;
}

/** Either expectation. */
const either = (a: Expect, b: Expect): Expect => ({
  text: `${a.text} or ${b.text}`,
  test: (reason) => a.test(reason) || b.test(reason),
});

const same = (value: unknown, text: string): Expect => ({
  text,
  test: (reason) => reason === value,
});

const abortError = (text: string, message?: RegExp): Expect => ({
  text,
  test: (reason) =>
    reason instanceof DOMException && reason.name === "AbortError" &&
    (message === undefined || message.test(reason.message)),
});

/** The `TimeoutError` a task's elapsed timeout aborts it with. */
const timeoutOf = (s: TaskState): Expect => {
  const message = `Task "${s.handle.name}" timed out after ${s.timeoutMs} ms`;
  return {
    text: `a TimeoutError "${message}"`,
    test: (reason) =>
      reason instanceof DOMException && reason.name === "TimeoutError" &&
      reason.message === message,
  };
};

const SHUTDOWN = abortError(
  "the shutdown's AbortError",
  /shut down before the task finished/,
);

/** An AbortSignal whose "abort" listeners are counted. */
interface Watched {
  label: string;
  signal: AbortSignal;
  controller: AbortController;
  /** Must hold no listener once everything settled, aborted or not. */
  strict: boolean;
  live: Set<unknown>;
  once: Set<unknown>;
}

function watch(label: string, strict: boolean): Watched {
  const controller = new AbortController();
  const signal = controller.signal;
  const watched: Watched = {
    label,
    signal,
    controller,
    strict,
    live: new Set(),
    once: new Set(),
  };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  Object.defineProperties(signal, {
    addEventListener: {
      configurable: true,
      value(
        type: string,
        listener: EventListenerOrEventListenerObject,
        options?: boolean | AddEventListenerOptions,
      ) {
        if (type === "abort") {
          watched.live.add(listener);
          if (typeof options === "object" && options.once) {
            watched.once.add(listener);
          }
        }
        add(type, listener, options);
      },
    },
    removeEventListener: {
      configurable: true,
      value(
        type: string,
        listener: EventListenerOrEventListenerObject,
        options?: boolean | EventListenerOptions,
      ) {
        if (type === "abort") watched.live.delete(listener);
        remove(type, listener, options);
      },
    },
  });
  return watched;
}

function abortWatched(watched: Watched, reason: unknown): void {
  watched.controller.abort(reason);
  for (const listener of watched.once) watched.live.delete(listener);
  watched.once.clear();
}

interface Timer {
  label: string;
  ms: number;
  callback: () => void;
  fired: boolean;
  cleared: boolean;
  owner: TaskState | undefined;
  /** A task's timeout, or the wait before its retry. */
  kind: "timeout" | "retry" | undefined;
}

interface GroupState {
  label: string;
  group: TaskGroup;
  concurrency: number;
  failFast: boolean;
  signal: Watched | undefined;
  tasks: TaskState[];
  running: number;
  cancelRequested: boolean;
  reason: Expect | undefined;
  /** Each awaitAll() call: when it was made, and the ids it resolved with. */
  awaitCalls: { at: number; ids: Set<string> | undefined }[];
}

interface TaskState {
  label: string;
  spec: TaskSpec;
  id: string;
  handle: TaskHandle;
  group: GroupState | undefined;
  external: Watched | undefined;
  timeoutMs: number | undefined;
  timer: Timer | undefined;
  events: ("start" | "cancel" | "settle" | "retry")[];
  cancelEvent: TaskEvent | undefined;
  settleEvent: TaskEvent | undefined;
  settled: boolean;
  /** Its cancellation was requested (seen, or predicted for a task dropped at add). */
  requested: boolean;
  /** Set when the task must settle as cancelled without starting. */
  dropReason: Expect | undefined;
  calls: number;
  /** Its own start listener cancelled it (the `cancelOnStart` flag). */
  cancelledAtStart: boolean;
  /** Cancelled from inside its start event: the reason of its held-back cancel event. */
  heldCancel: Expect | undefined;
  /** Requested by a nested shutdown or by this enclosing call, whichever ran first. */
  maybeBy?: Set<Explicit>;
  gate: ((ok: boolean, value: unknown) => void) | undefined;
  gateSettled: boolean;
  outcome: { ok: boolean; value: unknown } | undefined;
  valueRead: boolean;
  valueReadBeforeSettle: boolean;
  valueResult: { ok: boolean; value: unknown } | undefined;
  /** The model's clock at the settle event. */
  settledAt: number;
  onError: unknown[];
  waitUntil: { done: boolean } | undefined;
  /** `retry` events seen. */
  retries: number;
  /** Waits for its retry's timer: pending, but in no queue. */
  waitingRetry: boolean;
  /** When it last entered the manager's queue (added, or back from a retry wait). */
  queuedAt: number;
  /** A cancellation was asked for while one was already requested: no retry. */
  lateCancel: boolean;
}

interface IdleWaiter {
  label: string;
  signal: Watched | undefined;
  idleAtCall: boolean;
  epochAtCall: number;
  result: "resolved" | "rejected" | undefined;
}

/** A cancellation step: who may be cancelled while it runs, and why. */
interface Explicit {
  name: string;
  targets: Set<TaskState>;
  reason: (task: TaskState) => Expect;
  hit: Set<TaskState>;
}

/** The events of a task's current attempt: those after its last `retry`. */
function attemptEvents(s: TaskState): string[] {
  return s.events.slice(s.events.lastIndexOf("retry") + 1);
}

function failureValue(failure: Failure, label: string): unknown {
  switch (failure) {
    case "Error":
      return new Error(`${label} failed`);
    case "string":
      return `${label} failed`;
    case "undefined":
      return undefined;
    case "null":
      return null;
  }
}

async function flush(rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** Plays programs against a real TaskManager; throws on the first violation. */
export class World {
  readonly config: Config;
  readonly tasks: TaskManager;
  readonly states: TaskState[] = [];
  readonly byId: Map<string, TaskState> = new Map();
  readonly groups: GroupState[] = [];
  readonly watched: Watched[] = [];
  readonly timers: Timer[] = [];
  readonly waiters: IdleWaiter[] = [];
  readonly trace: string[] = [];
  readonly violations: string[] = [];
  /** Running tasks in start order, from the events. */
  running: TaskState[] = [];
  pending = 0;
  closed = false;
  shutdown: Promise<ShutdownReport> | undefined;
  /** Counts the times the model became idle. */
  idleEpoch = 0;
  /** Orders settle events and awaitAll() calls. */
  clock = 0;
  /** Orders entries into the manager's queue. */
  queueSeq = 0;
  readonly waitUntils: { done: boolean }[] = [];
  readonly managerSignal: Watched | undefined;
  readonly shared: Watched;
  readonly #stack: Explicit[] = [];
  readonly #extraListeners: [string, EventListener][] = [];
  /** Promise handlers that must have run by the end. */
  readonly #pendingChecks: { label: string; done: boolean }[] = [];
  #inShutdown = false;
  readonly #nestedShutdowns: Promise<unknown>[] = [];

  constructor(config: Config) {
    this.config = config;
    this.managerSignal = config.signal
      ? this.#watch("manager signal", false)
      : undefined;
    this.shared = this.#watch("shared signal", true);
    this.tasks = new TaskManager({
      concurrency: config.concurrency,
      timeout: config.timeout ? 2000 : undefined,
      signal: this.managerSignal?.signal,
      waitUntil: (promise) => {
        const record = { done: false };
        this.waitUntils.push(record);
        promise.then(
          () => record.done = true,
          () => this.#violate("a waitUntil promise rejected"),
        );
      },
      onError: (error, info) => this.#onError(error, info),
    });
    this.tasks.addEventListener("start", (e) => this.#onStart(e));
    this.tasks.addEventListener("cancel", (e) => this.#onCancel(e));
    this.tasks.addEventListener("settle", (e) => this.#onSettle(e));
    this.tasks.addEventListener("retry", (e) => this.#onRetry(e));
    this.#makeGroup(config.group.concurrency, config.group.failFast, "none");
  }

  /** `setTimeout` while the program runs: a timer that a step fires. */
  setTimeout = (callback: () => void, ms?: number): number => {
    this.timers.push({
      label: `timer[${this.timers.length}]`,
      ms: ms ?? 0,
      callback,
      fired: false,
      cleared: false,
      owner: undefined,
      kind: undefined,
    });
    return this.timers.length; // its index + 1: never 0
  };

  /** `clearTimeout` while the program runs. */
  clearTimeout = (id: unknown): void => {
    const timer = typeof id === "number" ? this.timers[id - 1] : undefined;
    if (timer !== undefined) timer.cleared = true;
  };

  #watch(label: string, strict: boolean): Watched {
    const watched = watch(label, strict);
    this.watched.push(watched);
    return watched;
  }

  #violate(message: string): void {
    this.violations.push(message);
  }

  #log(line: string): void {
    this.trace.push(line);
  }

  /** Throws what the recorders found, with the trace of what happened. */
  #raise(where: string): void {
    if (this.violations.length === 0) return;
    throw new Error(
      `${where}:\n  ${this.violations.join("\n  ")}\nTrace:\n  ${
        this.trace.join("\n  ")
      }`,
    );
  }

  #state(event: TaskEvent, type: string): TaskState | undefined {
    const state = this.byId.get(event.task.id);
    if (state === undefined) {
      this.#violate(`${type} event for unknown task ${event.task.id}`);
    } else if (event.task.name !== state.label) {
      this.#violate(`${state.label}: ${type} event names ${event.task.name}`);
    }
    return state;
  }

  // ----- recorders ---------------------------------------------------------

  #onStart(event: TaskEvent): void {
    const s = this.#state(event, "start");
    if (s === undefined) return;
    this.#log(`${s.label} start`);
    if (s.events.length > 0 && s.events.at(-1) !== "retry") {
      this.#violate(`${s.label}: start after ${s.events.join(", ")}`);
    }
    this.#checkStartOrder(s);
    if (s.dropReason !== undefined) {
      this.#violate(
        `${s.label}: started although its cancellation was requested when it was added (${s.dropReason.text})`,
      );
    }
    s.events.push("start");
    if (event.task.status !== "running" || event.task.startedAt === undefined) {
      this.#violate(
        `${s.label}: start event with status ${event.task.status}`,
      );
    }
    if (event.task.attempt !== s.retries + 1) {
      this.#violate(
        `${s.label}: start of attempt ${event.task.attempt}, expected ${
          s.retries + 1
        }`,
      );
    }
    this.pending--;
    this.running.push(s);
    if (this.running.length > this.config.concurrency) {
      this.#violate(
        `${this.running.length} tasks running, concurrency ${this.config.concurrency}`,
      );
    }
    if (s.group !== undefined) {
      s.group.running++;
      if (s.group.running > s.group.concurrency) {
        this.#violate(
          `${s.group.label}: ${s.group.running} tasks running, group concurrency ${s.group.concurrency}`,
        );
      }
    }
    if (s.timeoutMs !== undefined) {
      const timer = this.timers.at(-1);
      if (
        timer === undefined || timer.owner !== undefined ||
        timer.ms !== s.timeoutMs
      ) {
        this.#violate(
          `${s.label}: started without its ${s.timeoutMs} ms timer`,
        );
      } else {
        timer.owner = s;
        timer.kind = "timeout";
        s.timer = timer;
        timer.label += ` of ${s.label}`;
      }
    }
    this.#checkCounts(`start of ${s.label}`);
    if (s.spec.cancelOnStart) {
      // Its `cancel` event is held back until every `start` listener ran.
      const reason = { cancelledOnStart: s.label };
      s.cancelledAtStart = this.tasks.cancel(s.id, reason);
      if (!s.cancelledAtStart) {
        this.#violate(
          `${s.label}: cancel() from its start listener returned false`,
        );
      }
      s.requested = true;
      s.heldCancel = same(reason, "the start listener's reason");
    }
  }

  #onCancel(event: TaskEvent): void {
    const s = this.#state(event, "cancel");
    if (s === undefined) return;
    this.#log(`${s.label} cancel`);
    const attempt = attemptEvents(s);
    if (attempt.includes("cancel") || attempt.includes("settle")) {
      this.#violate(`${s.label}: cancel after ${s.events.join(", ")}`);
    }
    const started = attempt.includes("start");
    if (event.task.status !== (started ? "running" : "pending")) {
      this.#violate(
        `${s.label}: cancel event with status ${event.task.status}`,
      );
    }
    s.events.push("cancel");
    s.cancelEvent = event;
    s.requested = true;
    const explicit = this.#stack.at(-1);
    if (explicit !== undefined) {
      if (!explicit.targets.has(s)) {
        this.#violate(`${s.label}: cancelled by ${explicit.name}`);
      } else {
        const expect = explicit.reason(s);
        if (!expect.test(event.reason)) {
          this.#violate(
            `${s.label}: cancelled by ${explicit.name} with ${
              String(event.reason)
            }, expected ${expect.text}`,
          );
        }
        explicit.hit.add(s);
      }
      return;
    }
    // Cancellations that no step requested directly.
    const allowed: Expect[] = [];
    if (s.dropReason !== undefined) allowed.push(s.dropReason);
    else if (s.heldCancel !== undefined) allowed.push(s.heldCancel);
    else {
      if (s.group?.cancelRequested && s.group.reason) {
        allowed.push(s.group.reason);
      }
      if (this.shutdown !== undefined) allowed.push(SHUTDOWN);
    }
    if (!allowed.some((expect) => expect.test(event.reason))) {
      this.#violate(
        `${s.label}: unexplained cancel with ${
          String(event.reason)
        } (expected ${allowed.map((e) => e.text).join(" or ") || "none"})`,
      );
    }
  }

  #onSettle(event: TaskEvent): void {
    const s = this.#state(event, "settle");
    if (s === undefined) return;
    const status = event.task.status;
    this.#log(`${s.label} settle ${status}`);
    if (s.settled) {
      this.#violate(`${s.label}: settled twice`);
      return;
    }
    const started = attemptEvents(s).includes("start");
    s.events.push("settle");
    s.settled = true;
    s.settleEvent = event;
    if (started && this.#shouldRetry(s)) {
      this.#violate(`${s.label}: settled ${status} instead of retrying`);
    }
    if (started) {
      const at = this.running.indexOf(s);
      if (at === -1) this.#violate(`${s.label}: settled but not running`);
      else this.running.splice(at, 1);
      if (s.group !== undefined) s.group.running--;
    } else this.pending--;
    if (s.handle.status !== status) {
      this.#violate(
        `${s.label}: handle says ${s.handle.status}, event says ${status}`,
      );
    }
    // The listener on the task's signal is gone, and its timer cleared or
    // fired, before `settle`.
    if (s.external?.live.has(s.handle)) {
      this.#violate(`${s.label}: still listens to ${s.external.label}`);
    }
    if (s.timer !== undefined && !s.timer.fired && !s.timer.cleared) {
      this.#violate(`${s.label}: settled with ${s.timer.label} still set`);
    }

    // The expected outcome.
    if (s.cancelEvent !== undefined) {
      const reason = s.cancelEvent.reason;
      if (s.timer?.fired && timeoutOf(s).test(reason)) {
        if (status !== "rejected" || event.error !== reason) {
          this.#violate(
            `${s.label}: timed out but settled ${status} with ${
              String(event.error ?? event.reason)
            }`,
          );
        }
      } else if (status !== "cancelled" || event.reason !== reason) {
        this.#violate(
          `${s.label}: cancelled but settled ${status} with ${
            String(event.reason ?? event.error)
          }`,
        );
      }
    } else if (!started) {
      this.#violate(`${s.label}: settled ${status} without start or cancel`);
    } else if (s.outcome === undefined) {
      this.#violate(`${s.label}: settled before its function finished`);
    } else if (s.outcome.ok) {
      if (status !== "fulfilled" || event.value !== s.outcome.value) {
        this.#violate(`${s.label}: should have fulfilled, settled ${status}`);
      }
    } else if (status !== "rejected" || event.error !== s.outcome.value) {
      this.#violate(`${s.label}: should have rejected, settled ${status}`);
    }
    // A task cancelled from inside its start event never runs its function.
    const expectedCalls = s.retries +
      (started && s.heldCancel === undefined ? 1 : 0);
    if (s.calls !== expectedCalls) {
      this.#violate(
        `${s.label}: its function ran ${s.calls} time(s), expected ${expectedCalls}`,
      );
    }

    s.valueReadBeforeSettle = s.valueRead;
    s.settledAt = ++this.clock;
    const group = s.group;
    if (
      group?.failFast && status === "rejected" && !group.cancelRequested
    ) {
      group.cancelRequested = true;
      group.reason = abortError(
        `the failFast AbortError of ${group.label}`,
        new RegExp(`task "${s.label}" \\(id ${s.id}\\) in its group failed`),
      );
    }
    if (this.running.length === 0 && this.pending === 0) this.idleEpoch++;
    this.#checkCounts(`settle of ${s.label}`);
  }

  /** Whether the attempt that just returned should be retried. */
  #shouldRetry(s: TaskState): boolean {
    // A closed manager starts nothing new, retries included.
    if (
      !s.spec.retry || s.retries > 0 || s.heldCancel !== undefined ||
      this.closed || s.lateCancel || s.group?.cancelRequested ||
      s.external?.signal.aborted
    ) {
      return false;
    }
    const timedOut = s.cancelEvent !== undefined && s.timer?.fired === true &&
      timeoutOf(s).test(s.cancelEvent.reason);
    if (s.cancelEvent !== undefined && !timedOut) return false;
    return timedOut || s.outcome?.ok === false;
  }

  #onRetry(event: TaskEvent): void {
    const s = this.#state(event, "retry");
    if (s === undefined) return;
    this.#log(`${s.label} retry`);
    const attempt = attemptEvents(s);
    if (!attempt.includes("start") || attempt.includes("settle")) {
      this.#violate(`${s.label}: retry after ${s.events.join(", ")}`);
    }
    if (!this.#shouldRetry(s)) {
      this.#violate(
        `${s.label}: retried ${
          s.spec.retry ? "more than once" : "without retry"
        }, or after a cancellation or a success`,
      );
    }
    const timedOut = s.cancelEvent !== undefined;
    const failure = timedOut ? s.cancelEvent!.reason : s.outcome?.value;
    if (event.error !== failure) {
      this.#violate(
        `${s.label}: retry event carries ${
          String(event.error)
        }, not the attempt's failure`,
      );
    }
    if (
      event.delay !== 0 || event.task.status !== "pending" ||
      event.task.attempt !== 1
    ) {
      this.#violate(
        `${s.label}: retry event with delay ${event.delay}, status ${event.task.status}, attempt ${event.task.attempt}`,
      );
    }
    const at = this.running.indexOf(s);
    if (at === -1) this.#violate(`${s.label}: retried but not running`);
    else this.running.splice(at, 1);
    if (s.group !== undefined) s.group.running--;
    this.pending++;
    s.events.push("retry");
    s.retries++;
    s.waitingRetry = true;
    // The attempt is over: what follows belongs to the next one.
    s.cancelEvent = undefined;
    s.timer = undefined;
    s.requested = false;
    s.outcome = undefined;
    s.lateCancel = false;
    const timer = this.timers.at(-1);
    if (timer === undefined || timer.owner !== undefined) {
      this.#violate(`${s.label}: retried without a timer for its wait`);
    } else {
      timer.owner = s;
      timer.kind = "retry";
      timer.label += ` (retry wait of ${s.label})`;
    }
    this.#checkCounts(`retry of ${s.label}`);
  }

  /**
   * A task of the manager's own queue (not a group's) may start only if no
   * other such task waits with a higher priority, or with the same priority
   * and queued before it.
   */
  #checkStartOrder(s: TaskState): void {
    if (s.group !== undefined) return;
    const waiting = (u: TaskState) =>
      u !== s && u.group === undefined && !u.settled && !u.waitingRetry &&
      !u.requested && u.dropReason === undefined &&
      !attemptEvents(u).includes("start");
    for (const u of this.states) {
      if (!waiting(u)) continue;
      if (
        u.spec.priority > s.spec.priority ||
        (u.spec.priority === s.spec.priority && u.queuedAt < s.queuedAt)
      ) {
        this.#violate(
          `${s.label} (priority ${s.spec.priority}) started before ${u.label} (priority ${u.spec.priority}), queued ${
            u.queuedAt < s.queuedAt ? "before" : "after"
          } it`,
        );
      }
    }
  }

  #onError(error: unknown, info: TaskInfo): void {
    const s = this.byId.get(info.id);
    if (s === undefined) {
      this.#violate(`onError for unknown task ${info.id}`);
      return;
    }
    this.#log(`${s.label} onError`);
    if (!s.settled || info.status !== "rejected") {
      this.#violate(`${s.label}: onError before settle, or not rejected`);
    }
    s.onError.push(error);
  }

  #checkCounts(where: string): void {
    const { activeCount, pendingCount } = this.tasks;
    if (activeCount !== this.running.length) {
      this.#violate(
        `${where}: activeCount ${activeCount}, events say ${this.running.length}`,
      );
    }
    if (pendingCount !== this.pending) {
      this.#violate(
        `${where}: pendingCount ${pendingCount}, events say ${this.pending}`,
      );
    }
    const waiting = this.tasks.pendingTasks;
    if (
      waiting.length !== pendingCount ||
      waiting.some((t) => t.status !== "pending")
    ) {
      this.#violate(
        `${where}: pendingTasks lists ${waiting.length} (${
          waiting.map((t) => t.status).join(",")
        }), pendingCount ${pendingCount}`,
      );
    }
    const active = this.tasks.activeTasks.map((t) =>
      this.byId.get(t.id)?.label ?? t.id
    ).join(",");
    const expected = this.running.map((s) => s.label).join(",");
    if (active !== expected) {
      this.#violate(
        `${where}: activeTasks [${active}], events say [${expected}]`,
      );
    }
    for (const g of this.groups) {
      if (g.group.activeCount !== g.running) {
        this.#violate(
          `${where}: ${g.label}.activeCount ${g.group.activeCount}, events say ${g.running}`,
        );
      }
    }
    if (this.tasks.closed !== this.closed) {
      this.#violate(`${where}: closed is ${this.tasks.closed}`);
    }
  }

  /** Runs a cancelling call; checks it cancelled exactly `targets`. */
  #explicit(
    name: string,
    targets: Set<TaskState>,
    reason: (task: TaskState) => Expect,
    call: () => number | undefined,
  ): void {
    const explicit: Explicit = { name, targets, reason, hit: new Set() };
    this.#stack.push(explicit);
    let returned: number | undefined;
    try {
      returned = call();
    } finally {
      this.#stack.pop();
    }
    let cancelled = explicit.hit.size;
    let maybe = 0;
    const starting = this.#starting();
    for (const target of targets) {
      if (explicit.hit.has(target)) continue;
      if (target === starting && !target.requested) {
        // Cancelled from inside its start event: its cancel event waits
        // until every start listener ran, so only the count tells whether
        // this call cancelled it or an enclosing one did, just before.
        const enclosing = this.#stack.filter((outer) =>
          outer.targets.has(target)
        );
        if (enclosing.length > 0 && returned === undefined) {
          // A call that returns no count (shutdown) inside calls that target
          // the task too: any of them may have requested it first. The held
          // cancel event's reason tells; their counts may include it.
          target.requested = true;
          target.heldCancel = enclosing.reduce(
            (expect, outer) => either(expect, outer.reason(target)),
            reason(target),
          );
          target.maybeBy = new Set([...(target.maybeBy ?? []), ...enclosing]);
          continue;
        }
        if (enclosing.length > 0 && returned === cancelled) continue;
        target.requested = true;
        target.heldCancel = reason(target);
        cancelled++;
      } else if (target.maybeBy?.has(explicit)) {
        maybe++;
      } else if (!target.requested) {
        this.#violate(`${name}: ${target.label} got no cancel event`);
      } // else a listener cancelled it first, from inside this call.
    }
    if (
      returned !== undefined &&
      (returned < cancelled || returned > cancelled + maybe)
    ) {
      this.#violate(
        `${name} returned ${returned}, expected ${cancelled}${
          maybe > 0 ? ` to ${cancelled + maybe}` : ""
        }`,
      );
    }
  }

  /** The task whose start event is being dispatched: started, function not called yet. */
  #starting(): TaskState | undefined {
    return this.running.find((s) =>
      s.calls === s.retries && s.events.at(-1) === "start"
    );
  }

  /** Tasks whose cancellation a request would start now. */
  #cancellable(tasks: Iterable<TaskState>): Set<TaskState> {
    const set = new Set<TaskState>();
    for (const s of tasks) {
      if (!s.settled && !s.requested) set.add(s);
      // Asked to cancel while already cancelled (a timeout, say): its
      // current attempt is its last.
      else if (!s.settled) s.lateCancel = true;
    }
    return set;
  }

  // ----- steps -------------------------------------------------------------

  #makeGroup(
    concurrency: number,
    failFast: boolean,
    signal: "none" | "live" | "aborted",
  ): GroupState {
    const label = `g${this.groups.length}`;
    const watched = signal === "none"
      ? undefined
      : this.#watch(`signal of ${label}`, true);
    const reason = { groupSignal: label };
    if (signal === "aborted") abortWatched(watched!, reason);
    const g: GroupState = {
      label,
      group: this.tasks.group({
        concurrency,
        failFast,
        signal: watched?.signal,
      }),
      concurrency,
      failFast,
      signal: watched,
      tasks: [],
      running: 0,
      cancelRequested: signal === "aborted",
      reason: signal === "aborted"
        ? same(reason, `the aborted signal of ${label}`)
        : undefined,
      awaitCalls: [],
    };
    this.groups.push(g);
    this.#log(
      `${label} = group(concurrency ${concurrency}${
        failFast ? ", failFast" : ""
      }, signal ${signal})`,
    );
    return g;
  }

  #fn(box: { s?: TaskState }, body: Body) {
    return (context: { signal: AbortSignal; id: string; name: string }) => {
      const s = box.s;
      if (s === undefined) {
        this.#violate("a task's function ran inside the call that added it");
        return undefined;
      }
      s.calls++;
      this.#log(`${s.label} function called`);
      if (s.events.at(-1) !== "start" || context.id !== s.id) {
        this.#violate(`${s.label}: function called without a start event`);
      }
      switch (body.kind) {
        case "return": {
          const value = { from: s.label };
          s.outcome = { ok: true, value };
          return value;
        }
        case "throw": {
          const error = failureValue(body.failure, s.label);
          s.outcome = { ok: false, value: error };
          throw error;
        }
        case "spawn": {
          this.#spawn(body.child, `${s.label}'s function`);
          const value = { from: s.label };
          s.outcome = { ok: true, value };
          return value;
        }
        case "gate": {
          const { promise, resolve, reject } = Promise.withResolvers<unknown>();
          // One gate per attempt.
          let settled = false;
          s.gateSettled = false;
          const gate = s.gate = (ok, value) => {
            if (settled) return;
            settled = true;
            s.gateSettled = true;
            s.outcome = { ok, value };
            if (ok) resolve(value);
            else reject(value);
          };
          if (body.onAbort !== "ignore") {
            const signal = context.signal;
            if (signal.aborted) {
              this.#violate(`${s.label}: its signal was aborted at its start`);
            }
            signal.addEventListener("abort", () => {
              this.#log(`${s.label} sees its signal abort`);
              gate(body.onAbort === "resolve", { aborted: s.label });
            });
          }
          if (body.wrap === "promise") return promise;
          if (body.wrap === "thenable") {
            return { then: (ok: never, fail: never) => promise.then(ok, fail) };
          }
          return {
            then(ok: (value: unknown) => void, fail: (error: unknown) => void) {
              promise.then((value) => {
                ok(value);
                ok({ again: s.label });
                fail(new Error("called back twice"));
              }, (error) => {
                fail(error);
                ok({ again: s.label });
              });
            },
          };
        }
        case "badThen": {
          const error = new Error(`${s.label}: then throws`);
          s.outcome = { ok: false, value: error };
          return body.how === "getter"
            ? {
              get then(): never {
                throw error;
              },
            }
            : {
              then(): never {
                throw error;
              },
            };
        }
      }
    };
  }

  /** Adds a task as a step would; returns its state, or nothing if refused. */
  #add(spec: TaskSpec, origin: string): TaskState | undefined {
    const label = `t${this.states.length}`;
    const box: { s?: TaskState } = {};
    let group: GroupState | undefined;
    if (spec.via === "group") {
      group = this.groups[spec.group % this.groups.length];
    }
    let external: Watched | undefined;
    if (spec.signal === "own" || spec.signal === "aborted") {
      external = this.#watch(`signal of ${label}`, true);
      if (spec.signal === "aborted") {
        abortWatched(external, { signalOf: label });
      }
    } else if (spec.signal === "shared") external = this.shared;
    const timeoutMs = spec.timeout
      ? 1000
      : this.config.timeout
      ? 2000
      : undefined;
    const options = {
      signal: external?.signal,
      timeout: spec.timeout ? 1000 : undefined,
      priority: spec.priority,
      retry: spec.retry ? { attempts: 2, backoff: 0 } : undefined,
    };
    const fn = this.#fn(box, spec.body);
    const waitUntilsBefore = this.waitUntils.length;
    let handle: TaskHandle;
    try {
      handle = spec.via === "run"
        ? this.tasks.run(label, fn, options)
        : spec.via === "runWithResult"
        ? this.tasks.runWithResult(label, fn, options)
        : group!.group.add(label, fn, options);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#log(`${origin}: ${spec.via} ${label} refused: ${message}`);
      if (!this.closed || !/shut down/.test(message)) {
        this.#violate(`${label}: ${spec.via} threw ${message}`);
      }
      return undefined;
    }
    if (this.closed) {
      this.#violate(`${label}: accepted after the manager closed`);
    }
    const s: TaskState = {
      label,
      spec,
      id: handle.id,
      handle,
      group,
      external,
      timeoutMs,
      timer: undefined,
      events: [],
      cancelEvent: undefined,
      settleEvent: undefined,
      settled: false,
      requested: false,
      dropReason: undefined,
      calls: 0,
      cancelledAtStart: false,
      heldCancel: undefined,
      gate: undefined,
      gateSettled: false,
      outcome: undefined,
      valueRead: false,
      valueReadBeforeSettle: false,
      valueResult: undefined,
      settledAt: 0,
      onError: [],
      waitUntil: this.waitUntils[waitUntilsBefore],
      retries: 0,
      waitingRetry: false,
      queuedAt: ++this.queueSeq,
      lateCancel: false,
    };
    box.s = s;
    if (this.byId.has(s.id)) this.#violate(`${label}: duplicate id ${s.id}`);
    this.states.push(s);
    this.byId.set(s.id, s);
    this.pending++;
    if (this.waitUntils.length !== waitUntilsBefore + 1) {
      this.#violate(
        `${label}: waitUntil called ${
          this.waitUntils.length - waitUntilsBefore
        } times`,
      );
    }
    if (handle.status !== "pending") {
      this.#violate(`${label}: added with status ${handle.status}`);
    }
    if (external?.signal.aborted) {
      s.requested = true;
      s.dropReason = same(
        external.signal.reason,
        `the reason of ${external.label}`,
      );
    } else if (group?.cancelRequested) {
      s.requested = true;
      s.dropReason = group.reason;
    }
    group?.tasks.push(s);
    this.#log(
      `${origin}: ${label} = ${
        spec.via === "group" ? `${group!.label}.add` : spec.via
      }(${describeBody(spec.body)})${
        external ? ` with ${external.label}` : ""
      }`,
    );
    if (spec.readValue && spec.via !== "run") this.#readValue(s);
    this.#checkCounts(`after adding ${label}`);
    return s;
  }

  #spawn(body: Body, origin: string): void {
    this.#add({
      via: "run",
      group: 0,
      body,
      signal: "none",
      timeout: false,
      readValue: false,
      cancelOnStart: false,
      priority: 0,
      retry: false,
    }, origin);
  }

  #readValue(s: TaskState): void {
    this.#log(`read ${s.label}.value`);
    s.valueRead = true;
    (s.handle as Task<unknown>).value.then(
      (value) => s.valueResult = { ok: true, value },
      (error) => s.valueResult = { ok: false, value: error },
    );
  }

  #pick<T>(items: T[], index: number): T | undefined {
    return items.length === 0 ? undefined : items[index % items.length];
  }

  /** Plays one step. Only `flush` returns a promise: it lets microtasks run. */
  step(op: Op, n: number): Promise<void> | undefined {
    const text = `${n}. ${describeOp(op)}`;
    this.#log(text);
    switch (op.op) {
      case "add":
        this.#add(op.spec, "step");
        break;
      case "release": {
        const open = this.states.filter((s) => s.gate && !s.gateSettled);
        const s = this.#pick(open, op.task);
        if (s === undefined) break;
        this.#log(`  -> ${s.label}`);
        s.gate!(
          op.ok,
          op.ok ? { from: s.label } : failureValue(op.failure, s.label),
        );
        break;
      }
      case "cancel": {
        const s = this.#pick(this.states, op.task);
        if (s === undefined) {
          if (this.tasks.cancel("no-such-id") !== false) {
            this.#violate("cancel of an unknown id returned true");
          }
          break;
        }
        this.#log(`  -> ${s.label}`);
        const reason = op.custom ? { cancel: s.label } : undefined;
        this.#explicit(
          `cancel(${s.label})`,
          this.#cancellable([s]),
          () =>
            reason === undefined
              ? abortError("a default AbortError", /was cancelled/)
              : same(reason, "the given reason"),
          () =>
            (op.byHandle
                ? s.handle.cancel(reason)
                : this.tasks.cancel(s.id, reason))
              ? 1
              : 0,
        );
        break;
      }
      case "cancelAll": {
        const reason = op.custom ? { cancelAll: n } : undefined;
        this.#explicit(
          "cancelAll()",
          this.#cancellable(this.states),
          () =>
            reason === undefined
              ? abortError("a default AbortError", /was cancelled/)
              : same(reason, "the given reason"),
          () => this.tasks.cancelAll(reason),
        );
        break;
      }
      case "abort": {
        const signals = this.watched.filter((w) =>
          !w.signal.aborted &&
          (w === this.shared || this.states.some((s) => s.external === w))
        );
        const w = this.#pick(signals, op.signal);
        if (w === undefined) break;
        this.#log(`  -> ${w.label}`);
        const reason = { aborted: w.label };
        this.#explicit(
          `abort ${w.label}`,
          this.#cancellable(this.states.filter((s) => s.external === w)),
          () => same(reason, `the reason of ${w.label}`),
          () => {
            abortWatched(w, reason);
            return undefined;
          },
        );
        break;
      }
      case "fireTimer": {
        // A cleared timer never fires.
        const set = this.timers.filter((t) => !t.fired && !t.cleared);
        const timer = this.#pick(set, op.timer);
        if (timer === undefined) break;
        this.#log(`  -> ${timer.label}`);
        if (timer.kind === "retry") {
          this.#fireRetry(timer);
          break;
        }
        timer.fired = true;
        const owner = timer.owner;
        const targets = owner !== undefined &&
            owner.events.includes("start") && !owner.settled &&
            !owner.requested
          ? new Set([owner])
          : new Set<TaskState>();
        this.#explicit(
          `fire ${timer.label}`,
          targets,
          timeoutOf,
          () => {
            timer.callback();
            return undefined;
          },
        );
        break;
      }
      case "readValue": {
        const s = this.#pick(
          this.states.filter((s) => s.spec.via !== "run"),
          op.task,
        );
        if (s !== undefined) this.#readValue(s);
        break;
      }
      case "group":
        this.#makeGroup(op.concurrency, op.failFast, op.signal);
        break;
      case "groupCancel": {
        const g = this.#pick(this.groups, op.group);
        if (g === undefined) break;
        const reason = op.custom ? { groupCancel: g.label } : undefined;
        if (!g.cancelRequested) {
          g.cancelRequested = true;
          g.reason = reason === undefined
            ? abortError(
              "the group's default AbortError",
              /group was cancelled/,
            )
            : same(reason, "the given reason");
        }
        const expect = g.reason!;
        this.#explicit(
          `${g.label}.cancel()`,
          this.#cancellable(g.tasks),
          () => expect,
          () => g.group.cancel(reason),
        );
        break;
      }
      case "groupDispose": {
        const g = this.#pick(this.groups, op.group);
        if (g === undefined) break;
        if (!g.cancelRequested) {
          g.cancelRequested = true;
          g.reason = abortError(
            "the group's default AbortError",
            /group was cancelled/,
          );
        }
        const expect = g.reason!;
        const label = `${g.label}[Symbol.asyncDispose]()`;
        // It reads no results: a failure while it waits still goes to onError
        // (no entry in `awaitCalls`).
        const check = { label, done: false };
        this.#pendingChecks.push(check);
        this.#explicit(label, this.#cancellable(g.tasks), () => expect, () => {
          g.group[Symbol.asyncDispose]().then(
            () => check.done = true,
            (error) => this.#violate(`${label} rejected: ${String(error)}`),
          );
          return undefined;
        });
        break;
      }
      case "groupAbort": {
        const g = this.#pick(
          this.groups.filter((g) => g.signal && !g.signal.signal.aborted),
          op.group,
        );
        if (g === undefined) break;
        this.#log(`  -> ${g.label}`);
        const reason = { groupSignal: g.label };
        if (!g.cancelRequested) {
          g.cancelRequested = true;
          g.reason = same(reason, `the reason of ${g.signal!.label}`);
        }
        const expect = g.reason!;
        this.#explicit(
          `abort ${g.signal!.label}`,
          this.#cancellable(g.tasks),
          () => expect,
          () => {
            abortWatched(g.signal!, reason);
            return undefined;
          },
        );
        break;
      }
      case "awaitAll": {
        const g = this.#pick(this.groups, op.group);
        if (g === undefined) break;
        this.#log(`  -> ${g.label}`);
        const call = {
          at: ++this.clock,
          ids: undefined as Set<string> | undefined,
        };
        g.awaitCalls.push(call);
        const check = { label: `${g.label}.awaitAll()`, done: false };
        this.#pendingChecks.push(check);
        const atCall = g.tasks.length;
        g.group.awaitAll().then(
          (results) => {
            check.done = true;
            call.ids = new Set(results.map((r) => r.id));
            this.#checkResults(g, results, atCall);
          },
          (error) =>
            this.#violate(`${g.label}.awaitAll() rejected: ${String(error)}`),
        );
        break;
      }
      case "idle": {
        const waiter: IdleWaiter = {
          label: `idle waiter[${this.waiters.length}]`,
          signal: op.withSignal
            ? this.#watch(
              `signal of idle waiter[${this.waiters.length}]`,
              false,
            )
            : undefined,
          idleAtCall: this.running.length === 0 && this.pending === 0,
          epochAtCall: this.idleEpoch,
          result: undefined,
        };
        this.waiters.push(waiter);
        this.tasks.idle({ signal: waiter.signal?.signal }).then(() => {
          waiter.result = "resolved";
          if (!waiter.idleAtCall && this.idleEpoch === waiter.epochAtCall) {
            this.#violate(
              `${waiter.label} resolved before the manager was idle`,
            );
          }
        }, (error) => {
          waiter.result = "rejected";
          if (
            waiter.signal === undefined || error !== waiter.signal.signal.reason
          ) {
            this.#violate(`${waiter.label} rejected with ${String(error)}`);
          }
          if (waiter.idleAtCall) {
            this.#violate(`${waiter.label} rejected although idle at the call`);
          }
        });
        break;
      }
      case "abortIdle": {
        const waiter = this.#pick(
          this.waiters.filter((w) => w.signal && !w.signal.signal.aborted),
          op.waiter,
        );
        if (waiter === undefined) break;
        this.#log(`  -> ${waiter.label}`);
        abortWatched(waiter.signal!, { abortIdle: waiter.label });
        break;
      }
      case "onEvent": {
        const listener = (event: Event) => {
          this.tasks.removeEventListener(op.type, listener);
          const origin = `${op.type} listener`;
          if (op.action === "run") this.#spawn(op.body, origin);
          else if (op.action === "readValue") {
            // In a `settle` listener the task has settled: a later read,
            // which gets the outcome but takes no failure from `onError`.
            const s = this.byId.get((event as TaskEvent).task.id);
            if (s !== undefined && s.spec.via !== "run") this.#readValue(s);
          } else if (op.action === "shutdown") {
            this.#log(`${origin}: shutdown({ timeout: 0, grace: 0 })`);
            this.#shutdown(0, 0);
          } else {
            const reason = { cancelAll: origin };
            this.#explicit(
              `cancelAll() in a ${origin}`,
              this.#cancellable(this.states),
              () => same(reason, "the given reason"),
              () => this.tasks.cancelAll(reason),
            );
          }
        };
        this.#extraListeners.push([op.type, listener]);
        this.tasks.addEventListener(op.type, listener);
        break;
      }
      case "shutdown":
        this.#shutdown(op.timeout, op.grace);
        break;
      case "closeSignal": {
        const w = this.managerSignal;
        if (w === undefined || w.signal.aborted) break;
        const reason = { managerSignal: true };
        this.closed = true;
        this.#explicit(
          "abort the manager's signal",
          this.#cancellable(this.states),
          () => same(reason, "the manager signal's reason"),
          () => {
            abortWatched(w, reason);
            return undefined;
          },
        );
        if (w.live.size !== 0) {
          this.#violate("the manager still listens to its aborted signal");
        }
        break;
      }
      case "flush":
        return flush(op.rounds).then(() => {
          this.#checkBoundary(text);
          this.#checkCounts(text);
          this.#raise(text);
        });
    }
    this.#checkCounts(text);
    this.#raise(text);
  }

  #shutdown(timeoutBound: Bound, graceBound: Bound): void {
    const timeout = timeoutBound === "timer" ? 5000 : timeoutBound;
    const grace = graceBound === "timer" ? 6000 : graceBound;
    if (this.shutdown !== undefined) {
      if (this.tasks.shutdown({ timeout, grace }) !== this.shutdown) {
        this.#violate("a second shutdown() returned another promise");
      }
      return;
    }
    if (this.#inShutdown) {
      // Called again from a listener inside the first call: compared with
      // the first call's promise once it returned.
      this.#nestedShutdowns.push(this.tasks.shutdown({ timeout, grace }));
      return;
    }
    const unsettled = this.states.filter((s) => !s.settled);
    this.closed = true;
    this.#inShutdown = true;
    try {
      if (timeout === 0) {
        // Cancels every unsettled task within the call, as cancelAll() does:
        // a task still waiting for its start never starts.
        this.#explicit(
          "shutdown({ timeout: 0 })",
          this.#cancellable(this.states),
          () => SHUTDOWN,
          () => {
            this.shutdown = this.tasks.shutdown({ timeout, grace });
            return undefined;
          },
        );
      } else this.shutdown = this.tasks.shutdown({ timeout, grace });
    } finally {
      this.#inShutdown = false;
    }
    for (const nested of this.#nestedShutdowns.splice(0)) {
      if (nested !== this.shutdown) {
        this.#violate(
          "shutdown() called from a listener inside shutdown() returned another promise",
        );
      }
    }
    const check = { label: "shutdown()", done: false };
    this.#pendingChecks.push(check);
    this.shutdown!.then((report) => {
      check.done = true;
      this.#log(
        `shutdown report: completed ${report.completed}, cancelled ${report.cancelled}, abandoned [${
          report.abandoned.map((t) => this.byId.get(t.id)?.label).join(",")
        }]`,
      );
      const abandoned = new Set(report.abandoned.map((t) => t.id));
      let completed = 0;
      let cancelled = 0;
      for (const s of unsettled) {
        if (abandoned.delete(s.id)) continue;
        if (!s.settled) {
          this.#violate(
            `shutdown report: ${s.label} neither settled nor abandoned`,
          );
        } else if (s.settleEvent!.task.status === "cancelled") cancelled++;
        else completed++;
      }
      if (abandoned.size > 0) {
        this.#violate(
          `shutdown report: abandoned tasks that were not unsettled at the call`,
        );
      }
      if (report.completed !== completed || report.cancelled !== cancelled) {
        this.#violate(
          `shutdown report: completed ${report.completed}, cancelled ${report.cancelled}; expected ${completed} and ${cancelled}`,
        );
      }
      if (
        report.abandoned.some((t) => t.status !== "running") ||
        (report.abandoned.length > 0 && (timeout === Infinity ||
          grace === Infinity))
      ) {
        this.#violate("shutdown report: wrong abandoned tasks");
      }
    }, (error) => this.#violate(`shutdown() rejected: ${String(error)}`));
  }

  #checkResults(
    g: GroupState,
    results: Awaited<ReturnType<TaskGroup["awaitAll"]>>,
    atCall: number,
  ): void {
    this.#log(`${g.label}.awaitAll() resolved with ${results.length} results`);
    // Every task added before the call, in add order, and those added while
    // it waited: a prefix of the group's tasks, each of them settled.
    if (results.length < atCall || results.length > g.tasks.length) {
      this.#violate(
        `${g.label}.awaitAll(): ${results.length} results; ${atCall} tasks at the call, ${g.tasks.length} now`,
      );
      return;
    }
    results.forEach((result, i) => {
      const s = g.tasks[i];
      const event = s.settleEvent;
      if (result.id !== s.id || event === undefined) {
        this.#violate(
          `${g.label}.awaitAll(): result ${i} is not ${s.label}, or it has not settled`,
        );
        return;
      }
      const same = result.status === event.task.status &&
        (result.status === "fulfilled"
          ? result.value === event.value
          : result.status === "rejected"
          ? result.error === event.error
          : result.reason === event.reason);
      if (!same) {
        this.#violate(
          `${g.label}.awaitAll(): result of ${s.label} differs from its settle event`,
        );
      }
    });
  }

  /** Checks that hold whenever no microtask is left to run. */
  #checkBoundary(where: string): void {
    for (const g of this.groups) {
      if (!g.cancelRequested) continue;
      for (const s of g.tasks) {
        if (!s.settled && !s.requested) {
          this.#violate(
            `${where}: ${g.label} was cancelled (${g.reason?.text}) but ${s.label} was not`,
          );
        }
      }
    }
  }

  /** Releases every gate until all tasks settled, then checks the end state. */
  /** The wait before a retry is over: the task queues again. */
  #fireRetry(timer: Timer): void {
    timer.fired = true;
    const s = timer.owner!;
    s.waitingRetry = false;
    s.queuedAt = ++this.queueSeq;
    timer.callback();
  }

  async finish(): Promise<void> {
    this.#log("finish: release every gate, end every wait for a retry");
    for (let round = 0; round < 200; round++) {
      for (const timer of this.timers) {
        if (timer.kind === "retry" && !timer.fired && !timer.cleared) {
          this.#fireRetry(timer);
        }
      }
      const open = this.states.filter((s) => s.gate && !s.gateSettled);
      for (const s of open) s.gate!(true, { from: s.label });
      await flush(10);
      if (this.states.every((s) => s.settled)) break;
    }
    let idle = false;
    this.tasks.idle().then(() => idle = true);
    await flush(20);
    for (const check of this.#pendingChecks) {
      if (!check.done) {
        this.#violate(`at the end: ${check.label} never resolved`);
      }
    }
    for (const [type, listener] of this.#extraListeners) {
      this.tasks.removeEventListener(type, listener);
    }
    const where = "at the end";
    for (const s of this.states) {
      if (!s.settled) {
        this.#violate(
          `${where}: ${s.label} never settled (${s.events.join(",")})`,
        );
        continue;
      }
      const status = s.settleEvent!.task.status;
      // A failure goes to onError unless a reader took it: `value` read
      // before it settled, or the results of an awaitAll() called before.
      const awaited = s.group?.awaitCalls.some((call) =>
        call.at < s.settledAt && call.ids?.has(s.id)
      ) ?? false;
      const readers = s.valueReadBeforeSettle || awaited;
      const expected = status === "rejected" && !readers ? 1 : 0;
      if (s.onError.length !== expected) {
        this.#violate(
          `${where}: ${s.label} (${status}) reached onError ${s.onError.length} time(s), expected ${expected}${
            status === "rejected" && !readers
              ? " (no value reader, and no awaitAll() result holds it)"
              : ""
          }`,
        );
      } else if (
        expected === 1 && s.onError[0] !== s.settleEvent!.error
      ) {
        this.#violate(
          `${where}: ${s.label} reached onError with another error`,
        );
      }
      if (s.valueRead) {
        const r = s.valueResult;
        const event = s.settleEvent!;
        const ok = r !== undefined &&
          (status === "fulfilled" ? r.ok && r.value === event.value : !r.ok &&
            r.value === (status === "rejected" ? event.error : event.reason));
        if (!ok) {
          this.#violate(`${where}: ${s.label}.value does not match its settle`);
        }
      }
      if (s.waitUntil?.done !== true) {
        this.#violate(
          `${where}: the waitUntil promise of ${s.label} is pending`,
        );
      }
    }
    if (this.waitUntils.length !== this.states.length) {
      this.#violate(`${where}: ${this.waitUntils.length} waitUntil calls`);
    }
    this.#checkCounts(where);
    this.#checkBoundary(where);
    if (this.pending !== 0 || this.running.length !== 0) {
      this.#violate(`${where}: the events leave tasks unsettled`);
    }
    if (!idle) this.#violate(`${where}: idle() did not resolve`);
    for (const waiter of this.waiters) {
      const aborted = waiter.signal?.signal.aborted ?? false;
      if (waiter.result === undefined) {
        this.#violate(`${where}: ${waiter.label} never settled`);
      } else if (waiter.result === "rejected" && !aborted) {
        this.#violate(`${where}: ${waiter.label} rejected without an abort`);
      }
    }
    for (const timer of this.timers) {
      if (!timer.fired && !timer.cleared) {
        this.#violate(`${where}: ${timer.label} is still set`);
      }
    }
    for (const w of this.watched) {
      // An aborted signal may keep the listener of an idle() waiter or of a
      // shutdown bound that it woke: it never dispatches again.
      const expected = w === this.managerSignal && !w.signal.aborted ? 1 : 0;
      if ((w.strict || !w.signal.aborted) && w.live.size !== expected) {
        this.#violate(
          `${where}: ${w.live.size} listener(s) left on ${w.label}`,
        );
      }
    }
    this.#raise(where);
  }
}

/** What escaped while a program ran: unhandled rejections, uncaught errors. */
export interface Escapes {
  take(): string[];
  stop(): void;
}

/**
 * Collects unhandled rejections and uncaught exceptions, so that a program
 * that lets one escape fails as a counterexample instead of ending the test
 * file. Deno reports both as events on `globalThis`; Node through `process`.
 * Under `bun test` the runner takes uncaught exceptions before any listener:
 * there such a program fails the test without a counterexample.
 */
export function watchEscapes(): Escapes {
  const seen: string[] = [];
  const g = globalThis as unknown as {
    Deno?: unknown;
    Bun?: unknown;
    process?: {
      on(event: string, listener: (reason: unknown) => void): void;
      off(event: string, listener: (reason: unknown) => void): void;
      setUncaughtExceptionCaptureCallback(
        callback: ((error: unknown) => void) | null,
      ): void;
    };
  };
  const take = () => seen.splice(0);
  if (g.Deno !== undefined) {
    const onRejection = (event: PromiseRejectionEvent) => {
      event.preventDefault();
      seen.push(`unhandled rejection: ${String(event.reason)}`);
    };
    const onError = (event: ErrorEvent) => {
      event.preventDefault();
      seen.push(`uncaught exception: ${String(event.error)}`);
    };
    globalThis.addEventListener("unhandledrejection", onRejection);
    globalThis.addEventListener("error", onError);
    return {
      take,
      stop: () => {
        globalThis.removeEventListener("unhandledrejection", onRejection);
        globalThis.removeEventListener("error", onError);
      },
    };
  }
  const process = g.process!;
  const onRejection = (reason: unknown) =>
    seen.push(`unhandled rejection: ${String(reason)}`);
  process.on("unhandledRejection", onRejection);
  if (g.Bun === undefined) {
    process.setUncaughtExceptionCaptureCallback((error) =>
      seen.push(`uncaught exception: ${String(error)}`)
    );
  }
  return {
    take,
    stop: () => {
      process.off("unhandledRejection", onRejection);
      if (g.Bun === undefined) {
        process.setUncaughtExceptionCaptureCallback(null);
      }
    },
  };
}

/**
 * Plays one program: replaces `setTimeout` and `clearTimeout` for its length, runs the
 * steps, releases what is left, checks the end state, and fails on anything
 * that escaped meanwhile (an unhandled rejection, an uncaught exception).
 */
export async function play(program: Program, escapes: Escapes): Promise<void> {
  const { setTimeout: realSet, clearTimeout: realClear } = globalThis;
  const world = new World(program.config);
  globalThis.setTimeout = world.setTimeout as unknown as typeof setTimeout;
  globalThis.clearTimeout = world.clearTimeout as typeof clearTimeout;
  let failure: unknown = undefined;
  try {
    for (const [i, op] of program.ops.entries()) {
      // Steps other than `flush` follow each other with no microtask between.
      const flushing = world.step(op, i + 1);
      if (flushing !== undefined) await flushing;
      const escaped = escapes.take();
      if (escaped.length > 0) {
        throw new Error(
          `${i + 1}. ${describeOp(op)}:\n  ${escaped.join("\n  ")}\nTrace:\n  ${
            world.trace.join("\n  ")
          }`,
        );
      }
    }
    await world.finish();
  } catch (error) {
    failure = error;
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
  // Rejections are reported after the microtask queue drains. Whatever this
  // program let escape is taken now, even if it failed, so that it is never
  // blamed on the next one.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const escaped = escapes.take();
  if (failure !== undefined && escaped.length > 0) {
    throw new Error(
      `${failure instanceof Error ? failure.message : String(failure)}\n` +
        `Escaped meanwhile:\n  ${escaped.join("\n  ")}`,
    );
  }
  if (failure !== undefined) throw failure;
  if (escaped.length > 0) {
    throw new Error(
      `${escaped.join("\n")}\nTrace:\n  ${world.trace.join("\n  ")}`,
    );
  }
}

/** Reads an environment variable on Deno (run with -A), Bun and Node. */
export function env(name: string): string | undefined {
  const g = globalThis as unknown as {
    Deno?: { env: { get(name: string): string | undefined } };
    process?: { env: Record<string, string | undefined> };
  };
  return g.Deno !== undefined ? g.Deno.env.get(name) : g.process?.env[name];
}
