// Argument checks shared by the public classes of the core and of the
// integrations. Each rule is written once, as an object with two methods:
// `test`, a cheap yes or no for the path of every task, and `check`, which
// throws, before anything is accepted, a TypeError (wrong type) or RangeError
// (out of range) whose message names the call, the argument and the value.
// An argument that is not given (`undefined`) passes every rule; `require`
// refuses it too.

/** The largest delay `setTimeout` handles on every runtime (a longer one fires at once). */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** Renders a received value for an error message. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "symbol") return value.toString();
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return "an array";
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name && name !== "Object" ? `an instance of ${name}` : "an object";
}

/** One rule an argument must follow. */
export class Rule {
  /** What the value must be, for the message: "a function", "an AbortSignal". */
  readonly #kind: string;
  readonly #is: (value: unknown) => boolean;

  constructor(kind: string, is: (value: unknown) => boolean) {
    this.#kind = kind;
    this.#is = is;
  }

  /** Whether `value` is absent or follows the rule. */
  test(value: unknown): boolean {
    return value === undefined || this.#is(value);
  }

  /** Throws a TypeError naming `where` and `argument` unless `test(value)`. */
  check(where: string, argument: string, value: unknown): void {
    if (!this.test(value)) this.fail(where, argument, value);
  }

  /** As `check`, and refuses `undefined` too. */
  require(where: string, argument: string, value: unknown): void {
    if (value === undefined || !this.#is(value)) {
      this.fail(where, argument, value);
    }
  }

  protected fail(where: string, argument: string, value: unknown): never {
    throw new TypeError(
      `${where}: '${argument}' must be ${this.#kind}, received ${show(value)}`,
    );
  }
}

/**
 * A number in a range: a TypeError names the kind for a value of another
 * type, a RangeError names the range for a number out of it.
 */
export class NumberRule extends Rule {
  readonly #range: string;

  constructor(kind: string, range: string, inRange: (n: number) => boolean) {
    super(kind, (value) => typeof value === "number" && inRange(value));
    this.#range = range;
  }

  protected override fail(
    where: string,
    argument: string,
    value: unknown,
  ): never {
    if (typeof value !== "number") super.fail(where, argument, value);
    throw new RangeError(
      `${where}: '${argument}' must be ${this.#range}, received ${value}`,
    );
  }
}

/** Milliseconds from 0 up to `max`: a delay, a backoff. */
export function milliseconds(max: number): NumberRule {
  return new NumberRule(
    "a number of milliseconds",
    `0 or a positive number of milliseconds up to ${max}`,
    (ms) => ms >= 0 && ms <= max,
  );
}

/** A task timeout: a positive finite number of milliseconds up to 2^31-1. */
export const TIMEOUT: NumberRule = new NumberRule(
  "a number of milliseconds",
  `a positive number of milliseconds up to ${MAX_TIMEOUT}`,
  (ms) => ms > 0 && ms <= MAX_TIMEOUT,
);

/** A bound to wait: 0 (not at all), a positive number up to 2^31-1, or Infinity. */
export const BOUND: NumberRule = new NumberRule(
  "a number of milliseconds",
  `0, a positive number of milliseconds up to ${MAX_TIMEOUT}, or Infinity`,
  (ms) => ms === Infinity || (ms >= 0 && ms <= MAX_TIMEOUT),
);

/** A positive safe integer: `attempts`, `limit`, a pool's `size`. */
export const COUNT: NumberRule = new NumberRule(
  "a positive integer",
  "a positive integer",
  (n) => Number.isSafeInteger(n) && n > 0,
);

/** How many may run at once: a positive integer or Infinity. */
export const CONCURRENCY: NumberRule = new NumberRule(
  "a positive integer or Infinity",
  "a positive integer or Infinity",
  (n) => n === Infinity || (Number.isInteger(n) && n > 0),
);

export const FUNCTION: Rule = new Rule(
  "a function",
  (value) => typeof value === "function",
);

export const SIGNAL: Rule = new Rule(
  "an AbortSignal",
  (value) => value instanceof AbortSignal,
);

export const BOOLEAN: Rule = new Rule(
  "a boolean",
  (value) => typeof value === "boolean",
);

/** A task's id. */
export const ID: Rule = new Rule(
  "a string",
  (value) => typeof value === "string",
);

/** A name: a non-empty string. */
export const NAME: Rule = new Rule(
  "a non-empty string",
  (value) => typeof value === "string" && value !== "",
);

/** An options argument: an object, or not given. */
export const OPTIONS: Rule = new Rule(
  "an object",
  (value) => typeof value === "object" && value !== null,
);

