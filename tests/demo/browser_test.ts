// The demo's operator page in a real browser: headless Chromium (Debian's
// package) driven by playwright-core, against the demo server on Deno. It
// uploads a photo through the page's file input and sees its thumbnails;
// sees an order, a report and a failed photo in their tables; cancels a
// running thumbnail with its button; and reconnects after the server
// restarts. Screenshots go to tests/.artifacts/ (demo-running.png while a
// thumbnail runs, demo.png after the cancel).
//
// playwright-core works under Node, Deno and Bun alike here, so the test runs
// under all three. Chromium must be installed: without it the test fails and
// says how to install it (CI installs it).

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
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

if ((process.versions as Record<string, string | undefined>).bun) {
  const bunTest = "bun:test";
  const { setDefaultTimeout } = await import(bunTest);
  setDefaultTimeout(30_000);
}

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

test("GET / is an operator's page: it uploads, lists, cancels, and reconnects after a restart, in Chromium", async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: install it with ` +
        "`apt-get update && apt-get install -y chromium` (CI installs it)",
    );
  }
  const photo = await gradient(1200, 800);
  const dataDir = await tempDir();
  const profile = await mkdtemp(join(tmpdir(), "demo-chromium-"));
  let server: DemoServer | undefined;
  let context:
    | Awaited<ReturnType<typeof chromium.launchPersistentContext>>
    | undefined;
  try {
    server = await startDemo("deno", dataDir);
    const url = server.url;
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      viewport: { width: 1280, height: 900 },
      // The page's CSP forbids eval, which Playwright uses for string expressions.
      bypassCSP: true,
      timeout: 30_000,
    });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${url}/`);
    assert.equal(await page.title(), "Background tasks demo");
    // Browser-side code is given as strings: the test is type-checked without the DOM types.
    const live = `document.getElementById("link")?.textContent === "live"`;
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
    const text = (id: string) =>
      `document.getElementById(${JSON.stringify(id)}).textContent`;
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
