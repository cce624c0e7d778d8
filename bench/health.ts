// Server health under CPU-bound background work: how long `GET /health`
// takes on the demo while 20 uploaded photos (2000x1500 JPEGs) get their
// thumbnails, with the image work in the demo's image processes and on the main thread
// (`IMAGES_ON_MAIN_THREAD=1`).
//
//   deno run -A bench/health.ts      bun bench/health.ts
//
// Each runtime benchmarks its own server: the demo is started with this
// process's executable, with a fresh DATA_DIR per variant and the default
// number of image processes. For each variant: warm up (20 checks, one
// upload made ready), 200 checks with nothing else to do, then the 20
// uploads sent at once while one check at a time goes out every 10 ms until
// every thumbnail is made (bounded to 3 minutes). The variants run in the
// order image processes, main thread, main thread, image processes (2 rounds
// each); each check has a 60 s deadline. Percentiles are over all the
// checks of a variant's rounds.
//
// Prints Markdown and writes bench/results/health-<runtime>.md and .json.

import { Image } from "imagescript";
import {
  load,
  percentile,
  Report,
  request,
  sleep,
  slug,
  startDemo,
  untilIdle,
} from "./_demo.ts";
import { median, runtime } from "./_runtime.ts";

const UPLOADS = 20;
const WIDTH = 2000;
const HEIGHT = 1500;
const IDLE_CHECKS = 200;
const GAP_MS = 10;
const ROUNDS = 2;
const LIMIT_MS = 180_000;
const TARGET_P99_MS = 10;
/** A check's deadline: on the main thread, Bun stalls a check for over 10 s. */
const CHECK_TIMEOUT_MS = 60_000;

/** A 2000x1500 JPEG that takes real work to decode. */
async function photo(): Promise<Uint8Array> {
  const image = new Image(WIDTH, HEIGHT);
  const bitmap = image.bitmap;
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const i = (y * WIDTH + x) * 4;
      bitmap[i] = (x * 255) / WIDTH;
      bitmap[i + 1] = (y * 255) / HEIGHT;
      bitmap[i + 2] = (x * y) & 255;
      bitmap[i + 3] = 255;
    }
  }
  return await image.encodeJPEG(90);
}

async function upload(url: string, bytes: Uint8Array): Promise<string> {
  const form = new FormData();
  form.append(
    "photo",
    new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }),
    "bench.jpg",
  );
  const response = await request(`${url}/photos`, {
    method: "POST",
    body: form,
  }, 120_000);
  const body = await response.json();
  if (response.status !== 201) {
    throw new Error(`POST /photos answered ${response.status}: ${body.error}`);
  }
  return body.photoId;
}

/** How long one `GET /health` takes, in ms. */
async function check(url: string): Promise<number> {
  const start = performance.now();
  const response = await request(`${url}/health`, {}, CHECK_TIMEOUT_MS);
  if (response.status !== 200) {
    throw new Error(`GET /health answered ${response.status}`);
  }
  return performance.now() - start;
}

interface Round {
  idle: number[];
  busy: number[];
  /** From the first upload sent to the last thumbnail made (ms). */
  workMs: number;
  /** Slowest `POST /photos` answer (ms). */
  slowestUploadMs: number;
}

async function round(
  bytes: Uint8Array,
  env: Record<string, string>,
): Promise<Round> {
  const demo = await startDemo(env);
  try {
    const { url } = demo;
    for (let i = 0; i < 20; i++) await check(url);
    await upload(url, bytes);
    await untilIdle(url, LIMIT_MS);

    const idle: number[] = [];
    for (let i = 0; i < IDLE_CHECKS; i++) idle.push(await check(url));

    const busy: number[] = [];
    let working = true;
    const checks = (async () => {
      while (working) {
        busy.push(await check(url));
        await sleep(GAP_MS);
      }
    })();
    const begun = performance.now();
    let slowestUploadMs = 0;
    try {
      await Promise.all(
        Array.from({ length: UPLOADS }, async () => {
          const start = performance.now();
          await upload(url, bytes);
          slowestUploadMs = Math.max(
            slowestUploadMs,
            performance.now() - start,
          );
        }),
      );
      await untilIdle(url, LIMIT_MS);
    } finally {
      working = false;
      await checks;
    }
    const workMs = performance.now() - begun;
    return { idle, busy, workMs, slowestUploadMs };
  } finally {
    await demo.stop();
  }
}

const variants = {
  workers: { name: "image processes", env: {} },
  main: { name: "main thread", env: { IMAGES_ON_MAIN_THREAD: "1" } },
};
type Variant = keyof typeof variants;