/** A retry's `jitter`: a number from 0 to 1. */
export const FRACTION: NumberRule = new NumberRule(
  "a number",
  "a number from 0 to 1",
  (n) => n >= 0 && n <= 1,
);

/** A task's `priority`: any finite number. */
export const PRIORITY: NumberRule = new NumberRule(
  "a number",
  "a finite number",
  Number.isFinite,
);

/** A wait in a retry: 0 up to 2^31-1 milliseconds. */
const WAIT: NumberRule = milliseconds(MAX_TIMEOUT);

/**
 * Checks a `retry` option: `false`, or an object whose fields follow their
 * rules; each message names the field (`'retry.attempts'`).
 */
export function checkRetry(
  where: string,
  argument: string,
  value: unknown,
): void {
  if (value === undefined || value === false) return;
  if (typeof value !== "object" || value === null) {
    throw new TypeError(
      `${where}: '${argument}' must be an object or false, received ${
        show(value)
      }`,
    );
  }
  const retry = value as Record<string, unknown>;
  COUNT.check(where, `${argument}.attempts`, retry.attempts);
  WAIT.check(where, `${argument}.backoff`, retry.backoff);
  WAIT.check(where, `${argument}.maxDelay`, retry.maxDelay);
  FRACTION.check(where, `${argument}.jitter`, retry.jitter);
  FUNCTION.check(where, `${argument}.retryIf`, retry.retryIf);
}

/** Checks a `rate` option: `{ limit, interval }`. */
export function checkRate(
  where: string,
  argument: string,
  value: unknown,
): void {
  if (value === undefined) return;
  if (typeof value !== "object" || value === null) {
    throw new TypeError(
      `${where}: '${argument}' must be an object { limit, interval }, received ${
        show(value)
      }`,
    );
  }
  const rate = value as Record<string, unknown>;
  COUNT.require(where, `${argument}.limit`, rate.limit);
  TIMEOUT.require(where, `${argument}.interval`, rate.interval);
}

/** The most a progress value may take as JSON. */
const MAX_PROGRESS = 1024;

/**
 * Checks a value given to `progress()` and returns what is kept of it: the
 * number, or a copy through JSON.
 */
export function checkProgress(where: string, value: unknown): unknown {
  const kind = "a number from 0 to 1, or a JSON value";
  if (typeof value === "number") {
    if (value >= 0 && value <= 1) return value;
    throw new RangeError(
      `${where}: 'value' must be ${kind}, received ${value}`,
    );
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    throw new TypeError(
      `${where}: 'value' must be ${kind}, received ${
        show(value)
      }, which JSON cannot hold (a bigint, or a cycle)`,
    );
  }
  if (json === undefined) {
    throw new TypeError(
      `${where}: 'value' must be ${kind}, received ${show(value)}`,
    );
  }
  if (json.length > MAX_PROGRESS) {
    throw new RangeError(
      `${where}: 'value' must take at most ${MAX_PROGRESS} characters as JSON, received ${json.length}`,
    );
  }
  return JSON.parse(json);
}

/** Checks an options argument (`'options' must be an object`). */
export function checkOptions(where: string, options: unknown): void {
  OPTIONS.check(where, "options", options);
}

/**
 * Checks the arguments of `run`, `runWithResult` and `TaskGroup.add`. It is
 * on the path of every task: the rules' cheap `test` runs first, and a
 * message is built only when one fails.
 */
export function checkTask(
  verb: string,
  name: unknown,
  fn: unknown,
  options: unknown,
): void {
  if (typeof name !== "string" || name === "") {
    NAME.require(`Cannot ${verb} task`, "name", name);
  }
  if (typeof fn !== "function") {
    FUNCTION.require(`Cannot ${verb} task ${JSON.stringify(name)}`, "fn", fn);
  }
  if (options === undefined) return;
  if (!OPTIONS.test(options)) {
    checkOptions(`Cannot ${verb} task ${JSON.stringify(name)}`, options);
  }
  const { signal, timeout, waitUntil, retry, priority } = options as Record<
    string,
    unknown
  >;
  if (
    !SIGNAL.test(signal) || !TIMEOUT.test(timeout) ||
    !FUNCTION.test(waitUntil) || retry !== undefined ||
    !PRIORITY.test(priority)
  ) {
    const where = `Cannot ${verb} task ${JSON.stringify(name)}`;
    SIGNAL.check(where, "signal", signal);
    TIMEOUT.check(where, "timeout", timeout);
    FUNCTION.check(where, "waitUntil", waitUntil);
    checkRetry(where, "retry", retry);
    PRIORITY.check(where, "priority", priority);
  }
}
