// The JSON check and copy of a durable task's payload, made by
// DurableQueue.enqueue before anything is stored.

import { show } from "../core/_validate.ts";

/**
 * Returns the copy of `payload` that a backend stores: what
 * `JSON.parse(JSON.stringify(payload))` gives. Throws a `TypeError` that
 * names the first part that JSON would lose or reject: `undefined` at the top
 * or in an array, a function, a symbol, a bigint, `NaN` or `Infinity`, an
 * instance of a class (`Date`, `Map`, ...), or a cycle. An object property
 * whose value is `undefined` is left out, as JSON does.
 */
export function jsonCopy(where: string, payload: unknown): unknown {
  const problem = findProblem(payload, "payload", []);
  if (problem !== undefined) {
    throw new TypeError(
      `${where}: 'payload' must be JSON (null, booleans, finite numbers, ` +
        `strings, arrays and plain objects), but ${problem}`,
    );
  }
  return JSON.parse(JSON.stringify(payload));
}

function findProblem(
  value: unknown,
  path: string,
  ancestors: object[],
): string | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}`;
    case "undefined":
      return `${path} is undefined`;
    case "function":
      return `${path} is a function`;
    case "symbol":
      return `${path} is a symbol`;
    case "bigint":
      return `${path} is a bigint (${value}n)`;
  }
  if (value === null) return undefined;
  const object = value as object;
  const seen = ancestors.indexOf(object);
  if (seen !== -1) {
    return `${path} refers back to one of the objects that contain it (a cycle)`;
  }
  ancestors.push(object);
  try {
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) {
        const problem = findProblem(object[i], `${path}[${i}]`, ancestors);
        if (problem !== undefined) return problem;
      }
      return undefined;
    }
    const prototype = Object.getPrototypeOf(object);
    if (prototype !== Object.prototype && prototype !== null) {
      const hint = object instanceof Date ? " (pass date.toISOString())" : "";
      return `${path} is ${show(object)}${hint}`;
    }
    for (const key of Object.keys(object)) {
      const item = (object as Record<string, unknown>)[key];
      if (item === undefined) continue;
      const problem = findProblem(item, `${path}${property(key)}`, ancestors);
      if (problem !== undefined) return problem;
    }
    return undefined;
  } finally {
    ancestors.pop();
  }
}

function property(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key)
    ? `.${key}`
    : `[${JSON.stringify(key)}]`;
}
