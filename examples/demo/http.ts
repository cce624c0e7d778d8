// Small HTTP helpers shared by the routes: every error is `{ "error": "..." }`.

import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";

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

/** Hono's `bodyLimit`, answering 413 with a JSON error. */
export function limitBody(maxSize: number): MiddlewareHandler {
  return bodyLimit({
    maxSize,
    onError: (c) =>
      jsonError(c, 413, `The request body is larger than ${maxSize} bytes`),
  });
}

/** Whether the request's `Content-Type` is `type` (parameters ignored). */
export function hasContentType(c: Context, type: string): boolean {
  const header = c.req.header("content-type") ?? "";
  return header.split(";")[0].trim().toLowerCase() === type;
}

/** A value for an error message: quoted, and cut if long. */
export function show(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
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
