// The demo's pieces in process, without a server: the image header scanner
// and its budget rule, the streaming multipart reader, the upload gate, the
// idempotency of orders, and the report that yields to the event loop.

import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { Hono } from "hono";
import { Image } from "imagescript";
import { TaskManager } from "../../mod.ts";
import {
  backgroundTasks,
  type BackgroundTasksEnv,
} from "../../src/hono/mod.ts";
import { test } from "../_harness.ts";
import {
  decodeWork,
  ImageRefusal,
  ImageScanner,
} from "../../examples/demo/image_header.ts";
import {
  MultipartError,
  readMultipart,
} from "../../examples/demo/multipart.ts";
import { decodeImage } from "../../examples/demo/image_job.ts";
import { IDEMPOTENCY_TTL, OrderStore } from "../../examples/demo/orders.ts";
import type { ImagePool } from "../../examples/demo/image_processes.ts";
import {
  type PhotoDeps,
  processPhoto,
  UploadGate,
} from "../../examples/demo/photos.ts";
import { REPORT_CHUNK, reportRoutes } from "../../examples/demo/reports.ts";
import { PhotoStore } from "../../examples/demo/storage.ts";
import {
  hugeDeclaredJpeg,
  manyParts,
  progressiveJpeg,
  undecodableJpeg,
} from "./fixtures/crafted.ts";
import { gradient, removeDir, tempDir } from "./fixtures/server.ts";

const photo = await gradient(120, 80);

/** Scans `bytes` in chunks of `size`. */
function scan(bytes: Uint8Array, size = bytes.length) {
  const scanner = new ImageScanner();
  for (let i = 0; i < bytes.length; i += size) {
    scanner.push(bytes.subarray(i, i + size));
  }
  return scanner.finish();
}

function refusal(fn: () => unknown): ImageRefusal {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ImageRefusal, String(error));
    return error;
  }
  throw new Error("not refused");
}

test("ImageScanner reads a JPEG's and a PNG's header the same in any chunking", () => {
  for (const size of [1, 7, 64, 100_000]) {
    assert.deepEqual(scan(photo.jpeg, size), {
      format: "jpeg",
      width: 120,
      height: 80,
      components: 3,
      progressive: false,
      scans: 1,
    });
    assert.deepEqual(scan(photo.png, size), {
      format: "png",
      width: 120,
      height: 80,
      components: 4,
      progressive: false,
      scans: 1,
    });
  }
  const progressive = progressiveJpeg({ width: 800, height: 600, scans: 40 });
  assert.deepEqual(scan(progressive, 13), {
    format: "jpeg",
    width: 800,
    height: 600,
    components: 1,
    progressive: true,
    scans: 40,
  });
});

test("ImageScanner refuses what is not a whole JPEG or PNG, naming why", () => {
  const text = new TextEncoder().encode("GIF89a......");
  const notImage = refusal(() => scan(text));
  assert.equal(notImage.status, 415);
  assert.match(notImage.message, /not a JPEG or PNG/);
  const cases: [Uint8Array, RegExp][] = [
    [photo.jpeg.slice(0, photo.jpeg.length - 100), /no end-of-image marker/],
    [photo.jpeg.slice(0, 3), /no frame header/],
    [photo.png.slice(0, 200), /no IEND chunk/],
    [
      hugeDeclaredJpeg(7000, 7000),
      /64 bytes of image data cannot hold the 7000x7000 pixels/,
    ],
    [
      progressiveJpeg({ width: 100, height: 100, scans: 101 }),
      /more than 100 scans/,
    ],
  ];
  for (const [bytes, pattern] of cases) {
    const refused = refusal(() => scan(bytes, 50));
    assert.equal(refused.status, 422);
    assert.match(refused.message, pattern);
  }
  // Lossless (SOF3): the decoder does not read it.
  const lossless = Uint8Array.from(undecodableJpeg());
  lossless[lossless.indexOf(0xc0, 2)] = 0xc3;
  assert.match(refusal(() => scan(lossless)).message, /frame type SOF3/);
  // A whole, well-formed file the decoder will refuse passes the header check.
  assert.equal(scan(undecodableJpeg()).width, 64);
});

