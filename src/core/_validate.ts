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
  const { signal, timeout, waitUntil } = options as Record<string, unknown>;
  if (
    !SIGNAL.test(signal) || !TIMEOUT.test(timeout) || !FUNCTION.test(waitUntil)
  ) {
    const where = `Cannot ${verb} task ${JSON.stringify(name)}`;
    SIGNAL.check(where, "signal", signal);
    TIMEOUT.check(where, "timeout", timeout);
    FUNCTION.check(where, "waitUntil", waitUntil);
  }
}
