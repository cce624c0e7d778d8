// The demo's page in a real browser: headless Chromium (Debian's package)
// driven by playwright-core, against the demo server on Deno. It uploads a
// photo through the page's file input, waits for the three thumbnails to
// load, and saves a screenshot to tests/.artifacts/demo.png.
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
import {
  type DemoServer,
  gradient,
  removeDir,
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

test("GET / uploads a photo and shows its three thumbnails in Chromium", async () => {
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
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      viewport: { width: 1280, height: 760 },
      // The page's CSP forbids eval, which Playwright uses for string expressions.
      bypassCSP: true,
      timeout: 30_000,
    });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto(`${server.url}/`);
    assert.equal(await page.title(), "Background tasks demo");
    // Browser-side code is given as strings: the test is type-checked without the DOM types.
    await page.waitForFunction(
      `document.getElementById("link")?.textContent === "live"`,
    );

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
    const widths = await page.evaluate(
      `${thumbnails}.map((image) => image.naturalWidth)`,
    );
    assert.deepEqual(widths, [150, 300, 600]);
    assert.match(await page.textContent("#status") ?? "", /ready/);
    // The live list shows the thumbnail tasks settling.
    await page.waitForFunction(
      `document.querySelectorAll("#events li.settle").length >= 3`,
    );

    const artifacts = join(ROOT, "tests", ".artifacts");
    await mkdir(artifacts, { recursive: true });
    await page.screenshot({
      path: join(artifacts, "demo.png"),
      fullPage: true,
    });
  } finally {
    await context?.close();
    await server?.kill();
    await removeDir(dataDir);
    await removeDir(profile);
  }
});
