// The README quotes runnable files (the edge handlers, the graceful-shutdown
// server, the worker pool example) that the gate type-checks and runs: keep
// the quotes and the files the same. The server and the worker example run
// here, on the runtime of the test.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { ServerProcess } from "../shutdown/fixtures/_server_process.ts";
import { test } from "../_harness.ts";

const root = new URL("../../", import.meta.url);
const readme = readFileSync(new URL("README.md", root), "utf8");

for (
  const file of [
    "examples/edge/cloudflare_worker.ts",
    "examples/edge/vercel_function.ts",
    "examples/edge/supabase_function.ts",
    "examples/edge/deno_deploy.ts",
    "examples/server/main.ts",
    "examples/worker/main.ts",
    "examples/worker/thumbnail.ts",
  ]
) {
  test(`README quotes ${file} verbatim`, () => {
    // The quote starts at the imports, after the file's own header comment.
    const text = readFileSync(new URL(file, root), "utf8");
    const source = text.slice(text.indexOf("import ")).trim();
    assert.ok(
      readme.includes("```ts\n" + source + "\n```"),
      `README.md no longer quotes ${file} as it is; copy the file into its section again`,
    );
  });
}

const runtime = typeof Deno !== "undefined"
  ? "deno"
  : (globalThis as { Bun?: unknown }).Bun !== undefined
  ? "bun"
  : "node";

test(`examples/server/main.ts serves, drains on SIGTERM and exits 0 (${runtime})`, async () => {
  const server = new ServerProcess(
    { PORT: "0" },
    fileURLToPath(new URL("../../examples/server/main.ts", import.meta.url)),
  );
  try {
    const line = await server.waitForLine(/^listening on (http:\/\/\S+)$/);
    const url = line.slice("listening on ".length);
    const response = await fetch(`${url}orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "ada@example.com" }),
    });
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { status: "received" });
    server.signal("SIGTERM");
    assert.equal(await server.exit(), 0, server.output.join("\n"));
    assert.deepEqual(server.output.slice(1), [
      "SIGTERM: shutting down",
      "confirmation sent to ada@example.com",
      "shutdown: 1 task(s) completed, 0 cancelled, 0 abandoned",
    ]);
  } finally {
    await server.stop();
  }
});

if (runtime !== "node") {
  // Node 22 has no web Worker: the example runs under Deno and Bun.
  test(`examples/worker/main.ts makes a thumbnail in a worker and exits (${runtime})`, async () => {
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const output = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        runtime === "deno"
          ? ["run", "-A", "examples/worker/main.ts"]
          : ["examples/worker/main.ts"],
        { cwd: root, timeout: 30_000, env: { ...process.env, NO_COLOR: "1" } },
        (error, stdout, stderr) =>
          error === null
            ? resolve(stdout)
            : reject(new Error(`${error}\n${stderr}`)),
      )
    );
    const result = JSON.parse(output.trim());
    assert.equal(result.width, 300);
    assert.equal(result.height, 225);
    assert.ok(result.thumbBytes > 0 && result.thumbBytes < result.photoBytes);
  });
}
