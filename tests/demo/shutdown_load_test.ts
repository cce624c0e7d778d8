// Shutdown under load: the demo server, busy with uploads and orders from
// several clients on 127.0.0.1, receives SIGTERM. It must exit 0 within its
// bound, and nothing it accepted may be lost: every order answered 201 gets
// its confirmation email and every photo answered 201 ends "ready", after at
// most one restart. The load is bounded in time and in count.

import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "../_harness.ts";
import {
  type DemoServer,
  gradient,
  photoForm,
  poll,
  removeDir,
  request,
  RUNTIMES,
  startDemo,
  tempDir,
} from "./fixtures/server.ts";

const CLIENTS = 6;
/** Requests per client at most; the load also stops when the server refuses. */
const PER_CLIENT = 40;
/** SIGTERM goes out once this many requests were accepted. */
const ACCEPTED_BEFORE_SIGTERM = 12;

interface Accepted {
  orders: string[];
  photos: string[];
  refused: number;
}

/** One client: alternates orders and uploads until refused or done. */
async function client(
  server: DemoServer,
  photo: Uint8Array,
  index: number,
  accepted: Accepted,
  onAccepted: () => void,
): Promise<void> {
  for (let i = 0; i < PER_CLIENT; i++) {
    let response: Response;
    const isOrder = (i + index) % 2 === 0;
    try {
      response = isOrder
        ? await request(`${server.url}/orders`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            email: `client${index}@example.com`,
            items: [{ sku: `SKU-${i}`, quantity: 1 }],
          }),
        })
        : await request(`${server.url}/photos`, {
          method: "POST",
          body: photoForm(photo, `c${index}-${i}.jpg`, "image/jpeg"),
        });
    } catch {
      // The listener closed: the server is going away. Nothing was accepted.
      accepted.refused++;
      return;
    }
    if (response.status === 503) {
      accepted.refused++;
      return;
    }
    const body = await response.json();
    assert.equal(response.status, 201, JSON.stringify(body));
    if (isOrder) accepted.orders.push(body.orderId);
    else accepted.photos.push(body.photoId);
    onAccepted();
  }
}

for (const runtime of RUNTIMES) {
  test(`SIGTERM under load loses no accepted order or photo (${runtime})`, async () => {
    const { jpeg } = await gradient(800, 600);
    const dataDir = await tempDir();
    let server: DemoServer | undefined;
    try {
      server = await startDemo(runtime, dataDir, {
        WORKERS: "1",
        MAIL_RETRY_MS: "10",
        // Requests in flight and tasks share this bound; then the tasks left
        // are cancelled.
        SHUTDOWN_TIMEOUT_MS: "2000",
        SHUTDOWN_GRACE_MS: "300",
      });
      const running = server;
      const accepted: Accepted = { orders: [], photos: [], refused: 0 };
      let exited: Promise<number | null> | undefined;
      const onAccepted = () => {
        const count = accepted.orders.length + accepted.photos.length;
        if (count === ACCEPTED_BEFORE_SIGTERM) exited = running.stop("SIGTERM");
      };
      await Promise.all(
        Array.from(
          { length: CLIENTS },
          (_, index) => client(running, jpeg, index, accepted, onAccepted),
        ),
      );
      assert.ok(exited, "the load ended before SIGTERM was sent");
      assert.equal(await exited, 0, running.output());
      assert.ok(accepted.orders.length > 0 && accepted.photos.length > 0);
      assert.match(running.output(), /shutdown: \d+ task\(s\) completed/);

      // One restart finishes whatever the shutdown cut short.
      server = await startDemo(runtime, dataDir, { MAIL_RETRY_MS: "10" });
      const restarted = server;
      console.log(
        `${runtime}: accepted ${accepted.orders.length} orders, ${accepted.photos.length} photos, refused ${accepted.refused}; ${
          running.output().match(/shutdown: .*/)?.[0]
        }; ${
          restarted.output().match(/resumed .*/)?.[0] ?? "nothing to resume"
        }`,
      );
      for (const id of accepted.orders) {
        await poll(`order ${id}'s email`, async () => {
          const order = await (await request(`${restarted.url}/orders/${id}`))
            .json();
          return order.emailStatus === "sent";
        });
      }
      const outbox = await readdir(join(dataDir, "outbox"));
      assert.equal(
        outbox.filter((file) => file.endsWith(".eml")).length,
        accepted.orders.length,
        `outbox: ${outbox.join(", ")}`,
      );
      for (const id of accepted.photos) {
        await poll(`photo ${id} to be ready`, async () => {
          const photo = await (await request(`${restarted.url}/photos/${id}`))
            .json();
          if (photo.status === "failed") throw new Error(photo.error);
          return photo.status === "ready";
        });
      }
      assert.equal(await restarted.stop("SIGINT"), 0, restarted.output());
    } finally {
      await server?.kill();
      await removeDir(dataDir);
    }
  });
}

// Deno Deploy sends SIGINT and kills the process 5 s later. The demo's
// default bounds (2.5 s for requests in flight and tasks, 0.5 s of grace, 1 s
// to close) fit in that; with SHUTDOWN_TIMEOUT_MS=0 the tasks in flight are cancelled
// at once, so the report must name them, and the next start redoes them.
test("SIGINT on Deno drains within Deno Deploy's 5 s and reports what it cancelled", async () => {
  const { jpeg } = await gradient(3000, 2000);
  const dataDir = await tempDir();
  let server: DemoServer | undefined;
  try {
    server = await startDemo("deno", dataDir, {
      WORKERS: "1",
      SHUTDOWN_TIMEOUT_MS: "0",
    });
    const running = server;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await request(`${running.url}/photos`, {
        method: "POST",
        body: photoForm(jpeg, `big-${i}.jpg`, "image/jpeg"),
      });
      assert.equal(response.status, 201);
      ids.push((await response.json()).photoId);
    }
    const tasks = await (await request(`${running.url}/tasks`)).json();
    assert.ok(tasks.activeCount + tasks.pendingCount > 0, "no task in flight");
    const sent = performance.now();
    const code = await running.stop("SIGINT");
    const elapsed = performance.now() - sent;
    assert.equal(code, 0, running.output());
    // A bound, not a benchmark: Deploy kills the process at 5 s.
    assert.ok(elapsed < 5000, `exited ${elapsed.toFixed(0)} ms after SIGINT`);
    const report = running.output().match(
      /shutdown: (\d+) task\(s\) completed, (\d+) cancelled, (\d+) abandoned/,
    );
    assert.ok(report, running.output());
    assert.ok(Number(report[2]) > 0, `nothing was cancelled: ${report[0]}`);
    assert.equal(report[3], "0");

    server = await startDemo("deno", dataDir);
    const restarted = server;
    assert.match(restarted.output(), /resumed [1-9]\d* photo/);
    for (const id of ids) {
      await poll(`photo ${id} to be ready`, async () => {
        const photo = await (await request(`${restarted.url}/photos/${id}`))
          .json();
        return photo.status === "ready";
      }, 300);
    }
    assert.equal(await restarted.stop("SIGINT"), 0, restarted.output());
  } finally {
    await server?.kill();
    await removeDir(dataDir);
  }
});
