// `GET /health` while 20 reports over 20,000 orders run at once on the
// demo: a report reads the orders 500 at a time and yields to the event
// loop in between, so a health check should not wait behind it.
//
//   deno run -A bench/demo_reports.ts      bun bench/demo_reports.ts
//
// The orders are written to DATA_DIR/orders.db before the server starts, their
// emails marked sent (so that the server has none to send at start). Then
// 3 rounds: 20 `POST /reports` at once while one check at a time goes out
// every 10 ms, until every report is fulfilled. Percentiles over every check.
// Writes bench/results/demo-reports-<runtime>.md and .json.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { OrderStore } from "../examples/demo/orders.ts";
import { startDemo as launch } from "../tests/demo/fixtures/server.ts";
import { load, percentile, Report, request, sleep, slug } from "./_demo.ts";
import { runtime } from "./_runtime.ts";

const ORDERS = 20_000;
const REPORTS = 20;
const ROUNDS = 3;
const TARGET_MS = 10;

const dataDir = await mkdtemp(join(tmpdir(), "bench-reports-"));
const store = new OrderStore(join(dataDir, "orders.db"));
const ids: string[] = [];
for (let i = 0; i < ORDERS; i++) {
  const id = crypto.randomUUID();
  store.insert(id, `c${i}@example.com`, [
    { sku: "MUG-1", quantity: 1 + (i % 3) },
    { sku: "TEE-2", quantity: 1 },
  ]);
  ids.push(id);
}
// Old orders whose emails went out: a pending one would be sent again when
// the server starts, and the bench would measure 20,000 emails, not reports.
await Promise.all(ids.map((id) => store.markSent(id)));
store.close();

const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
const server = await launch(slug as "deno" | "bun", dataDir, {}, {
  executable: deno ? deno.execPath() : process.execPath,
});
const loadBefore = load();
const checks: number[] = [];
const reportMs: number[] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    let working = true;
    const checking = (async () => {
      while (working) {
        const start = performance.now();
        await request(`${server.url}/health`);
        checks.push(performance.now() - start);
        await sleep(10);
      }
    })();
    const started = performance.now();
    const ids = await Promise.all(
      Array.from(
        { length: REPORTS },
        async () =>
          (await (await request(`${server.url}/reports`, { method: "POST" }))
            .json()).taskId,
      ),
    );
    for (const id of ids) {
      for (;;) {
        const body = await (await request(`${server.url}/reports/${id}`))
          .json();
        if (body.status === "fulfilled") {
          const counted = body.result.orders;
          if (counted.count !== ORDERS || counted.email.sent !== ORDERS) {
            throw new Error(`report ${id} counted ${JSON.stringify(counted)}`);
          }
          break;
        }
        if (body.status !== "pending" && body.status !== "running") {
          throw new Error(`report ${id}: ${JSON.stringify(body)}`);
        }
        await sleep(20);
      }
    }
    reportMs.push(performance.now() - started);
    working = false;
    await checking;
  }
} finally {
  await server.kill();
  await rm(dataDir, { recursive: true, force: true });
}
const loadAfter = load();
const p99 = percentile(checks, 0.99);
const out = new Report();
out.line(
  `## GET /health while reports run — ${runtime.name}, ${runtime.cores} cores`,
);
out.line();
out.line(
  `${REPORTS} \`POST /reports\` at once over ${
    ORDERS.toLocaleString("en")
  } orders, ${ROUNDS} rounds; one \`GET /health\` at a time every 10 ms until every report was fulfilled. Load average ${
    loadBefore ?? "?"
  } before, ${loadAfter ?? "?"} after.`,
);
out.line();
out.line(
  "| checks | p50 (ms) | p99 (ms) | max (ms) | 20 reports took (s), per round |",
);
out.line("| ---: | ---: | ---: | ---: | ---: |");
out.line(
  `| ${checks.length} | ${percentile(checks, 0.5).toFixed(1)} | ${
    p99.toFixed(1)
  } | ${Math.max(...checks).toFixed(1)} | ${
    reportMs.map((ms) => (ms / 1000).toFixed(1)).join(", ")
  } |`,
);
out.line();
out.line(
  `Target: p99 under ${TARGET_MS} ms: **${
    p99 < TARGET_MS ? "met" : "missed"
  }** (${p99.toFixed(1)} ms).`,
);
out.write("demo-reports", {
  benchmark: "demo-reports",
  runtime: runtime.name,
  load: { before: loadBefore ?? null, after: loadAfter ?? null },
  checks: checks.length,
  p50Ms: percentile(checks, 0.5),
  p99Ms: p99,
  maxMs: Math.max(...checks),
  reportMs,
});
