// The demo server (examples/demo) over real HTTP, on Deno and on Bun: each
// test starts the server as a child process on a free port with its own
// DATA_DIR, and kills it in `finally`.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  mkdir,
  readdir,
  readFile,
  rm,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { test } from "../_harness.ts";
import {
  type DemoServer,
  dimensions,
  gradient,
  photoForm,
  poll,
  removeDir,
  request,
  type Runtime,
  RUNTIMES,
  startDemo,
  tempDir,
} from "./fixtures/server.ts";
import {
  hugeDeclaredJpeg,
  manyParts,
  progressiveJpeg,
  undecodableJpeg,
} from "./fixtures/crafted.ts";

const UUID =
  /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const small = await gradient(1200, 800);

/** Runs `fn` with a fresh DATA_DIR and a server started on it; cleans both up. */
async function withDemo(
  runtime: Runtime,
  env: Record<string, string>,
  fn: (server: DemoServer) => Promise<void>,
  prepare?: (dataDir: string) => Promise<void>,
): Promise<void> {
  const dataDir = await tempDir();
  let server: DemoServer | undefined;
  try {
    await prepare?.(dataDir);
    server = await startDemo(runtime, dataDir, env);
    await fn(server);
  } finally {
    await server?.kill();
    await removeDir(dataDir);
  }
}

async function json(response: Response): Promise<Record<string, unknown>> {
  assert.match(response.headers.get("content-type") ?? "", /application\/json/);
  return await response.json();
}

/** Asserts a `{ error }` answer with `status` whose message matches `pattern`. */
async function assertError(
  response: Response,
  status: number,
  pattern: RegExp,
): Promise<void> {
  const body = await json(response);
  assert.equal(response.status, status, JSON.stringify(body));
  assert.equal(typeof body.error, "string");
  assert.match(body.error as string, pattern);
}

async function upload(
  server: DemoServer,
  bytes: Uint8Array,
  name: string,
  type: string,
): Promise<string> {
  const response = await request(`${server.url}/photos`, {
    method: "POST",
    body: photoForm(bytes, name, type),
  });
  const body = await json(response);
  assert.equal(response.status, 201, JSON.stringify(body));
  assert.equal(body.status, "processing");
  assert.match(body.photoId as string, UUID);
  return body.photoId as string;
}

async function untilPhoto(
  server: DemoServer,
  id: string,
  status: string,
): Promise<Record<string, unknown>> {
  return await poll(`photo ${id} to be ${status}`, async () => {
    const body = await json(await request(`${server.url}/photos/${id}`));
    if (body.status === "failed" && status !== "failed") {
      throw new Error(`photo ${id} failed: ${body.error}`);
    }
    return body.status === status && body;
  });
}

