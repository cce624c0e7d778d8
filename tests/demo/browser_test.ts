// The demo's operator page in a real browser: headless Chromium (Debian's
// package) driven by playwright-core, against the demo server on Deno. It
// uploads a photo through the page's file input and sees its thumbnails;
// sees an order, a report and a failed photo in their tables; cancels a
// running thumbnail with its button; and reconnects after the server
// restarts. Screenshots go to tests/.artifacts/ (demo-running.png while a
// thumbnail runs, demo.png after the cancel). In durable mode (SQLite), it
// retries one dead letter and deletes another with the page's buttons.
//
// playwright-core works under Node, Deno and Bun alike here, so the test runs
// under all three. Chromium must be installed: without it the test fails and
// says how to install it (CI installs it).

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { test } from "../_harness.ts";
import { progressiveJpeg, undecodableJpeg } from "./fixtures/crafted.ts";
import {
  type DemoServer,
  gradient,
  photoForm,
  removeDir,
  request,
  ROOT,
  startDemo,
  tempDir,
} from "./fixtures/server.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--disable-quic",
];

type Context = Awaited<ReturnType<typeof chromium.launchPersistentContext>>;

/** Headless Chromium with a fresh profile in `profile`. */
function openChromium(profile: string): Promise<Context> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: install it with ` +
        "`apt-get update && apt-get install -y chromium` (CI installs it)",
    );
  }
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
    // The page's CSP forbids eval, which Playwright uses for string expressions.
    bypassCSP: true,
    timeout: 30_000,
  });
}

/** Browser-side code, as a string: the test is type-checked without the DOM types. */
const text = (id: string) =>
  `document.getElementById(${JSON.stringify(id)}).textContent`;
const live = `document.getElementById("link")?.textContent === "live"`;

test("GET / is an operator's page: it uploads, lists, cancels, and reconnects after a restart, in Chromium", async () => {
  const photo = await gradient(1200, 800);
  const dataDir = await tempDir();
  const profile = await mkdtemp(join(tmpdir(), "demo-chromium-"));
  let server: DemoServer | undefined;
  let context: Context | undefined;
  try {
    server = await startDemo("deno", dataDir);
    const url = server.url;
    context = await openChromium(profile);
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${url}/`);
    assert.equal(await page.title(), "Background tasks demo");
    await page.waitForFunction(live);

    // An upload through the page's file input: its thumbnails show.
    await page.setInputFiles("#photo", {
      name: "gradient.jpg",
      mimeType: "image/jpeg",
      buffer: Buffer.from(photo.jpeg),
    });
    await page.click("#send");
    const thumbnails = `[...document.querySelectorAll("img.thumb")]`;
    await page.waitForFunction(
      `${thumbnails}.length === 3 && ${thumbnails}.every((image) => image.complete && image.naturalWidth > 0)`,
    );
    assert.deepEqual(
      await page.evaluate(`${thumbnails}.map((image) => image.naturalWidth)`),
      [150, 300, 600],
    );

    // An order, a report, a photo that does not decode: each in its table.
    await request(`${url}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        email: "ada@example.com",
        items: [{ sku: "MUG-1", quantity: 2 }],
      }),
    });
    await request(`${url}/photos`, {
      method: "POST",
      body: photoForm(undecodableJpeg(), "broken.jpg", "image/jpeg"),
    });
    await request(`${url}/reports`, { method: "POST" });
    await page.waitForFunction(
      `${text("orders")}.includes("ada@example.com") && ${
        text("orders")
      }.includes("sent")`,
    );
    await page.waitForFunction(`${text("reports")}.includes("fulfilled")`);
    await page.waitForFunction(
      `${text("photos")}.includes("broken.jpg") && ${
        text("photos")
      }.includes("failed to decode")`,
    );
    await page.waitForFunction(
      `${text("failures")}.includes("thumbnail 600px") && ${
        text("failures")
      }.includes("failed to decode")`,
    );

    // A slow photo: its thumbnail runs, with a cancel button that stops it.
    await request(`${url}/photos`, {
      method: "POST",
      body: photoForm(
        progressiveJpeg({ width: 4000, height: 3000, scans: 100 }),
        "slow.jpg",
        "image/jpeg",
      ),
    });
    await page.waitForFunction(
      `${text("running")}.includes("thumbnail 600px")`,
    );
    const artifacts = join(ROOT, "tests", ".artifacts");
    await mkdir(artifacts, { recursive: true });
    await page.screenshot({
      path: join(artifacts, "demo-running.png"),
      fullPage: true,
    });
    const row = page.locator("#running tr", { hasText: "thumbnail 600px" });
    await row.locator("button.cancel").click();
    await page.waitForFunction(`${text("failures")}.includes("cancelled")`);
    await page.waitForFunction(
      `${text("photos")}.includes("slow.jpg") && /cancelled/.test(${
        text("photos")
      })`,
    );
    await page.screenshot({
      path: join(artifacts, "demo.png"),
      fullPage: true,
    });

    // The server restarts on the same port: the page reconnects by itself.
    const port = new URL(url).port;
    assert.equal(await server.stop("SIGTERM"), 0, server.output());
    await page.waitForFunction(
      `document.getElementById("link").textContent !== "live"`,
    );
    server = await startDemo("deno", dataDir, { PORT: port });
    await page.waitForFunction(live);
    await page.waitForFunction(`${text("photos")}.includes("gradient.jpg")`);
  } finally {
    await context?.close();
    await server?.kill();
    await removeDir(dataDir);
    await removeDir(profile);
  }
});

test("in durable mode the page lists dead letters, and its buttons retry one and delete another, in Chromium", async () => {
  const dataDir = await tempDir();
  const profile = await mkdtemp(join(tmpdir(), "demo-chromium-"));
  let server: DemoServer | undefined;
  let context: Context | undefined;
  try {
    // One attempt per email, and an outbox that cannot be written: each
    // order's email becomes a dead letter.
    const outbox = join(dataDir, "outbox");
    await writeFile(outbox, "not a folder");
    server = await startDemo("deno", dataDir, {
      DURABLE: "sqlite",
      DURABLE_CONCURRENCY: "1",
      SQLITE_LEASE_MS: "1000",
      WORKERS: "1",
      MAIL_ATTEMPTS: "1",
    });
    const url = server.url;
    const orders: string[] = [];
    for (const email of ["ada@example.com", "grace@example.com"]) {
      const response = await request(`${url}/orders`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email, items: [{ sku: "MUG-1", quantity: 1 }] }),
      });
      assert.equal(response.status, 201);
      orders.push((await response.json()).orderId);
    }
    context = await openChromium(profile);
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${url}/`);
    await page.waitForFunction(live);
    const count = `${text("dead-count")}`;
    await page.waitForFunction(`${count} === "2"`);
    await rm(outbox);

    // Retry: the first row's email is sent this time, and leaves the list.
    await page.locator("#dead tr", { hasText: "send" }).first()
      .locator("button", { hasText: "retry" }).click();
    await page.waitForFunction(`${count} === "1"`);
    await page.waitForFunction(`${text("orders")}.includes("sent")`);
    // Delete: the other one leaves the list, and its email stays failed.
    await page.locator("#dead tr", { hasText: "send" }).first()
      .locator("button", { hasText: "delete" }).click();
    await page.waitForFunction(
      `${count} === "0" && ${text("dead")}.includes("no dead letter")`,
    );
    const statuses = await Promise.all(orders.map(async (id) => {
      const response = await request(`${url}/orders/${id}`);
      return (await response.json()).emailStatus;
    }));
    assert.deepEqual(statuses.sort(), ["failed", "sent"]);
  } finally {
    await context?.close();
    await server?.kill();
    await removeDir(dataDir);
    await removeDir(profile);
  }
});
