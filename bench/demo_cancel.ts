// What stops a decode that must stop: a WorkerPool run aborted (the pool
// terminates its worker) against an image process killed with SIGKILL (the
// demo's ImageProcesses). The decode is imagescript's, of a crafted 48 MP
// progressive JPEG in 100 scans (several seconds of WebAssembly); it is
// aborted 500 ms after it starts. Measured: the CPU time the bench's own
// process (its worker threads included) and the image process use in the
// 1 s and 2 s after the abort, and when it falls under 5 % of a core.
//
//   deno run -A bench/demo_cancel.ts      bun bench/demo_cancel.ts
//
// Writes bench/results/demo-cancel-<runtime>.md and .json.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import process from "node:process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkerPool } from "../src/worker/mod.ts";
import { ImageProcesses } from "../examples/demo/image_processes.ts";
import { progressiveJpeg } from "../tests/demo/fixtures/crafted.ts";
import { cpuTime, load, Report, sleep } from "./_demo.ts";
import { runtime } from "./_runtime.ts";

const ROUNDS = 3;
const ABORT_AFTER_MS = 500;
const WATCH_MS = 3000;
const STEP_MS = 100;

const bytes = progressiveJpeg({ width: 8000, height: 6000, scans: 100 });
const self = process.pid;

interface Sample {
  /** CPU ms used in the first second after the abort. */
  first: number;
  /** In the second second. */
  second: number;
  /** ms after the abort when a 100 ms step first used under 5 ms of CPU. */
  stoppedAfter: number;
}

/** CPU of `pids` (summed) over WATCH_MS after the abort, sampled every STEP_MS. */
async function watch(pids: () => number[]): Promise<Sample> {
  // A process that is gone keeps the CPU time it was last seen with.
  const seen = new Map<number, number>();
  const cpu = () =>
    pids().reduce((sum, pid) => {
      const now = cpuTime(pid);
      if (now !== undefined) seen.set(pid, now);
      return sum + (seen.get(pid) ?? 0);
    }, 0);
  const start = cpu();
  let last = start;
  let stoppedAfter = -1;
  let atOne = 0;
  for (let t = STEP_MS; t <= WATCH_MS; t += STEP_MS) {
    await sleep(STEP_MS);
    const now = cpu();
    if (stoppedAfter < 0 && now - last < 5) stoppedAfter = t - STEP_MS;
    if (t === 1000) atOne = now;
    last = now;
    if (t === 2000) {
      return { first: atOne - start, second: now - atOne, stoppedAfter };
    }
  }
  return { first: atOne - start, second: last - atOne, stoppedAfter };
}

async function workerPool(): Promise<Sample> {
  const pool = new WorkerPool<Uint8Array, number>(
    new URL("./demo_decode_worker.ts", import.meta.url),
    { size: 1 },
  );
  // A first run loads imagescript in the worker.
  await pool.run(progressiveJpeg({ width: 64, height: 64, scans: 2 }));
  const controller = new AbortController();
  const run = pool.run(bytes.slice(), { signal: controller.signal }).catch(
    () => {},
  );
  await sleep(ABORT_AFTER_MS);
  controller.abort();
  await run;
  const sample = await watch(() => [self]);
  await pool.close();
  // Let the terminated decode finish before the next round.
  while (true) {
    const before = cpuTime(self) ?? 0;
    await sleep(500);
    if ((cpuTime(self) ?? 0) - before < 25) break;
  }
  return sample;
}

async function processes(dir: string): Promise<Sample> {
  const input = join(dir, "slow.jpg");
  await writeFile(input, bytes);
  const pool = new ImageProcesses({ size: 1, dataDir: dir });
  const small = join(dir, "small.jpg");
  await writeFile(small, progressiveJpeg({ width: 64, height: 64, scans: 2 }));
  await pool.run({
    input: small,
    output: join(dir, "t.jpg"),
    format: "jpeg",
    width: 32,
    last: true,
  });
  const pid = pool.processes[0].pid;
  const controller = new AbortController();
  const run = pool.run({
    input,
    output: join(dir, "t2.jpg"),
    format: "jpeg",
    width: 600,
    last: true,
  }, { signal: controller.signal }).catch(() => {});
  await sleep(ABORT_AFTER_MS);
  controller.abort();
  await run;
  const sample = await watch(() => [self, pid]);
  await pool.close();
  return sample;
}

const loadBefore = load();
const dir = await mkdtemp(join(tmpdir(), "bench-cancel-"));
const results: Record<string, Sample[]> = {
  "WorkerPool (terminate)": [],
  "image process (SIGKILL)": [],
};
try {
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, the order alternating.
    const order = round % 2
      ? ["image process (SIGKILL)", "WorkerPool (terminate)"]
      : ["WorkerPool (terminate)", "image process (SIGKILL)"];
    for (const name of order) {
      const sample = name.startsWith("Worker")
        ? await workerPool()
        : await processes(dir);
      results[name].push(sample);
      console.error(`${name}: ${JSON.stringify(sample)}`);
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
const loadAfter = load();
const out = new Report();
out.line(`## Stopping a decode — ${runtime.name}, ${runtime.cores} cores`);
out.line();
out.line(
  `imagescript decoding a crafted 8000x6000 progressive JPEG in 100 scans (${
    bytes.length.toLocaleString("en")
  } bytes, several seconds of WebAssembly), aborted ${ABORT_AFTER_MS} ms after it started; CPU time (ms, from /proc, all threads) of the bench process and of the image process in the two seconds after the abort. ${ROUNDS} rounds each, interleaved. Load average ${
    loadBefore ?? "?"
  } before, ${loadAfter ?? "?"} after.`,
);
out.line();
out.line(
  "| how it is stopped | CPU ms in 0–1 s after, per round | CPU ms in 1–2 s after | under 5 % of a core after (ms) |",
);
out.line("| --- | ---: | ---: | ---: |");
for (const [name, samples] of Object.entries(results)) {
  out.line(
    `| ${name} | ${samples.map((s) => s.first.toFixed(0)).join(", ")} | ${
      samples.map((s) => s.second.toFixed(0)).join(", ")
    } | ${
      samples.map((s) => s.stoppedAfter < 0 ? "> 3000" : String(s.stoppedAfter))
        .join(", ")
    } |`,
  );
}
out.write("demo-cancel", {
  benchmark: "demo-cancel",
  runtime: runtime.name,
  load: { before: loadBefore ?? null, after: loadAfter ?? null },
  results,
});