test("decodeWork() counts a JPEG's scans as 1/100 of its pixels each", () => {
  const header = {
    format: "jpeg",
    width: 4000,
    height: 3000,
    components: 3,
    progressive: false,
    scans: 1,
  } as const;
  assert.equal(decodeWork(header), 12_120_000);
  assert.equal(decodeWork({ ...header, scans: 100 }), 24_000_000);
  assert.equal(decodeWork({ ...header, format: "png" }), 12_000_000);
  assert.equal(decodeWork({ ...header, format: "png" }, 16), 24_000_000);
});

test("decodeImage() gives the pixels imagescript's Image.decode gives, and its errors", async () => {
  const grey = progressiveJpeg({ width: 40, height: 24, scans: 3 });
  for (const bytes of [photo.jpeg, grey, photo.png]) {
    const ours = await decodeImage(bytes as Uint8Array<ArrayBuffer>);
    const theirs = await Image.decode(bytes);
    assert.equal(ours.width, theirs.width);
    assert.equal(ours.height, theirs.height);
    assert.deepEqual(ours.bitmap, theirs.bitmap);
  }
  const corrupt = undecodableJpeg() as Uint8Array<ArrayBuffer>;
  const expected = await Image.decode(corrupt).then(
    () => assert.fail("imagescript decoded a corrupt JPEG"),
    (error: Error) => error.message,
  );
  await assert.rejects(decodeImage(corrupt), { message: expected });
});

