// Supabase Edge Functions, and other hosts whose `waitUntil` is a global
// (`EdgeRuntime.waitUntil`) rather than a per-request context: give it to the
// manager once, and every task is registered. Netlify passes a per-request
// `context.waitUntil` instead: use it as in vercel_function.ts.

import { TaskManager } from "@background/tasks";

/** The global Supabase's runtime provides. */
declare const EdgeRuntime: { waitUntil(promise: Promise<unknown>): void };

const tasks = new TaskManager({
  // Under the function's wall-clock limit (150 s on the free plan).
  timeout: 120_000,
  waitUntil: (promise) => EdgeRuntime.waitUntil(promise),
});

// The worker is about to stop (wall-clock or resource limit): cancel what
// still runs, so each task's cleanup runs while it still can.
addEventListener("beforeunload", () => {
  tasks.shutdown({ timeout: 0 });
});

Deno.serve(async (request) => {
  const { id } = await request.json() as { id: string };
  tasks.run("send-confirmation", async ({ signal }) => {
    const response = await fetch("https://email.example/send", {
      method: "POST",
      body: JSON.stringify({ order: id }),
      signal,
    });
    if (!response.ok) throw new Error(`Email API: ${response.status}`);
  });
  return Response.json({ id, status: "received" }, { status: 201 });
});