async function order(
  server: DemoServer,
  body: unknown,
): Promise<Response> {
  return await request(`${server.url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

const ORDER = {
  email: "ada@example.com",
  items: [{ sku: "MUG-1", quantity: 2 }],
};

for (const runtime of RUNTIMES) {
  test(`POST /photos makes 150, 300 and 600 px thumbnails of a JPEG and a PNG (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const photos = [
        {
          id: await upload(server, small.jpeg, "a.jpg", "image/jpeg"),
          type: "image/jpeg",
        },
        {
          id: await upload(server, small.png, "b.png", "image/png"),
          type: "image/png",
        },
      ];
      for (const { id, type } of photos) {
        const body = await untilPhoto(server, id, "ready");
        assert.deepEqual(body.thumbnails, {
          150: `/photos/${id}/150`,
          300: `/photos/${id}/300`,
          600: `/photos/${id}/600`,
        });
        for (const width of [150, 300, 600]) {
          const response = await request(`${server.url}/photos/${id}/${width}`);
          assert.equal(response.status, 200);
          assert.equal(response.headers.get("content-type"), type);
          const bytes = new Uint8Array(await response.arrayBuffer());
          assert.deepEqual(await dimensions(bytes), {
            width,
            height: (width * 2) / 3,
          });
        }
        await assertError(
          await request(`${server.url}/photos/${id}/1200`),
          404,
          /no thumbnail size "1200"/,
        );
        await assertError(
          await request(`${server.url}/photos/${id}/0150`),
          404,
          /no thumbnail size "0150"/,
        );
      }
    });
  });

  test(`GET /tasks/events streams each task's start and settle, and GET /tasks lists tasks (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const tasks = await json(await request(`${server.url}/tasks`));
      assert.deepEqual(Object.keys(tasks).sort(), [
        "active",
        "activeCount",
        "durable",
        "eventStreams",
        "failures",
        "imageProcesses",
        "pendingCount",
        "queued",
        "requestsInFlight",
        "uploadsInFlight",
      ]);
      assert.ok(Array.isArray(tasks.active));
      assert.equal(tasks.activeCount, (tasks.active as unknown[]).length);
      assert.equal(typeof tasks.pendingCount, "number");

      const controller = new AbortController();
      const response = await fetch(`${server.url}/tasks/events`, {
        signal: controller.signal,
      });
      const seen: { event: string; data: Record<string, unknown> }[] = [];
      const events = readEvents(response.body!);
      try {
        assert.equal(response.status, 200);
        assert.match(
          response.headers.get("content-type") ?? "",
          /text\/event-stream/,
        );
        const first = await events.next();
        assert.equal(first.value?.event, "snapshot");
        const id = await upload(server, small.jpeg, "a.jpg", "image/jpeg");
        // Until the task that marks the photo ready has settled (bounded).
        for (let i = 0; i < 100; i++) {
          const { value, done } = await events.next();
          if (done) break;
          seen.push(value);
          const name = (value.data.task as { name: string }).name;
          if (value.event === "settle" && name === `photo ${id}`) break;
        }
        for (const width of [150, 300, 600]) {
          const name = `thumbnail ${width}px ${id}`;
          const of = seen.filter((e) =>
            (e.data.task as { name: string }).name === name
          );
          assert.deepEqual(
            of.map((
              e,
            ) => [e.event, (e.data.task as { status: string }).status]),
            [["start", "running"], ["settle", "fulfilled"]],
            `events of ${name}: ${JSON.stringify(seen)}`,
          );
        }
        assert.equal(seen.at(-1)?.event, "settle");
        // The photo's task reports its progress, the share of its thumbnails
        // made; the last report, before it settles, is the whole.
        const progress = seen.filter((e) =>
          e.event === "progress" &&
          (e.data.task as { name: string }).name === `photo ${id}`
        ).map((e) => (e.data.task as { progress: number }).progress);
        assert.ok(progress.length > 0, `no progress: ${JSON.stringify(seen)}`);
        assert.equal(progress.at(-1), 1);
        assert.deepEqual(progress, [...progress].sort((a, b) => a - b));
      } finally {
        await events.return(undefined);
        controller.abort();
        await response.body!.cancel().catch(() => {});
      }
      // The server drops the stream's listeners once the client is gone.
      await poll(
        "the event stream to be closed",
        async () =>
          (await json(await request(`${server.url}/tasks`))).eventStreams === 0,
      );
    });
  });

  test(`POST /photos rejects bad uploads with a JSON error and stores nothing (${runtime})`, async () => {
    const limit = 200_000;
    await withDemo(
      runtime,
      { MAX_UPLOAD_BYTES: String(limit) },
      async (server) => {
        const post = (body: BodyInit, headers: Record<string, string> = {}) =>
          request(`${server.url}/photos`, { method: "POST", body, headers });
        await assertError(
          await post(photoForm(small.jpeg, "a.jpg", "image/jpeg", "file")),
          400,
          /'photo' is missing/,
        );
        const text = new FormData();
        text.append("photo", "not a file");
        await assertError(
          await post(text),
          400,
          /'photo' is missing or is not a file/,
        );
        await assertError(
          await post(photoForm(new Uint8Array(0), "a.jpg", "image/jpeg")),
          400,
          /empty/,
        );
        await assertError(
          await post(
            photoForm(
              new TextEncoder().encode("hello, world"),
              "a.jpg",
              "image/jpeg",
            ),
          ),
          415,
          /not a JPEG or PNG/,
        );
        await assertError(
          await post(
            photoForm(
              new TextEncoder().encode("GIF89a......"),
              "a.gif",
              "image/gif",
            ),
          ),
          415,
          /not a JPEG or PNG/,
        );
        // Checked from the header as the bytes arrive, before any decode.
        await assertError(
          await post(
            photoForm(
              small.jpeg.slice(0, small.jpeg.length >> 1),
              "a.jpg",
              "image/jpeg",
            ),
          ),
          422,
          /\("a\.jpg"\) is not a readable JPEG image: no end-of-image marker \(truncated\)/,
        );
        await assertError(
          await post(photoForm(small.png.slice(0, 5000), "b.png", "image/png")),
          422,
          /is not a readable PNG image: no IEND chunk \(truncated\)/,
        );
        await assertError(
          await post(photoForm(small.jpeg.slice(0, 3), "a.jpg", "image/jpeg")),
          422,
          /no frame header/,
        );
        // A tiny file that declares a huge image cannot hold it.
        await assertError(
          await post(
            photoForm(hugeDeclaredJpeg(7000, 7000), "huge.jpg", "image/jpeg"),
          ),
          422,
          /cannot hold the 7000x7000 pixels it declares \(truncated\)/,
        );
        // Scans cost a pass over the image each: more than 100 are refused.
        await assertError(
          await post(
            photoForm(
              progressiveJpeg({ width: 400, height: 300, scans: 1000 }),
              "scans.jpg",
              "image/jpeg",
            ),
          ),
          422,
          /has more than 100 scans/,
        );
        // Over the decode budget: 24 MP in 50 scans is 36,000,000 units.
        await assertError(
          await post(
            photoForm(
              progressiveJpeg({ width: 6000, height: 4000, scans: 50 }),
              "big.jpg",
              "image/jpeg",
            ),
          ),
          422,
          /declares 6000x4000 pixels in 50 scan\(s\): 36000000 units of decode work .*the most accepted is 24000000/,
        );
        // A second 'photo' part, too many parts.
        const twice = photoForm(small.jpeg, "a.jpg", "image/jpeg");
        twice.append(
          "photo",
          new Blob([small.jpeg as Uint8Array<ArrayBuffer>]),
          "b.jpg",
        );
        await assertError(await post(twice), 400, /'photo' is there twice/);
        const parts = manyParts(1000);
        await assertError(
          await post(parts.body as Uint8Array<ArrayBuffer>, {
            "content-type": parts.type,
          }),
          400,
          /more than 16 parts/,
        );
        await assertError(
          await post(JSON.stringify({ photo: "x" }), {
            "content-type": "application/json",
          }),
          415,
          /multipart\/form-data/,
        );
        const big = new Uint8Array(limit + 1000);
        big.set(small.jpeg.slice(0, 4));
        await assertError(
          await post(photoForm(big, "big.jpg", "image/jpeg")),
          413,
          /larger than 200000 bytes/,
        );
        // The same without a Content-Length: the limit is checked while streaming.
        // (Bun's Response drops its Content-Type once its body is taken: read it first.)
        const form = new Response(photoForm(big, "big.jpg", "image/jpeg"));
        const type = form.headers.get("content-type")!;
        const chunked = await request(`${server.url}/photos`, {
          method: "POST",
          body: form.body,
          headers: { "content-type": type },
          duplex: "half",
        } as RequestInit);
        await assertError(chunked, 413, /larger than 200000 bytes/);

        assert.deepEqual(await readdir(join(server.dataDir, "photos")), []);
      },
    );
  });

  test(`POST /photos answers 201 for a file that does not decode, which ends failed with the decoder's reason (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const id = await upload(
        server,
        undecodableJpeg(),
        "bad.jpg",
        "image/jpeg",
      );
      const body = await untilPhoto(server, id, "failed");
      assert.match(
        body.error as string,
        /thumbnail 600px .*: jpg: failed to decode/,
      );
      assert.equal(body.attempts, 1, "a decode error is not tried again");
      const list = await json(await request(`${server.url}/photos`));
      const listed = (list.photos as Record<string, unknown>[])[0];
      assert.equal(listed.photoId, id);
      assert.equal(listed.status, "failed");
      assert.equal(listed.error, body.error);
      const tasks = await json(await request(`${server.url}/tasks`));
      const failures = tasks.failures as { name: string; error: string }[];
      assert.ok(
        failures.some((f) =>
          f.name === `thumbnail 600px ${id}` && /failed to decode/.test(f.error)
        ),
        JSON.stringify(failures),
      );
    });
  });

  test(`HEAD answers the GET's headers with its real Content-Length (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      for (const path of ["/health", "/", "/tasks"]) {
        const get = await fetch(`${server.url}${path}`);
        const length = (await get.arrayBuffer()).byteLength;
        const head = await fetch(`${server.url}${path}`, { method: "HEAD" });
        await head.body?.cancel();
        assert.equal(head.status, 200, path);
        assert.equal(head.headers.get("content-length"), String(length), path);
        assert.equal(
          head.headers.get("content-type"),
          get.headers.get("content-type"),
          path,
        );
      }
    });
  });

  test(`start-up removes old temporary files from the outbox and photos, and keeps young ones (${runtime})`, async () => {
    const old = new Date(Date.now() - 5 * 60_000);
    const leftovers = [
      "outbox/8d4f3f5e-5a43-4d3c-9a52-6f3b9f3f2c11.eml.tmp-1a2b",
      "photos/.incoming-0b7c3e7a-6d1f-4b7e-8f0e-2a9d8c1b5e44",
    ];
    const young = "outbox/8d4f3f5e-5a43-4d3c-9a52-6f3b9f3f2c11.eml.tmp-3c4d";
    await withDemo(runtime, {}, async (server) => {
      for (const path of leftovers) {
        assert.equal(existsSync(join(server.dataDir, path)), false, path);
      }
      assert.deepEqual(await readdir(join(server.dataDir, "photos")), []);
      assert.equal(
        existsSync(join(server.dataDir, young)),
        true,
        "a young one may be another process's",
      );
    }, async (dataDir) => {
      await mkdir(join(dataDir, "outbox"));
      await mkdir(join(dataDir, leftovers[1]), { recursive: true });
      await writeFile(join(dataDir, leftovers[0]), "half an email");
      await writeFile(join(dataDir, young), "being written");
      for (const path of leftovers) await utimes(join(dataDir, path), old, old);
    });
  });

  test(`POST /orders with an Idempotency-Key answers the first order again, with one email (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const post = (key: string, body: unknown) =>
        request(`${server.url}/orders`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "idempotency-key": key,
          },
          body: JSON.stringify(body),
        });
      const first = await post("order-7f3a", ORDER);
      const { orderId } = await json(first);
      assert.equal(first.status, 201);
      const again = await post("order-7f3a", ORDER);
      assert.equal(again.status, 201);
      assert.equal(again.headers.get("idempotent-replayed"), "true");
      assert.deepEqual(await json(again), { orderId });
      await assertError(
        await post("order-7f3a", { ...ORDER, email: "bob@example.com" }),
        422,
        new RegExp(
          `"order-7f3a" was used within 24 h for order ${orderId}, with a different body`,
        ),
      );
      await assertError(
        await post("bad key", ORDER),
        400,
        /Idempotency-Key header/,
      );
      const other = await json(await post("order-8b1c", ORDER));
      assert.notEqual(other.orderId, orderId);
      await poll("both emails to be sent", async () => {
        for (const id of [orderId, other.orderId]) {
          const row = await json(await request(`${server.url}/orders/${id}`));
          if (row.emailStatus !== "sent") return false;
        }
        return true;
      });
      const outbox = (await readdir(join(server.dataDir, "outbox"))).sort();
      assert.deepEqual(
        outbox,
        [`${orderId}.eml`, `${other.orderId}.eml`].sort(),
      );
      const list = await json(await request(`${server.url}/orders`));
      assert.equal((list.orders as unknown[]).length, 2);
    });
  });

  test(`a 400 quotes at most 80 characters of a bad value, and DELETE /tasks/:id of no task is a 404 (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const email = "x".repeat(60_000);
      const response = await order(server, { ...ORDER, email });
      const body = await json(response);
      assert.equal(response.status, 400);
      assert.match(
        body.error as string,
        /^'email' must be an email address, received "x{79}…$/,
      );
      await assertError(
        await request(`${server.url}/tasks/999999`, { method: "DELETE" }),
        404,
        /no running or queued task with id "999999"/,
      );
      await assertError(
        await request(`${server.url}/tasks/${"9".repeat(500)}`, {
          method: "DELETE",
        }),
        404,
        /with id "9{80}…"$/,
      );
    });
  });

  test(`GET of an unknown or malformed id answers 404 with a JSON error (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const get = (path: string) => request(`${server.url}${path}`);
      const unknown = crypto.randomUUID();
      await assertError(
        await get(`/photos/${unknown}`),
        404,
        /no photo with id/,
      );
      await assertError(
        await get(`/photos/${unknown}/150`),
        404,
        /no photo with id/,
      );
      await assertError(
        await get(`/photos/${unknown.toUpperCase()}`),
        404,
        /no photo/,
      );
      await assertError(await get("/photos/not-a-uuid"), 404, /no photo/);
      await assertError(
        await get("/photos/..%2F..%2Forders.db"),
        404,
        /no photo/,
      );
      await assertError(
        await get("/photos/%2e%2e/150"),
        404,
        /no (photo|route)/,
      );
      await assertError(
        await get(`/orders/${unknown}`),
        404,
        /no order with id/,
      );
      await assertError(await get("/orders/1"), 404, /no order/);
      await assertError(await get("/reports/999999"), 404, /no report with id/);
      await assertError(await get("/nowhere"), 404, /no route GET \/nowhere/);
    });
  });

  test(`POST /orders answers 201 and writes the confirmation email to the outbox (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const response = await order(server, ORDER);
      const body = await json(response);
      assert.equal(response.status, 201, JSON.stringify(body));
      const id = body.orderId as string;
      assert.match(id, UUID);
      const row = await poll("the email to be sent", async () => {
        const row = await json(await request(`${server.url}/orders/${id}`));
        return row.emailStatus === "sent" && row;
      });
      assert.equal(row.email, ORDER.email);
      assert.deepEqual(row.items, ORDER.items);
      assert.equal(row.emailAttempts, 1);
      assert.equal(row.emailError, null);
      const eml = await readFile(
        join(server.dataDir, "outbox", `${id}.eml`),
        "utf8",
      );
      assert.match(eml, /^To: ada@example\.com\r$/m);
      assert.match(eml, /2 x MUG-1/);
      const outbox = await readdir(join(server.dataDir, "outbox"));
      assert.deepEqual(outbox, [`${id}.eml`], "no temporary file is left");
    });
  });

  test(`POST /orders rejects bad orders with a JSON error naming the field and stores nothing (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      const post = (body: string, type = "application/json") =>
        request(`${server.url}/orders`, {
          method: "POST",
          headers: { "content-type": type },
          body,
        });
      await assertError(await post("{ not json"), 400, /not valid JSON/);
      await assertError(
        await post(JSON.stringify(ORDER), "text/plain"),
        415,
        /application\/json/,
      );
      await assertError(await post("[]"), 400, /JSON object/);
      const bad: [unknown, RegExp][] = [
        [
          { ...ORDER, email: "nobody" },
          /'email' must be an email address, received "nobody"/,
        ],
        [{ items: ORDER.items }, /'email'/],
        [{ ...ORDER, email: "a@b.co\r\nBcc: x@y.z" }, /'email'/],
        [{ email: ORDER.email }, /'items' must be a non-empty array/],
        [{ ...ORDER, items: [] }, /'items' must be a non-empty array/],
        [
          { ...ORDER, items: [{ sku: "A", quantity: 0 }] },
          /'items\[0\]\.quantity'.*received 0/,
        ],
        [{
          ...ORDER,
          items: [{ sku: "A", quantity: 1 }, { sku: "B", quantity: 1.5 }],
        }, /'items\[1\]\.quantity'/],
        [
          { ...ORDER, items: [{ sku: "A", quantity: "2" }] },
          /'items\[0\]\.quantity'.*received "2"/,
        ],
        [{ ...ORDER, items: [{ quantity: 1 }] }, /'items\[0\]\.sku'/],
        [{ ...ORDER, items: ["A"] }, /'items\[0\]' must be an object/],
      ];
      for (const [body, pattern] of bad) {
        await assertError(await post(JSON.stringify(body)), 400, pattern);
      }
      await assertError(
        await post(" ".repeat(70_000)),
        413,
        /larger than 65536 bytes/,
      );

      const report = await request(`${server.url}/reports`, { method: "POST" });
      const { taskId } = await json(report);
      const result = await poll("the report", async () => {
        const body = await json(
          await request(`${server.url}/reports/${taskId}`),
        );
        return body.status === "fulfilled" &&
          body.result as Record<string, { count: number }>;
      });
      assert.equal(result.orders.count, 0);
      assert.equal(existsSync(join(server.dataDir, "outbox")), false);
    });
  });

  test(`POST /orders records a failing mail transport in the order row and logs it (${runtime})`, async () => {
    const env = { MAIL_ATTEMPTS: "3", MAIL_RETRY_MS: "10" };
    // A file where the outbox folder should be: every send fails.
    const block = (dataDir: string) =>
      writeFile(join(dataDir, "outbox"), "not a folder");
    await withDemo(runtime, env, async (server) => {
      const { orderId } = await json(await order(server, ORDER));
      const row = await poll("the email to fail", async () => {
        const row = await json(
          await request(`${server.url}/orders/${orderId}`),
        );
        return row.emailStatus === "failed" && row;
      });
      assert.equal(row.emailAttempts, 3);
      assert.equal(typeof row.emailError, "string");
      assert.notEqual(row.emailError, "");
      await poll("the failure to be logged", () =>
        Promise.resolve(
          server.output().includes(`email try 3 of 3 failed`) &&
            server.output().includes(`task "send confirmation ${orderId}"`),
        ));
    }, block);
  });

  test(`POST /reports answers 202 and GET /reports/:id returns the result (${runtime})`, async () => {
    await withDemo(runtime, {}, async (server) => {
      assert.equal((await order(server, ORDER)).status, 201);
      assert.equal(
        (await order(server, { ...ORDER, items: [{ sku: "B", quantity: 3 }] }))
          .status,
        201,
      );
      const response = await request(`${server.url}/reports`, {
        method: "POST",
      });
      const body = await json(response);
      assert.equal(response.status, 202);
      assert.match(body.taskId as string, /^\d+$/);
      const report = await poll("the report", async () => {
        const report = await json(
          await request(`${server.url}/reports/${body.taskId}`),
        );
        assert.match(report.status as string, /^(pending|running|fulfilled)$/);
        return report.status === "fulfilled" && report;
      });
      const result = report.result as {
        orders: { count: number; quantity: number };
        photos: { count: number };
      };
      assert.equal(result.orders.count, 2);
      assert.equal(result.orders.quantity, 5);
      assert.equal(result.photos.count, 0);
    });
  });

  test(`SIGTERM during thumbnail processing exits 0, and the next start finishes the photo (${runtime})`, async () => {
    const big = await gradient(3000, 2000);
    const dataDir = await tempDir();
    let server: DemoServer | undefined;
    try {
      // Cancel at once at shutdown, so the thumbnails are cut short.
      server = await startDemo(runtime, dataDir, {
        WORKERS: "1",
        SHUTDOWN_TIMEOUT_MS: "0",
      });
      const id = await upload(server, big.jpeg, "big.jpg", "image/jpeg");
      assert.equal(await server.stop("SIGTERM"), 0, server.output());
      assert.match(server.output(), /SIGTERM: shutting down/);
      const meta = JSON.parse(
        await readFile(join(dataDir, "photos", id, "meta.json"), "utf8"),
      );
      assert.equal(meta.status, "processing", server.output());
      const left = await readdir(join(dataDir, "photos", id));
      assert.ok(
        !left.some((file) => file.includes(".tmp-")),
        `temporary files left: ${left}`,
      );

      server = await startDemo(runtime, dataDir);
      assert.match(server.output(), /resumed 1 photo/);
      await untilPhoto(server, id, "ready");
      const thumbnail = await request(`${server.url}/photos/${id}/600`);
      assert.deepEqual(
        await dimensions(new Uint8Array(await thumbnail.arrayBuffer())),
        { width: 600, height: 400 },
      );
      assert.equal(await server.stop("SIGINT"), 0, server.output());
    } finally {
      await server?.kill();
      await removeDir(dataDir);
    }
  });

  test(`SIGTERM lets an upload in flight finish and answers new requests 503 (${runtime})`, async () => {
    const dataDir = await tempDir();
    let server: DemoServer | undefined;
    try {
      // A long bound: the test, not a timer, decides when the upload ends.
      server = await startDemo(runtime, dataDir, {
        SHUTDOWN_TIMEOUT_MS: "20000",
      });
      const url = server.url;
      const form = new Response(photoForm(small.jpeg, "a.jpg", "image/jpeg"));
      const type = form.headers.get("content-type")!;
      const bytes = new Uint8Array(await form.arrayBuffer());
      const rest = Promise.withResolvers<void>();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(bytes.slice(0, bytes.length >> 1));
          await rest.promise;
          controller.enqueue(bytes.slice(bytes.length >> 1));
          controller.close();
        },
      });
      const uploading = request(`${url}/photos`, {
        method: "POST",
        headers: { "content-type": type },
        body,
        duplex: "half",
      } as RequestInit);
      try {
        await poll(
          "the upload to be in flight",
          async () =>
            (await json(await request(`${url}/tasks`))).requestsInFlight === 1,
        );
        const exited = server.stop("SIGTERM");
        await poll("new requests to be refused", async () => {
          const response = await request(`${url}/tasks`);
          if (response.status !== 503) return false;
          await assertError(response, 503, /shutting down/);
          assert.equal(response.headers.get("retry-after"), "5");
          assert.equal(response.headers.get("connection"), "close");
          return true;
        });
        // Liveness stays up while the server drains; readiness goes down.
        assert.equal((await request(`${url}/health`)).status, 200);
        assert.equal((await request(`${url}/ready`)).status, 503);
        rest.resolve();
        const response = await uploading;
        const created = await json(response);
        assert.equal(response.status, 201, JSON.stringify(created));
        assert.equal(await exited, 0, server.output());
        const meta = JSON.parse(
          await readFile(
            join(dataDir, "photos", created.photoId as string, "meta.json"),
            "utf8",
          ),
        );
        assert.match(meta.status, /^(processing|ready)$/);
      } finally {
        rest.resolve();
        await uploading.catch(() => {});
      }
    } finally {
      await server?.kill();
      await removeDir(dataDir);
    }
  });

  test(`an order whose email was not sent before SIGTERM is sent at the next start (${runtime})`, async () => {
    const dataDir = await tempDir();
    let server: DemoServer | undefined;
    try {
      const outbox = join(dataDir, "outbox");
      await writeFile(outbox, "not a folder");
      // The first try fails, the next would come a minute later: shut down in between.
      server = await startDemo(runtime, dataDir, {
        MAIL_ATTEMPTS: "5",
        MAIL_RETRY_MS: "60000",
        SHUTDOWN_TIMEOUT_MS: "0",
      });
      const { orderId } = await json(await order(server, ORDER));
      await poll("the first try to fail", async () => {
        const row = await json(
          await request(`${server!.url}/orders/${orderId}`),
        );
        return row.emailAttempts === 1 && row.emailStatus === "pending";
      });
      assert.equal(await server.stop("SIGTERM"), 0, server.output());

      await rm(outbox);
      server = await startDemo(runtime, dataDir);
      assert.match(server.output(), /resumed 0 photo\(s\) and 1 email/);
      const row = await poll("the email to be sent", async () => {
        const row = await json(
          await request(`${server!.url}/orders/${orderId}`),
        );
        return row.emailStatus === "sent" && row;
      });
      assert.equal(row.emailAttempts, 2);
      assert.ok(existsSync(join(outbox, `${orderId}.eml`)));
    } finally {
      await server?.kill();
      await removeDir(dataDir);
    }
  });
}

/** Parses a `text/event-stream` body into `{ event, data }` messages. */
async function* readEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ event: string; data: Record<string, unknown> }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    while (true) {
      let end: number;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length > 0) yield { event, data: JSON.parse(data.join("\n")) };
      }
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
}
