// A Hono server with background tasks and one graceful shutdown, the same on
// Deno, Bun and Node:
//
//   deno run -A examples/server/main.ts
//   bun examples/server/main.ts
//   node examples/server/main.ts        (Node 22, with @hono/node-server)
//
// POST /orders answers 201 at once and sends the confirmation in the
// background. On SIGTERM or SIGINT new requests get 503, the requests in
// flight and their tasks finish, the server stops and the process exits 0.

import { Hono } from "hono";
import process from "node:process";
import { TaskManager } from "@background/tasks";
import {
  backgroundTasks,
  type BackgroundTasksEnv,
} from "@background/tasks/hono";
import { gracefulShutdown } from "@background/tasks/shutdown";
import { listen } from "./listen.ts";

const tasks = new TaskManager({ concurrency: 8, timeout: 10_000 });
const app = new Hono<BackgroundTasksEnv>();
// 503 for new requests from the moment the shutdown begins; /health stays up.
app.use(
  backgroundTasks(tasks, { executionContext: false, allow: ["/health"] }),
);

app.get("/health", (c) => c.json({ ok: true }));
app.post("/orders", async (c) => {
  const { email } = await c.req.json<{ email: string }>();
  c.var.tasks.run("send-confirmation", async ({ signal }) => {
    await sendConfirmation(email, signal);
  });
  return c.json({ status: "received" }, 201);
});

const { server, port } = await listen(
  app.fetch,
  Number(process.env.PORT ?? 8000),
);
gracefulShutdown({ tasks, server }); // SIGTERM, SIGINT: drain, stop, exit
console.log(`listening on http://127.0.0.1:${port}/`);

/** Stands in for a mail API call: 50 ms, cancelled with the task. */
function sendConfirmation(email: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      console.log(`confirmation sent to ${email}`);
      resolve();
    }, 50);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
