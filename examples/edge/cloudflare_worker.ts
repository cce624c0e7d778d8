// Cloudflare Workers, without a framework: give every task the request's
// `ctx.waitUntil`, so the isolate lives until the task settles. Without it,
// Workers cancel the task's pending I/O once the response is sent.

import { TaskManager } from "@background/tasks";

/** The bindings: a service binding (or any fetcher) for the email API. */
interface Env {
  EMAIL: { fetch(input: string, init?: RequestInit): Promise<Response> };
}

/** The third argument of `fetch` in a Worker. */
interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

// Top level is fine: a manager makes no timer or controller until a task runs.
// 25 s: the task is aborted, and can clean up, before Cloudflare's 30 s.
const tasks = new TaskManager({ timeout: 25_000 });

export default {
  async fetch(
    request: Request,
    env: Env,
    ctx: ExecutionContext,
  ): Promise<Response> {
    const { id } = await request.json() as { id: string };
    tasks.run("send-confirmation", async ({ signal }) => {
      const response = await env.EMAIL.fetch("https://email.example/send", {
        method: "POST",
        body: JSON.stringify({ order: id }),
        signal,
      });
      if (!response.ok) throw new Error(`Email API: ${response.status}`);
      console.log(`confirmation sent for order ${id}`);
    }, { waitUntil: (promise) => ctx.waitUntil(promise) });
    return Response.json({ id, status: "received" }, { status: 201 });
  },
};
