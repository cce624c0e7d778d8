// What the server benchmarks share: start the demo (examples/demo/main.ts)
// with this process's own runtime executable on 127.0.0.1, stop it, read its
// CPU time, the machine's load, percentiles, and write results files.

import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  type DemoServer,
  request as fetchWithin,
  ROOT,
  startDemo as launch,
} from "../tests/demo/fixtures/server.ts";
import { Image } from "imagescript";
import { runtime } from "./_runtime.ts";

/** The repository's root folder. */
export { ROOT };

/** "deno" or "bun": the runtime running this benchmark, and the demo. */
export const slug: string = runtime.name.split(" ")[0];

/** A running demo server. */
export interface Demo {
  /** `http://127.0.0.1:PORT`, without a trailing slash. */
  readonly url: string;
  readonly pid: number;
  readonly dataDir: string;
  /** What it printed so far, stdout and stderr. */
  output(): string;
  /** Whether it exited on its own. */
  exited(): boolean;
  /** SIGTERM (SIGKILL after 10 s), then removes its DATA_DIR. Never throws. */
  stop(): Promise<void>;
}

/**
 * Starts the demo with this runtime's executable (`Deno.execPath()` under
 * Deno, `process.execPath` under Bun), on a free port with a fresh DATA_DIR,
 * through the tests' launcher; resolves once it answers `GET /health`.
 *
 * @param env Extra environment: the demo's knobs.
 * @param flags Extra runtime flags (Deno: before the script, e.g. `--cpu-prof`).
 */
export async function startDemo(
  env: Record<string, string> = {},
  flags: string[] = [],
): Promise<Demo> {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  if (slug !== "deno" && slug !== "bun") {
    throw new Error(
      `The demo runs on Deno or Bun; run this benchmark with one of them, not ${runtime.name}`,
    );
  }
  const dataDir = await mkdtemp(join(tmpdir(), "bench-demo-"));
  let server: DemoServer;
  try {
    server = await launch(slug, dataDir, env, {
      executable: deno ? deno.execPath() : process.execPath,
      flags,
    });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  let stopped: Promise<void> | undefined;
  const stop = async () => {
    if (!server.exited()) {
      try {
        await server.stop("SIGTERM");
      } catch {
        // Not gone 10 s after SIGTERM: the launcher killed it.
      }
    }
    await server.kill();
    await rm(dataDir, { recursive: true, force: true });
  };
  return {
    url: server.url,
    pid: server.pid,
    dataDir,
    output: server.output,
    exited: server.exited,
    stop: () => stopped ??= stop(),
  };
}

/** `fetch` with a deadline (30 s unless given), reading the whole body. */
export function request(
  url: string,
  init: RequestInit = {},
  timeout = 30_000,
): Promise<Response> {
  return fetchWithin(url, init, timeout);
}

/** Waits until the demo runs no task and has none queued; returns how long it took (ms). */
export async function untilIdle(url: string, limit = 60_000): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < limit) {
    const tasks = await (await request(`${url}/tasks`)).json();
    if (tasks.activeCount + tasks.pendingCount === 0) {
      return performance.now() - start;
    }
    await sleep(100);
  }
  throw new Error(`the demo still had tasks after ${limit} ms`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * CPU time (user + system, all threads) a process used so far, in ms; from
 * /proc on Linux, `undefined` elsewhere.
 */
export function cpuTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15, in clock ticks (100 per second).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** The 1-minute load average, or `undefined` where the OS has none. */
export function load(): number | undefined {
  const [one] = loadavg();
  return one > 0 ? Math.round(one * 100) / 100 : undefined;
}

/** The nearest-rank percentile `p` (0 to 1) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
}

/** `median (min–max)` of a list, with `digits` decimals. */
export function spread(values: number[], digits = 0): string {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2
    ? sorted[mid]
    : (sorted[mid - 1] + sorted[mid]) / 2;
  const f = (x: number) =>
    x.toLocaleString("en", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  return `${f(median)} (${f(sorted[0])}–${f(sorted.at(-1)!)})`;
}

/** Collects lines of Markdown, printing each. */
export class Report {
  readonly lines: string[] = [];

  line(text = ""): void {
    console.log(text);
    this.lines.push(text);
  }

  /**
   * Writes `bench/results/<name>-<runtime>.md` and, next to it, the same
   * results as `.json`.
   */
  write(name: string, data: unknown): void {
    const base = new URL(`./results/${name}-${slug}`, import.meta.url);
    writeFileSync(new URL(`${base.href}.md`), this.lines.join("\n") + "\n");
    // Three decimals are plenty for milliseconds and ratios.
    const round = (_: string, value: unknown) =>
      typeof value === "number" && !Number.isInteger(value)
        ? Math.round(value * 1000) / 1000
        : value;
    writeFileSync(
      new URL(`${base.href}.json`),
      JSON.stringify(data, round, 2) + "\n",
    );
    console.log(
      `\nwrote bench/results/${name}-${slug}.md and bench/results/${name}-${slug}.json`,
    );
  }
}

/** A photo-like JPEG: a gradient with noise, so it compresses like a photo. */
export async function photo(
  width: number,
  height: number,
  noise: number,
  quality: number,
): Promise<Uint8Array> {
  const image = new Image(width, height);
  const bitmap = image.bitmap;
  let seed = 1;
  const random = () =>
    (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      bitmap[i] = (x * 255) / width + (random() - 0.5) * noise;
      bitmap[i + 1] = (y * 255) / height + (random() - 0.5) * noise;
      bitmap[i + 2] = 128 + (random() - 0.5) * noise;
      bitmap[i + 3] = 255;
    }
  }
  return await image.encodeJPEG(quality as 85);
}
