// What `@background/tasks` adds to one Hono request, in process: `app.fetch`
// called directly, no network, no load generator, so the few microseconds
// the middleware and a task cost are not lost in the noise of an HTTP
// benchmark on a shared machine (server.ts measures the whole server).
//
//   deno run -A bench/request.ts      bun bench/request.ts
//
// Five apps with the same `POST /orders` handler (parse a small JSON body,
// answer 201 with JSON), timed side by side, interleaved within each round.
// Prints Markdown and writes bench/results/request-<runtime>.md.

import { type Context, Hono } from "hono";
import process from "node:process";
import { TaskManager } from "../mod.ts";
import {
  backgroundTasks,
  type BackgroundTasksEnv,
  type BackgroundTasksOptions,
} from "../src/hono/mod.ts";
import { interleaved, median, runtime } from "./_runtime.ts";

const N = 20_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const BODY = JSON.stringify({
  email: "ada@example.com",
  items: [{ sku: "MUG-1", quantity: 2 }],
});

const tasks = new TaskManager();
const empty = async () => {};

type Background = (c: Context<BackgroundTasksEnv>) => void;

/** An app with the shared handler; `background` is what each adds to it. */
function app(
  middleware: boolean,
  background: Background,
  options?: BackgroundTasksOptions,
): Hono<BackgroundTasksEnv> {
  const app = new Hono<BackgroundTasksEnv>();
  if (middleware) app.use(backgroundTasks(tasks, options));
  app.post("/orders", async (c) => {
    const order = await c.req.json<{ email: string }>();
    background(c);
    return c.json({ email: order.email }, 201);
  });
  return app;
}

const WITHOUT = "without the middleware, no task";
const apps: Record<string, Hono<BackgroundTasksEnv>> = {
  [WITHOUT]: app(false, () => {}),
  "with the middleware, no task": app(true, () => {}),
  "with the middleware and one empty task (`c.var.tasks.run`)": app(
    true,
    (c) => c.var.tasks.run("send-confirmation", empty),
  ),
  "with `{ executionContext: false }` and one empty task": app(
    true,
    (c) => c.var.tasks.run("send-confirmation", empty),
    { executionContext: false },
  ),
  "one empty task on the manager, no middleware (`tasks.run`)": app(
    false,
    () => tasks.run("send-confirmation", empty),
  ),
  // Not ours: Hono's `c.executionCtx` getter throws where the host gave no
  // execution context; the middleware reads it once per request with a task.
  "no task, Hono's `c.executionCtx` read and its throw caught": app(
    false,
    (c) => {
      try {
        c.executionCtx;
      } catch {
        // Deno.serve, Bun.serve and Node give no execution context.
      }
    },
  ),
};

async function time(target: Hono<BackgroundTasksEnv>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < N; i++) {
    const response = await target.fetch(
      new Request("http://127.0.0.1/orders", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: BODY,
      }),
    );
    if (response.status !== 201) {
      throw new Error(`POST /orders answered ${response.status}`);
    }
    await response.arrayBuffer();
  }
  await tasks.idle();
  return ((performance.now() - start) * 1e3) / N; // µs per request
}

const names = Object.keys(apps);
const samples = await interleaved(names, ROUNDS, (name) => time(apps[name]));

const lines: string[] = [];
const out = (line = "") => {
  console.log(line);
  lines.push(line);
};
const added = (name: string) =>
  median(samples[name].map((x, i) => x - samples[WITHOUT][i]));

out(
  `## Cost per request, in process — ${runtime.name}, ${runtime.cores} cores`,
);
out();
out(
  `Hono's \`app.fetch\` called directly with \`POST /orders\` (a small JSON body parsed, a 201 JSON answer read to the end), ${
    N.toLocaleString("en")
  } requests per run, then \`idle()\`; median of ${ROUNDS} rounds (min–max) after one warm-up round; the apps interleaved within each round; \"added\" is the median of per-round differences from the app without the middleware.`,
);
out();
out("| app | µs per request (median) | min–max | added (µs) | added (%) |");
out("| --- | ---: | ---: | ---: | ---: |");
for (const name of names) {
  const s = samples[name];
  const base = median(samples[WITHOUT]);
  out(
    `| ${name} | ${median(s).toFixed(2)} | ${Math.min(...s).toFixed(2)}–${
      Math.max(...s).toFixed(2)
    } | ${name === WITHOUT ? "—" : added(name).toFixed(2)} | ${
      name === WITHOUT ? "—" : `${((added(name) / base) * 100).toFixed(1)} %`
    } |`,
  );
}

const slug = runtime.name.split(" ")[0];
const url = new URL(`./results/request-${slug}.md`, import.meta.url);
const { writeFileSync } = await import("node:fs");
writeFileSync(url, lines.join("\n") + "\n");
console.log(`\nwrote ${url.pathname.split("/").slice(-3).join("/")}`);
