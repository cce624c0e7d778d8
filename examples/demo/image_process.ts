// The program each image process runs (image_processes.ts starts it with
// the server's own runtime): it reads one JSON job per line on stdin, runs
// it, and writes one JSON reply per line on stdout. It ends when stdin
// closes. The server kills it with SIGKILL to stop a job: that stops a
// WebAssembly decode at once, which `Worker.terminate()` does not do on
// Deno or Bun (bench/demo_cancel.ts).

import process from "node:process";
import { createInterface } from "node:readline";
import { makeThumbnail } from "./image_job.ts";

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let reply: unknown;
  try {
    reply = { ok: true, value: await makeThumbnail(JSON.parse(line)) };
  } catch (error) {
    const { name, message } = error instanceof Error
      ? error
      : { name: "Error", message: String(error) };
    reply = { ok: false, error: { name, message } };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
