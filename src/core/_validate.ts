// Argument checks shared by the public classes. Each throws synchronously,
// before anything is accepted, with a message that names the call, the
// argument and the value received.

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

export function checkName(where: string, name: unknown): void {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `${where}: 'name' must be a non-empty string, received ${show(name)}`,
    );
  }
}

export function checkFunction(
  where: string,
  argument: string,
  value: unknown,
): void {
  if (typeof value !== "function") {
    throw new TypeError(
      `${where}: '${argument}' must be a function, received ${show(value)}`,
    );
  }
}

export function checkOptions(where: string, options: unknown): void {
  if (
    options !== undefined && (options === null || typeof options !== "object")
  ) {
    throw new TypeError(
      `${where}: 'options' must be an object, received ${show(options)}`,
    );
  }
}

export function checkSignal(
  where: string,
  argument: string,
  value: unknown,
): void {
  if (value !== undefined && !(value instanceof AbortSignal)) {
    throw new TypeError(
      `${where}: '${argument}' must be an AbortSignal, received ${show(value)}`,
    );
  }
}

export function checkBoolean(
  where: string,
  argument: string,
  value: unknown,
): void {
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(
      `${where}: '${argument}' must be a boolean, received ${show(value)}`,
    );
  }
}

/**
 * A number in a range, when given: a `TypeError` names `kind` for a value of
 * another type, a `RangeError` names `range` for a number out of it.
 */
export function checkNumber(
  where: string,
  argument: string,
  value: unknown,
  kind: string,
  range: string,
  inRange: (value: number) => boolean,
): void {
  if (value === undefined) return;
  if (typeof value !== "number") {
    throw new TypeError(
      `${where}: '${argument}' must be ${kind}, received ${show(value)}`,
    );
  }
  if (!inRange(value)) {
    throw new RangeError(
      `${where}: '${argument}' must be ${range}, received ${value}`,
    );
  }
}

/** A task timeout: a positive finite number of milliseconds up to 2^31-1. */
export function checkTimeout(
  where: string,
  argument: string,
  value: unknown,
): void {
  checkNumber(
    where,
    argument,
    value,
    "a number of milliseconds",
    `a positive number of milliseconds up to ${MAX_TIMEOUT}`,
    (ms) => ms > 0 && ms <= MAX_TIMEOUT,
  );
}

/** A shutdown bound: 0 (at once), a positive number up to 2^31-1, or Infinity. */
export function checkBound(
  where: string,
  argument: string,
  value: unknown,
): void {
  checkNumber(
    where,
    argument,
    value,
    "a number of milliseconds",
    `0, a positive number of milliseconds up to ${MAX_TIMEOUT}, or Infinity`,
    (ms) => ms === Infinity || (ms >= 0 && ms <= MAX_TIMEOUT),
  );
}

/** Milliseconds from 0 up to `max`. */
export function checkMilliseconds(
  where: string,
  argument: string,
  value: unknown,
  max: number,
): void {
  checkNumber(
    where,
    argument,
    value,
    "a number of milliseconds",
    `0 or a positive number of milliseconds up to ${max}`,
    (ms) => ms >= 0 && ms <= max,
  );
}

/** A positive safe integer: `attempts`, `concurrency`, `limit`. */
export function checkCount(
  where: string,
  argument: string,
  value: unknown,
): void {
  checkNumber(
    where,
    argument,
    value,
    "a positive integer",
    "a positive integer",
    (n) => Number.isSafeInteger(n) && n > 0,
  );
}

export function checkConcurrency(where: string, value: unknown): void {
  checkNumber(
    where,
    "concurrency",
    value,
    "a positive integer or Infinity",
    "a positive integer or Infinity",
    (n) => n === Infinity || (Number.isInteger(n) && n > 0),
  );
}

/**
 * Checks the arguments of `run`, `runWithResult` and `TaskGroup.add`. It is
 * on the path of every task, so the error message is built only on failure.
 */
export function checkTask(
  verb: string,
  name: unknown,
  fn: unknown,
  options: unknown,
): void {
  if (typeof name !== "string" || name === "") {
    checkName(`Cannot ${verb} task`, name);
  }
  const where = () => `Cannot ${verb} task ${JSON.stringify(name)}`;
  if (typeof fn !== "function") checkFunction(where(), "fn", fn);
  if (options === undefined) return;
  if (options === null || typeof options !== "object") {
    checkOptions(where(), options);
  }
  const { signal, timeout, waitUntil } = options as Record<string, unknown>;
  if (
    (signal !== undefined && !(signal instanceof AbortSignal)) ||
    (timeout !== undefined &&
      !(typeof timeout === "number" && timeout > 0 &&
        timeout <= MAX_TIMEOUT)) ||
    (waitUntil !== undefined && typeof waitUntil !== "function")
  ) {
    checkSignal(where(), "signal", signal);
    checkTimeout(where(), "timeout", timeout);
    checkFunction(where(), "waitUntil", waitUntil);
  }
}
