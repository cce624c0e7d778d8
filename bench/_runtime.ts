// What the benchmarks need from the runtime: its name and version, a forced
// garbage collection where the runtime allows one, and the heap in use.

type Gc = () => void;

interface RuntimeInfo {
  /** "deno 2.9.6", "bun 1.4.5" or "node 22.x". */
  name: string;
  /** Collects garbage if the runtime lets us; otherwise does nothing. */
  gc: Gc;
  /** Whether `gc` really collects. */
  canGc: boolean;
  heapUsed(): number;
  cores: number;
}

const g = globalThis as unknown as {
  Deno?: { version: { deno: string }; memoryUsage(): { heapUsed: number } };
  Bun?: { version: string; gc(force: boolean): void };
  process?: { version: string; memoryUsage(): { heapUsed: number } };
  gc?: Gc;
  navigator?: { hardwareConcurrency?: number };
};

function detect(): RuntimeInfo {
  const cores = g.navigator?.hardwareConcurrency ?? 1;
  if (g.Deno) {
    const deno = g.Deno;
    return {
      name: `deno ${deno.version.deno}`,
      gc: g.gc ?? (() => {}),
      canGc: typeof g.gc === "function",
      heapUsed: () => deno.memoryUsage().heapUsed,
      cores,
    };
  }
  if (g.Bun) {
    const bun = g.Bun;
    return {
      name: `bun ${bun.version}`,
      gc: () => bun.gc(true),
      canGc: true,
      heapUsed: () => g.process!.memoryUsage().heapUsed,
      cores,
    };
  }
  return {
    name: `node ${g.process!.version.slice(1)}`,
    gc: g.gc ?? (() => {}),
    canGc: typeof g.gc === "function",
    heapUsed: () => g.process!.memoryUsage().heapUsed,
    cores,
  };
}

export const runtime: RuntimeInfo = detect();

/** The median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Measures each of `names` once per round, in an order that rotates each
 * round, after one warm-up round that is left out: the samples per name,
 * round by round, so that ratios can be taken within a round.
 */
export async function interleaved(
  names: string[],
  rounds: number,
  measure: (name: string) => Promise<number>,
): Promise<Record<string, number[]>> {
  const samples: Record<string, number[]> = Object.fromEntries(
    names.map((name) => [name, []]),
  );
  for (let round = 0; round <= rounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const name of order) {
      const sample = await measure(name);
      if (round > 0) samples[name].push(sample);
    }
  }
  return samples;
}

/** Collects garbage a few times, letting finalisers and microtasks run. */
export async function settleHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    runtime.gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return runtime.heapUsed();
}