test("under load, a photo's thumbnails run back to back, ahead of photos not yet begun", async () => {
  // The image process keeps the decoded original between a photo's jobs:
  // a job of another photo in between would make it decode again.
  const dir = await tempDir();
  const store = new PhotoStore(dir);
  const images = new TaskManager({ concurrency: 1 });
  const tasks = new TaskManager();
  const jobs: string[] = [];
  const pool: ImagePool = {
    async run(job) {
      jobs.push(`${basename(dirname(job.input))} ${job.width}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
      return { width: job.width, height: 1, original: { width: 1, height: 1 } };
    },
    async close() {},
    processes: [],
  };
  const deps: PhotoDeps = {
    store,
    closing: new AbortController().signal,
    pool,
    images,
    maxUploadBytes: 1 << 20,
    uploads: new UploadGate(4),
    maxWork: 1e6,
  };
  try {
    await store.init();
    const ids = ["a", "b", "c"].map((c) =>
      `${c.repeat(8)}-0000-4000-8000-${"0".repeat(12)}`
    );
    const metas = [];
    for (const id of ids) {
      const meta = {
        id,
        status: "processing",
        type: "jpeg",
        width: 120,
        height: 80,
        createdAt: new Date().toISOString(),
      } as const;
      await store.create(meta, photo.jpeg);
      metas.push(meta);
    }
    for (const meta of metas) processPhoto(tasks, deps, meta);
    await tasks.idle();
    assert.deepEqual(
      jobs,
      ids.flatMap((id) => [`${id} 600`, `${id} 300`, `${id} 150`]),
    );
    for (const id of ids) assert.equal((await store.meta(id))?.status, "ready");
  } finally {
    await tasks.shutdown();
    await images.shutdown();
    await removeDir(dir);
  }
});

/** A multipart body split into chunks of `size` bytes. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset += size));
    },
  });
}

async function formBytes(
  form: FormData,
): Promise<{ bytes: Uint8Array; boundary: string }> {
  const response = new Response(form);
  const boundary =
    /boundary=(.+)$/.exec(response.headers.get("content-type")!)![1];
  return { bytes: new Uint8Array(await response.arrayBuffer()), boundary };
}

const LIMITS = { maxParts: 16, maxHeaderBytes: 1024, maxBytes: 1 << 20 };

test("readMultipart() hands each part's bytes on whole, whatever the chunk boundaries", async () => {
  const form = new FormData();
  form.append("title", "a photo");
  form.append(
    "photo",
    new Blob([photo.jpeg as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }),
    "my best.jpg",
  );
  const { bytes, boundary } = await formBytes(form);
  for (const size of [1, 3, boundary.length + 3, 997, bytes.length]) {
    const parts: { name: string; filename?: string; bytes: number[] }[] = [];
    await readMultipart(chunked(bytes, size), boundary, (part) => {
      const entry = {
        name: part.name,
        filename: part.filename,
        bytes: [] as number[],
      };
      parts.push(entry);
      return { write: (chunk) => void entry.bytes.push(...chunk) };
    }, LIMITS);
    assert.deepEqual(parts.map((p) => [p.name, p.filename]), [[
      "title",
      undefined,
    ], ["photo", "my best.jpg"]], `chunks of ${size}`);
    assert.equal(
      new TextDecoder().decode(Uint8Array.from(parts[0].bytes)),
      "a photo",
    );
    assert.deepEqual(
      Uint8Array.from(parts[1].bytes),
      photo.jpeg,
      `chunks of ${size}`,
    );
  }
});

test("readMultipart() keeps a part whole when it holds near-delimiters, split at every byte", async () => {
  // Bytes that begin like the delimiter and then differ, at the end of the
  // content too: each split makes a chunk end inside one of them.
  const boundary = "b0undary";
  const tricky = `x\r\n--b0und\ry\r\n-\r\r\n--b0undar\r\n--b0undar\r`;
  const body = new TextEncoder().encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n${tricky}\r\n--${boundary}--\r\n`,
  );
  for (let size = 1; size <= body.length; size++) {
    let got = "";
    await readMultipart(chunked(body, size), boundary, () => ({
      write: (chunk) => void (got += new TextDecoder().decode(chunk)),
    }), LIMITS);
    assert.equal(got, tricky, `chunks of ${size}`);
  }
});

test("readMultipart() hands a part's bytes on in the chunks it read, never copied", async () => {
  const content = new Uint8Array(50_000).fill(0x41); // no byte of a delimiter's start
  const form = new FormData();
  form.append("photo", new Blob([content]), "a.jpg");
  const { bytes, boundary } = await formBytes(form);
  const read = new Set<ArrayBufferLike>();
  const chunks = chunked(bytes, 4096).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read.add(chunk.buffer);
        controller.enqueue(chunk);
      },
    }),
  );
  let total = 0;
  let copies = 0;
  await readMultipart(chunks, boundary, () => ({
    write: (chunk) => {
      total += chunk.length;
      if (!read.has(chunk.buffer)) copies++;
    },
  }), LIMITS);
  assert.equal(total, content.length);
  assert.equal(copies, 0, "each write is a view of a chunk as read");
});

test("readMultipart() stops at its bounds: parts, header bytes, body bytes, a missing end", async () => {
  const many = manyParts(1000);
  const boundary = "----many-parts-boundary";
  let parts = 0;
  await assert.rejects(
    readMultipart(chunked(many.body, 4096), boundary, () => {
      parts++;
      return undefined;
    }, LIMITS),
    (error) =>
      error instanceof MultipartError && error.status === 400 &&
      /more than 16 parts/.test(error.message),
  );
  assert.equal(parts, 16, "no part past the limit is even looked at");
  const long = new TextEncoder().encode(
    `--b\r\nContent-Disposition: form-data; name="x"; ${
      "y".repeat(2000)
    }\r\n\r\n`,
  );
  await assert.rejects(
    readMultipart(chunked(long, 100), "b", () => undefined, LIMITS),
    /headers are longer than 1024 bytes/,
  );
  const { bytes, boundary: b } = await formBytes((() => {
    const f = new FormData();
    f.append("photo", new Blob([new Uint8Array(5000)]), "a.jpg");
    return f;
  })());
  await assert.rejects(
    readMultipart(chunked(bytes, 1000), b, () => undefined, {
      ...LIMITS,
      maxBytes: 4000,
    }),
    (error) => error instanceof MultipartError && error.status === 413,
  );
  await assert.rejects(
    readMultipart(
      chunked(bytes.slice(0, bytes.length - 10), 1000),
      b,
      () => undefined,
      LIMITS,
    ),
    /ends before its closing boundary/,
  );
});

