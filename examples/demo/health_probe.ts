// Measures how long `GET /health` takes while the demo makes thumbnails:
// the check that image work in the worker pool never holds up a request.
//
//   deno run -A examples/demo/health_probe.ts [deno|bun ...]
//
// For each runtime it starts the demo (examples/demo/main.ts) on 127.0.0.1
// with a temporary DATA_DIR, warms it up with one upload, then sends 200
// sequential health checks with no load, and 200 more (one every 10 ms)
// right after 4 concurrent uploads of a 2000x1500 JPEG, while their 12
// thumbnails are being made. It prints p50, p99 and max of each, and how many
// of the checks were sent before the last thumbnail was done. Every request
// has a 10 s deadline; the server is killed at the end.

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Image } from "imagescript";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const REQUESTS = 200;
const UPLOADS = 4;
const GAP = 10;

type Runtime = "deno" | "bun";

async function timed(url: string, init?: RequestInit): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  try {
    const response = await fetch(url, { ...init, signal: controller.signal });
    await response.arrayBuffer();
    return response;
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

function summary(latencies: number[]): string {
  const sorted = [...latencies].sort((a, b) => a - b);
  const f = (ms: number) => `${ms.toFixed(2)} ms`;
  return `p50 ${f(percentile(sorted, 0.5))}, p99 ${
    f(percentile(sorted, 0.99))
  }, max ${f(sorted.at(-1)!)}`;
}

async function photo(): Promise<Uint8Array> {
  const width = 2000;
  const height = 1500;
  const image = new Image(width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      image.bitmap[i] = (x * 255) / width;
      image.bitmap[i + 1] = (y * 255) / height;
      image.bitmap[i + 2] = (x * y) & 255;
      image.bitmap[i + 3] = 255;
    }
  }
  return await image.encodeJPEG(90);
}

async function upload(url: string, bytes: Uint8Array): Promise<string> {
  const form = new FormData();
  form.append(
    "photo",
    new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }),
    "probe.jpg",
  );
  const response = await fetch(`${url}/photos`, { method: "POST", body: form });
  const body = await response.json();
  if (response.status !== 201) throw new Error(JSON.stringify(body));
  return body.photoId;
}

async function ready(url: string, ids: string[]): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const statuses = await Promise.all(ids.map(async (id) => {
      const response = await fetch(`${url}/photos/${id}`);
      return (await response.json()).status;
    }));
    if (statuses.includes("failed")) throw new Error("a photo failed");
    if (statuses.every((status) => status === "ready")) return;
    await sleep(20);
  }
  throw new Error("the photos were not ready within 12 s");
}

async function probe(runtime: Runtime, bytes: Uint8Array): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), "health-probe-"));
  const child = spawn(
    join(ROOT, "node_modules", ".bin", runtime),
    runtime === "deno"
      ? ["run", "-A", "examples/demo/main.ts"]
      : ["examples/demo/main.ts"],
    {
      cwd: ROOT,
      env: { ...process.env, PORT: "0", DATA_DIR: dataDir, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const closed = new Promise((resolve) => child.on("close", resolve));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let output = "";
      const timer = setTimeout(() => reject(new Error("no listen")), 20_000);
      child.stdout!.on("data", (chunk) => {
        output += chunk;
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
    });
    // Warm up: connections, the JIT, and the workers' imports.
    for (let i = 0; i < 20; i++) await timed(`${url}/health`);
    await ready(url, [await upload(url, bytes)]);

    const idle: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const start = performance.now();
      await timed(`${url}/health`);
      idle.push(performance.now() - start);
    }

    const ids = await Promise.all(
      Array.from({ length: UPLOADS }, () => upload(url, bytes)),
    );
    const begun = performance.now();
    let done = Infinity;
    const finished = ready(url, ids).then(() => done = performance.now());
    const busy: number[] = [];
    let during = 0;
    for (let i = 0; i < REQUESTS; i++) {
      const start = performance.now();
      await timed(`${url}/health`);
      busy.push(performance.now() - start);
      if (start < done) during++;
      await sleep(GAP);
    }
    await finished;
    console.log(`${runtime}:`);
    console.log(`  idle:               ${summary(idle)}`);
    console.log(
      `  ${UPLOADS} uploads in work: ${
        summary(busy)
      } (${during} of ${REQUESTS} sent while the ${
        UPLOADS * 3
      } thumbnails took ${(done - begun).toFixed(0)} ms)`,
    );
  } finally {
    child.kill("SIGTERM");
    const late = setTimeout(() => child.kill("SIGKILL"), 5000);
    await closed;
    clearTimeout(late);
    await rm(dataDir, { recursive: true, force: true });
  }
}

const runtimes = process.argv.slice(2).filter((arg): arg is Runtime =>
  arg === "deno" || arg === "bun"
);
const bytes = await photo();
for (
  const runtime of runtimes.length > 0 ? runtimes : ["deno", "bun"] as const
) {
  await probe(runtime, bytes);
}
