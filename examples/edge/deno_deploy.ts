// Deno Deploy: there is no `waitUntil`; the process lives on after each
// response, until Deploy sends SIGINT and, 5 s later, SIGKILL. Drain the
// manager within those 5 s.

import { TaskManager } from "@background/tasks";
import { gracefulShutdown } from "@background/tasks/shutdown";

const tasks = new TaskManager({ timeout: 25_000 });

const server = Deno.serve(async (request) => {
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

// On SIGINT: wait up to 3 s for the tasks, cancel what is left and give it
// 1 s to return, stop the server, log the report and exit: done within 4.5 s,
// before the kill.
gracefulShutdown({ tasks, server });