test("UploadGate admits up to its limit, and again once one leaves", () => {
  const gate = new UploadGate(2);
  assert.equal(gate.enter(), true);
  assert.equal(gate.enter(), true);
  assert.equal(gate.enter(), false);
  assert.equal(gate.inFlight, 2);
  gate.leave();
  assert.equal(gate.enter(), true);
  assert.throws(
    () => new UploadGate(0),
    /'limit' must be a positive integer, received 0/,
  );
});

test("OrderStore.insertOnce() returns the first order for a key within 24 h, and forgets it after", async () => {
  const dir = await tempDir();
  const store = new OrderStore(join(dir, "orders.db"));
  try {
    const items = [{ sku: "MUG-1", quantity: 1 }];
    const now = Date.now();
    const a = crypto.randomUUID();
    const first = store.insertOnce(
      "k1",
      "h1",
      a,
      "ada@example.com",
      items,
      now,
    );
    assert.ok("order" in first && first.created);
    const again = store.insertOnce(
      "k1",
      "h1",
      crypto.randomUUID(),
      "ada@example.com",
      items,
      now + 1000,
    );
    assert.ok("order" in again && !again.created);
    assert.equal(again.order.orderId, a);
    const other = store.insertOnce(
      "k1",
      "h2",
      crypto.randomUUID(),
      "bob@example.com",
      items,
      now + 2000,
    );
    assert.ok("conflict" in other && other.conflict.orderId === a);
    const later = store.insertOnce(
      "k1",
      "h1",
      crypto.randomUUID(),
      "ada@example.com",
      items,
      now + IDEMPOTENCY_TTL + 1,
    );
    assert.ok("order" in later && later.created && later.order.orderId !== a);
    assert.equal(store.recent(10).length, 2);
  } finally {
    store.close();
    await removeDir(dir);
  }
});

test("POST /reports reads the orders chunk by chunk, letting timers run in between", async () => {
  const dir = await tempDir();
  const orders = new OrderStore(join(dir, "orders.db"));
  const photos = new PhotoStore(dir);
  try {
    await photos.init();
    const count = REPORT_CHUNK * 5 + 7;
    for (let i = 0; i < count; i++) {
      orders.insert(crypto.randomUUID(), "ada@example.com", [{
        sku: "A",
        quantity: 2,
      }]);
    }
    const manager = new TaskManager();
    // The routes take their TaskScope from the Hono middleware, as in the demo.
    const outer = new Hono<BackgroundTasksEnv>();
    outer.use(backgroundTasks(manager, { executionContext: false }));
    outer.route("/reports", reportRoutes(orders, photos));
    const created = await outer.request("/reports", { method: "POST" });
    const { taskId } = await created.json();
    // Count the timer turns the event loop takes while the report runs.
    let turns = 0;
    let running = true;
    const tick = () => {
      if (!running) return;
      turns++;
      setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    await manager.idle();
    running = false;
    const report = await (await outer.request(`/reports/${taskId}`)).json();
    assert.equal(report.status, "fulfilled");
    assert.equal(report.result.orders.count, count);
    assert.equal(report.result.orders.quantity, count * 2);
    assert.ok(turns >= 5, `only ${turns} timer turn(s) while the report ran`);
  } finally {
    orders.close();
    await removeDir(dir);
  }
});
