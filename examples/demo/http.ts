// Small HTTP helpers shared by the routes: every error is `{ "error": "..." }`.

import type { Context } from "hono";

/** The error statuses the demo answers with. */
export type ErrorStatus = 400 | 404 | 413 | 415 | 422 | 500 | 503;

/** Answers `{ error: message }` with `status`. */
export function jsonError(
  c: Context,
  status: ErrorStatus,
  message: string,
): Response {
  return c.json({ error: message }, status);
}

/** A body over the limit of {@linkcode readText}. */
export class BodyTooLarge extends Error {
  constructor(limit: number) {
    super(`The request body is larger than ${limit} bytes`);
    this.name = "BodyTooLarge";
  }
}

/**
 * Reads a request body as text, at most `limit` bytes: a declared
 * Content-Length over it is refused before reading, a stream that goes over
 * it is cancelled there. (Hono's `bodyLimit` reads a chunked body outside
 * the handler, where a client that goes away mid-body became a logged
 * server error.)
 *
 * @throws {BodyTooLarge} Over the limit.
 * @throws The stream's error: the client went away, or the server shuts down.
 */
export async function readText(
  request: Request,
  limit: number,
): Promise<string> {
  if (Number(request.headers.get("content-length")) > limit) {
    throw new BodyTooLarge(limit);
  }
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limit) throw new BodyTooLarge(limit);
      chunks.push(value);
    }
  } finally {
    reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}

/** Whether the request's `Content-Type` is `type` (parameters ignored). */
export function hasContentType(c: Context, type: string): boolean {
  const header = c.req.header("content-type") ?? "";
  return header.split(";")[0].trim().toLowerCase() === type;
}

/** The most characters of a client's value an error message quotes. */
export const QUOTED_PREFIX = 80;

/** A string for an error message: quoted, and cut to {@linkcode QUOTED_PREFIX} characters. */
export function show(value: string): string {
  return JSON.stringify(
    value.length > QUOTED_PREFIX ? `${value.slice(0, QUOTED_PREFIX)}…` : value,
  );
}

/**
 * Any value a client sent, for an error message: as JSON ("nothing" when
 * absent), cut to {@linkcode QUOTED_PREFIX} characters, so that a 60 KB
 * field is not echoed whole.
 *
 * @example
 * ```ts
 * import { brief } from "./http.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(brief(2.5), "2.5");
 * assert.equal(brief(undefined), "nothing");
 * assert.equal(brief("x".repeat(1000)).length, 81);
 * ```
 */
export function brief(value: unknown): string {
  const text = JSON.stringify(value) ?? "nothing";
  return text.length > QUOTED_PREFIX
    ? `${text.slice(0, QUOTED_PREFIX)}…`
    : text;
}

/** An error's message, for logs and JSON. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The answer to a request whose body could not be read. While the server
 * shuts down that is the shutdown's doing (Deno 2.9's `server.shutdown()`
 * makes the bodies of requests in flight unreadable): 503, to be sent again.
 * Otherwise the client's: 400.
 */
export function unreadable(
  c: Context,
  closing: AbortSignal,
  what: string,
  error: unknown,
): Response {
  if (closing.aborted) {
    c.header("Connection", "close");
    return unavailable(
      c,
      `The server is shutting down: ${what} could not be read; send it again`,
    );
  }
  return jsonError(c, 400, `${what} could not be read: ${messageOf(error)}`);
}

/** 503 with `Retry-After`: the request may succeed if sent again later. */
export function unavailable(c: Context, message: string): Response {
  c.header("Retry-After", "5");
  return jsonError(c, 503, message);
}
