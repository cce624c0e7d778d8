// A Vercel function on the edge runtime, without a framework: Vercel passes
// a context whose `waitUntil` keeps the function alive after the response.
// (From any module, `waitUntil` of the `@vercel/functions` package does the
// same.) Netlify's functions take the same `(request, context)` pair.

import { TaskManager } from "@background/tasks";

export const config = { runtime: "edge" };

/** The second argument Vercel passes. */
interface RequestContext {
  waitUntil(promise: Promise<unknown>): void;
}

// Keep the budget under your function's maximum duration.
const tasks = new TaskManager({ timeout: 25_000 });

export default async function handler(
  request: Request,
  context: RequestContext,
): Promise<Response> {
  const { id } = await request.json() as { id: string };
  tasks.run("send-confirmation", async ({ signal }) => {
    const response = await fetch("https://email.example/send", {
      method: "POST",
      body: JSON.stringify({ order: id }),
      signal,
    });
    if (!response.ok) throw new Error(`Email API: ${response.status}`);
  }, { waitUntil: (promise) => context.waitUntil(promise) });
  return Response.json({ id, status: "received" }, { status: 201 });
}
