// The app as a Vercel function on the edge runtime (for example
// `api/index.ts` in a Vercel project). Vercel calls the default export with
// the request and a context whose `waitUntil` keeps the function alive after
// the response; the app receives that context as Hono's execution context.

import type { ExecutionContext } from "hono";
import { app, type Bindings } from "./app.ts";

export const config = { runtime: "edge" };

/** The second argument Vercel passes to a function. */
export interface RequestContext {
  waitUntil(promise: Promise<unknown>): void;
}

/** On Vercel the API is reached over the network. */
const env: Bindings = {
  API: { fetch: (input, init) => fetch(input, init) },
};

export default function handler(
  request: Request,
  context: RequestContext,
): Response | Promise<Response> {
  const executionCtx: ExecutionContext = {
    waitUntil: (promise) => context.waitUntil(promise),
    passThroughOnException: () => {},
    props: {},
  };
  return app.fetch(request, env, executionCtx);
}
