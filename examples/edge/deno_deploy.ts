// Deno Deploy: there is no `waitUntil`; the process lives on after each
// response, until Deploy sends SIGINT and, 5 s later, SIGKILL. Drain the
// manager within those 5 s.

import { TaskManager } from "@background/tasks";

const tasks = new TaskManager({ timeout: 25_000 });

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

Deno.addSignalListener("SIGINT", async () => {
  // Wait up to 3 s, then cancel what is left and give it 1 s to return:
  // done within the 5 s before the kill.
  const report = await tasks.shutdown({ timeout: 3_000, grace: 1_000 });
  if (report.abandoned.length > 0) {
    console.error("tasks still running at exit:", report.abandoned);
  }
  Deno.exit(0);
});