const bytes = await photo();
const loadBefore = load();
const rounds: Record<Variant, Round[]> = { workers: [], main: [] };
const order: Variant[] = [];
for (let i = 0; i < ROUNDS; i++) {
  order.push(
    ...(i % 2 === 0
      ? ["workers", "main"] as const
      : ["main", "workers"] as const),
  );
}
for (const variant of order) {
  const r = await round(bytes, variants[variant].env);
  rounds[variant].push(r);
  console.error(
    `${variant}: ${r.busy.length} checks, p99 ${
      percentile(r.busy, 0.99).toFixed(1)
    } ms, thumbnails took ${(r.workMs / 1000).toFixed(1)} s`,
  );
}
const loadAfter = load();

const cores = runtime.cores;
const poolSize = Math.max(1, Math.min(4, cores - 1));
const stats = (values: number[]) => ({
  count: values.length,
  p50Ms: percentile(values, 0.5),
  p99Ms: percentile(values, 0.99),
  maxMs: Math.max(...values),
});
const summary = Object.fromEntries(
  (Object.keys(variants) as Variant[]).map((variant) => {
    const rs = rounds[variant];
    return [variant, {
      idle: stats(rs.flatMap((r) => r.idle)),
      busy: stats(rs.flatMap((r) => r.busy)),
      busyP99PerRoundMs: rs.map((r) => percentile(r.busy, 0.99)),
      workMs: median(rs.map((r) => r.workMs)),
      slowestUploadMs: median(rs.map((r) => r.slowestUploadMs)),
    }];
  }),
) as Record<Variant, {
  idle: ReturnType<typeof stats>;
  busy: ReturnType<typeof stats>;
  busyP99PerRoundMs: number[];
  workMs: number;
  slowestUploadMs: number;
}>;
const met = summary.workers.busy.p99Ms < TARGET_P99_MS;

const ms = (x: number) => x.toFixed(1);
const out = new Report();
out.line(
  `## Server health under CPU-bound work — ${runtime.name}, ${cores} cores`,
);
out.line();
out.line(
  `\`GET /health\` on the demo (Hono on ${
    slug === "deno" ? "Deno.serve" : "Bun.serve"
  }) while ${UPLOADS} uploads of a ${WIDTH}x${HEIGHT} JPEG are stored and get their 3 thumbnails each: ` +
    `with the image work in the demo's image processes (${poolSize} process${
      poolSize === 1 ? "" : "es"
    }, the default on ${cores} cores) and on the main thread (\`IMAGES_ON_MAIN_THREAD=1\`). ` +
    `The uploads are sent at once; one check at a time goes out every ${GAP_MS} ms until the last thumbnail is made. ` +
    `${ROUNDS} rounds per variant, in the order ${
      order.map((variant) =>
        variant === "main" ? "main thread" : "image processes"
      ).join(", ")
    }; a fresh server per round; percentiles over all the checks of a variant. ` +
    `Idle: ${IDLE_CHECKS} checks in a row before the uploads. Load average ${
      loadBefore ?? "?"
    } before, ${loadAfter ?? "?"} after (other work shares the machine).`,
);
out.line();
out.line(
  "| image work | idle p50 (ms) | idle p99 (ms) | busy p50 (ms) | busy p99 (ms) | busy p99 per round (ms) | busy max (ms) | checks while busy | thumbnails took (s) | slowest upload answer (ms) |",
);
out.line(
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
);
for (const variant of Object.keys(variants) as Variant[]) {
  const s = summary[variant];
  out.line(
    `| ${variants[variant].name} | ${ms(s.idle.p50Ms)} | ${
      ms(s.idle.p99Ms)
    } | ${ms(s.busy.p50Ms)} | ${ms(s.busy.p99Ms)} | ${
      s.busyP99PerRoundMs.map(ms).join(", ")
    } | ${ms(s.busy.maxMs)} | ${s.busy.count} | ${
      (s.workMs / 1000).toFixed(1)
    } | ${s.slowestUploadMs.toFixed(0)} |`,
  );
}
out.line();
out.line(
  `Busy p99, main thread ÷ image processes: ${
    (summary.main.busy.p99Ms / summary.workers.busy.p99Ms).toFixed(1)
  }×. Target: \`GET /health\` p99 under ${TARGET_P99_MS} ms while the thumbnails are made in image processes: **${
    met ? "met" : "missed"
  }** (${ms(summary.workers.busy.p99Ms)} ms).`,
);
out.write("health", {
  benchmark: "health",
  runtime: runtime.name,
  cores,
  poolSize,
  load: { before: loadBefore ?? null, after: loadAfter ?? null },
  method: {
    uploads: UPLOADS,
    width: WIDTH,
    height: HEIGHT,
    idleChecks: IDLE_CHECKS,
    gapMs: GAP_MS,
    rounds: ROUNDS,
    order,
  },
  summary,
  target: { p99Ms: TARGET_P99_MS, met },
});
