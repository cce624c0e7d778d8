// Server overhead: the demo's `POST /orders` with its background task (the
// confirmation email), with an empty background task in its place
// (`SEND_EMAILS=noop`: `c.var.tasks.run()` with the same task name and an
// `async () => {}`), and without any task (`SEND_EMAILS=0`, on two servers),
// under load from wrk on 127.0.0.1. The empty task shows what
// `@background/tasks` itself costs a request; the email adds its own work (an
// fsync'd `.eml` file and its "sent" mark, group-committed to SQLite); the
// second server without a task (A/A) shows how far two identical servers
// differ in the same run.
//
//   deno run -A bench/server.ts      bun bench/server.ts
//
// Each runtime benchmarks its own server: the demo is started with this
// process's executable. The four servers run side by side, each warmed up
// for 1 s; then 8 rounds of 3 s per variant, interleaved (the order rotates
// each round), with `wrk -t1 -c32`. After each round the bench waits until the
// server has no task left, so one round's emails never run in the next one's
// time. It also reads the server's CPU time (all threads, from /proc) over the
// round and the wait. Then one more 3 s round per variant, under the runtime's
// `--cpu-prof` (all but the A/A server), says where the main thread's time
// goes. About two minutes.
//
// Latencies: a round's latencies are used only if wrk's own figures keep to
// Little's law (requests × mean latency ÷ time, the requests in flight on
// average, at most the connections): on the machine this was written on,
// some wrk runs record long latencies that no request had (bench/README.md).
// The p99 of a variant is also given over all its rounds' requests together
// (pooled from the percentiles wrk prints for each round), which one stall in
// one round moves much less than it moves that round's own p99.
//
// BENCH_ROUNDS=N and BENCH_CONNECTIONS=N change the rounds and wrk's
// connections (`-c`).
//
// Needs wrk (`apt-get install -y wrk`); without it, says so and exits 0.
// Prints Markdown and writes bench/results/server-<runtime>.md and .json.

import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  cpuTime,
  type Demo,
  load,
  Report,
  ROOT,
  slug,
  spread,
  startDemo,
  untilIdle,
} from "./_demo.ts";
import { median, runtime } from "./_runtime.ts";
import { CONFIDENCE, type Interval, medianInterval } from "./_stats.ts";

/** An integer setting from the environment. */
function setting(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(
      `${name} must be an integer from 1 to ${max}, received ${
        JSON.stringify(raw)
      }`,
    );
  }
  return value;
}

const ROUNDS = setting("BENCH_ROUNDS", 8, 100);
const SECONDS = 3;
const WARM_UP_SECONDS = 1;
const PROFILE_SECONDS = 3;
const CONNECTIONS = setting("BENCH_CONNECTIONS", 32, 1000);
const THREADS = 1;
const BODY = JSON.stringify({
  email: "ada@example.com",
  items: [{ sku: "MUG-1", quantity: 2 }],
});

/**
 * How a ratio compares with the target: "met" or "missed" when the whole
 * confidence interval of its median is on one side of the target, else "not
 * decided" (this run cannot tell).
 */
type Verdict = "met" | "missed" | "not decided";

/** The target of issue 6: a task within 5 % of the handler without it. */
const TARGET = { requestsPerSecond: 0.95, p99: 1.05 };

const VARIANTS = {
  email: { name: "with the email task", env: { SEND_EMAILS: "1" } },
  empty: {
    name: "with an empty task (SEND_EMAILS=noop)",
    env: { SEND_EMAILS: "noop" },
  },
  without: {
    name: "without a task (SEND_EMAILS=0)",
    env: { SEND_EMAILS: "0" },
  },
  // The same server as `without`, started a second time: how far two
  // identical servers differ in this run is the noise any ratio is read against.
  again: {
    name: "without a task, a second server (A/A)",
    env: { SEND_EMAILS: "0" },
  },
} as const;
type Variant = keyof typeof VARIANTS;
const ORDER: Variant[] = ["email", "empty", "without", "again"];
/** The variants judged by the target. */
const TASKS = ["email", "empty"] as const;
/** The variants compared with `without`: the tasks, and the A/A server. */
const COMPARED = [...TASKS, "again"] as const;
type Compared = (typeof COMPARED)[number];
/** The variants profiled (`again` would show what `without` shows). */
const PROFILED: Variant[] = ["email", "empty", "without"];

/**
 * The percentiles wrk reports for each round, so that the rounds of a
 * variant can be pooled: 1 to 95 in steps of 1, then 95.01 to 100 in steps of
 * 0.01 (wrk's Lua API gives percentiles, not its histogram).
 */
const GRID = [
  ...Array.from({ length: 95 }, (_, i) => i + 1),
  ...Array.from({ length: 500 }, (_, i) => (9501 + i) / 100),
];

/** wrk's own summary, printed by the Lua script's `done()`. */
interface WrkResult {
  requests: number;
  durationUs: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
  errors: number;
  /** The latency at each percentile of `GRID` (µs). */
  quantilesUs: number[];
}

const LUA = `
wrk.method = "POST"
wrk.body = '${BODY}'
wrk.headers["Content-Type"] = "application/json"
local grid = {${GRID.join(",")}}
done = function(summary, latency, requests)
  local e = summary.errors
  local q = {}
  for i, p in ipairs(grid) do
    q[i] = string.format("%d", latency:percentile(p))
  end
  io.write(string.format(
    'RESULT {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,"meanUs":%d,"errors":%d,"quantilesUs":[%s]}\\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, latency.mean,
    e.connect + e.read + e.write + e.status + e.timeout,
    table.concat(q, ",")))
end
`;

/** Runs wrk for `seconds` against `url`; rejects if it fails or is missing. */
function wrk(script: string, url: string, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", [
      `-t${THREADS}`,
      `-c${CONNECTIONS}`,
      `-d${seconds}s`,
      "--timeout",
      "10s",
      "-s",
      script,
      url,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => output += chunk);
    child.stderr.on("data", (chunk) => output += chunk);
    child.on("error", reject);
    child.on("close", (code) => {
      const match = /^RESULT (.*)$/m.exec(output);
      if (code !== 0 || !match) {
        return reject(new Error(`wrk exited with ${code}:\n${output}`));
      }
      resolve(JSON.parse(match[1]));
    });
  });
}

/** Whether wrk can be started. */
function hasWrk(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn("wrk", ["--version"], { stdio: "ignore" });
    child.on("error", () => resolve(false));
    child.on("close", () => resolve(true));
  });
}

interface Round {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  /** Tasks still running or queued when wrk stopped. */
  tasksLeft: number;
  /** How long they took to finish after wrk stopped (ms). */
  drainMs: number;
  /** Server CPU time (all threads) per request, over the round and the drain (µs). */
  cpuUsPerRequest: number | null;
  /**
   * Requests × wrk's mean latency ÷ the round's length: how many requests
   * wrk's latencies say were in flight on average. A closed loop never has
   * more than its connections in flight (Little's law); more means wrk
   * recorded latencies longer than the requests took.
   */
  inFlight: number;
  /** Whether `inFlight` is within the connections (+5 %): else the round's latencies are left out. */
  latencyValid: boolean;
  /** wrk's latency at each percentile of `GRID` (µs); not written to the JSON. */
  quantilesUs: number[];
}

/** How far over the connections `inFlight` may be (rounding, wrk's start). */
const IN_FLIGHT_SLACK = 1.05;

/**
 * The percentile `p` (0 to 100) of the latencies of every request of the
 * given rounds together, in ms: the smallest latency at which the requests
 * at or under it, summed over the rounds, reach `p` %. Each round counts by
 * its number of requests; within a round, the share under a latency is read
 * from its percentiles on `GRID` (to 0.01 % above p95).
 */
function pooledPercentile(rounds: Round[], p: number): number {
  const total = rounds.reduce((sum, r) => sum + r.requests, 0);
  const candidates = [...new Set(rounds.flatMap((r) => r.quantilesUs))]
    .sort((a, b) => a - b);
  for (const us of candidates) {
    let under = 0;
    for (const r of rounds) {
      let share = 0;
      for (const [i, q] of r.quantilesUs.entries()) {
        if (q > us) break;
        share = GRID[i];
      }
      under += r.requests * share / 100;
    }
    if (under >= total * p / 100 - 1e-9) return us / 1000;
  }
  return candidates.at(-1)! / 1000;
}

/** One wrk round on a server, then waits for its tasks. */
async function round(
  demo: Demo,
  script: string,
  seconds: number,
): Promise<Round> {
  const before = cpuTime(demo.pid);
  const result = await wrk(script, `${demo.url}/orders`, seconds);
  if (demo.exited()) {
    throw new Error(`the demo died during the round:\n${demo.output()}`);
  }
  const tasks = await (await fetch(`${demo.url}/tasks`)).json();
  const drainMs = await untilIdle(demo.url);
  const after = cpuTime(demo.pid);
  const inFlight = result.requests * result.meanUs / result.durationUs;
  return {
    requests: result.requests,
    requestsPerSecond: result.requests / (result.durationUs / 1e6),
    p50Ms: result.p50Us / 1000,
    p99Ms: result.p99Us / 1000,
    maxMs: result.maxUs / 1000,
    errors: result.errors,
    tasksLeft: tasks.activeCount + tasks.pendingCount,
    drainMs,
    cpuUsPerRequest: before === undefined || after === undefined
      ? null
      : ((after - before) * 1000) / result.requests,
    inFlight,
    latencyValid: inFlight <= CONNECTIONS * IN_FLIGHT_SLACK,
    quantilesUs: result.quantilesUs,
  };
}

// ---------------------------------------------------------------------------
// Where the main thread's time goes: a V8/JSC `.cpuprofile`, each sample put
// in one group by the project frames on its stack.

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

const GROUPS = {
  handler: "the handler: validation, SQLite INSERT and SELECT",
  sqlite: "the email task: SQLite UPDATE (`markSent`, group-committed)",
  mail: "the task's body: the `.eml` file and the rest",
  manager: "@background/tasks (task manager, Hono middleware)",
  http: "HTTP server, Hono, JSON, GC and the rest",
} as const;
type Group = keyof typeof GROUPS;

// `flush` is OrderStore's group commit of the "sent" marks, run by a timer.
const EMAIL_UPDATES = new Set([
  "markSent",
  "flush",
  "recordFailure",
  "markFailed",
]);
const EMAIL_FUNCTIONS = new Set([
  "confirmation",
  "send",
  "toEml",
  "writeFileAtomic",
]);

/** Busy main-thread time per group, in µs per request. */
function attribute(profile: Profile, requests: number): Record<Group, number> {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const root = `file://${ROOT}`;
  const groupOf = new Map<number, Group | undefined>();
  const classify = (id: number): Group | undefined => {
    const frames: CallFrame[] = [];
    for (let at: number | undefined = id; at !== undefined;) {
      frames.push(nodes.get(at)!.callFrame);
      at = parents.get(at);
    }
    const leaf = frames[0].functionName;
    if (leaf === "(idle)" || leaf === "(program)" || leaf === "(root)") {
      return undefined;
    }
    const own = frames.filter((frame) =>
      frame.url.startsWith(root) && !frame.url.includes("/node_modules/")
    );
    if (own.length === 0) return "http";
    // The middleware's frame stays on the stack while `next()` runs the rest
    // of the app: count a src/ frame only when Hono's dispatch is not above it.
    const inner = frames.slice(0, frames.indexOf(own[0]));
    if (
      own[0].url.startsWith(`${root}src/`) &&
      !inner.some((frame) => frame.url.endsWith("/compose.js"))
    ) {
      return "manager";
    }
    if (own.some((frame) => EMAIL_UPDATES.has(frame.functionName))) {
      return "sqlite";
    }
    const email = own.some((frame) =>
      EMAIL_FUNCTIONS.has(frame.functionName) ||
      frame.url.endsWith("/mail.ts")
    ) || own.some((frame) => frame.url.endsWith("/_scheduler.ts"));
    if (email) return "mail";
    if (own[0].url.endsWith("/orders.ts") || own[0].url.endsWith("/http.ts")) {
      return "handler";
    }
    return "http";
  };
  const counts: Record<Group, number> = {
    handler: 0,
    sqlite: 0,
    mail: 0,
    manager: 0,
    http: 0,
  };
  for (const id of profile.samples) {
    if (!groupOf.has(id)) groupOf.set(id, classify(id));
    const group = groupOf.get(id);
    if (group !== undefined) counts[group]++;
  }
  const interval = (profile.endTime - profile.startTime) /
    profile.samples.length;
  return Object.fromEntries(
    Object.entries(counts).map((
      [group, n],
    ) => [group, n * interval / requests]),
  ) as Record<Group, number>;
}

interface Attribution {
  requests: number;
  /** Main-thread time per request, by part (µs). */
  perRequestUs: Record<Group, number>;
}

/** One round under `--cpu-prof`; `undefined` if no profile was written. */
async function profileRound(
  script: string,
  env: Record<string, string>,
): Promise<Attribution | undefined> {
  const dir = await mkdtemp(join(tmpdir(), "bench-profile-"));
  try {
    const demo = await startDemo(env, [
      "--cpu-prof",
      `--cpu-prof-dir=${dir}`,
    ]);
    let requests: number;
    try {
      const result = await wrk(script, `${demo.url}/orders`, PROFILE_SECONDS);
      requests = result.requests;
      await untilIdle(demo.url);
    } finally {
      await demo.stop();
    }
    const file = (await readdir(dir)).find((name) =>
      name.endsWith(".cpuprofile")
    );
    if (file === undefined) return undefined;
    const profile = JSON.parse(await readFile(join(dir, file), "utf8"));
    return { requests, perRequestUs: attribute(profile, requests) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------

/** A ratio to `without`: the median of the per-round ratios, and their range. */
interface Ratio {
  median: number;
  min: number;
  max: number;
  /** A confidence interval of the median; `null` with too few rounds. */
  interval: Interval | null;
  /** The per-round ratios; a round left out (no value) is `null`. */
  perRound: (number | null)[];
}

/**
 * The ratio of `variant` to `without`, round by round; rounds where either
 * has no value (`pick` gives `null`) are left out. `null` if none is left.
 */
function ratio(
  rounds: Record<Variant, Round[]>,
  variant: Variant,
  pick: (r: Round) => number | null,
): Ratio | null {
  const perRound = rounds[variant].map((r, i) => {
    const on = pick(r);
    const off = pick(rounds.without[i]);
    return on === null || off === null ? null : on / off;
  });
  const per = perRound.filter((x) => x !== null);
  if (per.length === 0) return null;
  return {
    median: median(per),
    min: Math.min(...per),
    max: Math.max(...per),
    interval: medianInterval(per),
    perRound,
  };
}

/** `0.95 (0.91–0.99)`; `—` when there is none. */
function showRatio(r: Ratio | null): string {
  return r === null
    ? "—"
    : `${r.median.toFixed(2)} (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
}

/** `median (min–max)` of the values that are not `null`; `—` if none. */
function spreadOf(values: (number | null)[], digits = 0): string {
  const present = values.filter((x) => x !== null);
  return present.length === 0 ? "—" : spread(present, digits);
}

/** A round's latency in ms, or `null` when the round's latencies are left out. */
const latency = (pick: (r: Round) => number) => (r: Round) =>
  r.latencyValid ? pick(r) : null;

if (!(await hasWrk())) {
  console.log(
    "bench/server.ts needs wrk, which is not installed: skipped.\n" +
      "Install it with `apt-get install -y wrk` (Debian, Ubuntu) or `brew install wrk` (macOS).",
  );
} else {
  const dir = await mkdtemp(join(tmpdir(), "bench-wrk-"));
  const script = join(dir, "post_order.lua");
  await writeFile(script, LUA);
  const loadBefore = load();
  const demos: Partial<Record<Variant, Demo>> = {};
  const rounds: Record<Variant, Round[]> = {
    email: [],
    empty: [],
    without: [],
    again: [],
  };
  const profiles: Partial<Record<Variant, Attribution>> = {};
  try {
    for (const variant of ORDER) {
      demos[variant] = await startDemo(VARIANTS[variant].env);
      await round(demos[variant]!, script, WARM_UP_SECONDS);
    }
    for (let i = 0; i < ROUNDS; i++) {
      const order = ORDER.map((_, j) => ORDER[(i + j) % ORDER.length]);
      for (const variant of order) {
        const r = await round(demos[variant]!, script, SECONDS);
        rounds[variant].push(r);
        console.error(
          `round ${i + 1} ${variant}: ${
            r.requestsPerSecond.toFixed(0)
          } req/s, p99 ${r.p99Ms.toFixed(1)} ms, ${
            r.inFlight.toFixed(1)
          } in flight${r.latencyValid ? "" : " (latencies left out)"}`,
        );
      }
    }
    for (const demo of Object.values(demos)) await demo.stop();
    for (const variant of PROFILED) {
      profiles[variant] = await profileRound(script, VARIANTS[variant].env);
    }
  } finally {
    for (const demo of Object.values(demos)) await demo.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const loadAfter = load();

  const timed = Object.fromEntries(
    ORDER.map((variant) => [
      variant,
      rounds[variant].filter((r) => r.latencyValid),
    ]),
  ) as Record<Variant, Round[]>;
  const pooledP99 = Object.fromEntries(ORDER.map((variant) => [
    variant,
    timed[variant].length === 0 ? null : pooledPercentile(timed[variant], 99),
  ])) as Record<Variant, number | null>;
  const ratios = Object.fromEntries(COMPARED.map((variant) => {
    const pooled = pooledP99[variant];
    const base = pooledP99.without;
    return [variant, {
      requestsPerSecond: ratio(rounds, variant, (r) => r.requestsPerSecond)!,
      p50: ratio(rounds, variant, latency((r) => r.p50Ms)),
      p99: ratio(rounds, variant, latency((r) => r.p99Ms)),
      p99Pooled: pooled === null || base === null ? null : pooled / base,
      cpuPerRequest: ratio(rounds, variant, (r) => r.cpuUsPerRequest),
    }];
  })) as Record<
    Compared,
    {
      requestsPerSecond: Ratio;
      p50: Ratio | null;
      p99: Ratio | null;
      p99Pooled: number | null;
      cpuPerRequest: Ratio | null;
    }
  >;
  // Each target is judged by the confidence interval of the median of the
  // per-round ratios (p99: over the rounds where both variants' latencies were
  // kept): met when all of it is on the right side of the target, missed when
  // all of it is on the wrong side.
  const judge = (r: Ratio | null, meets: (x: number) => boolean): Verdict =>
    r?.interval == null
      ? "not decided"
      : meets(r.interval.low) && meets(r.interval.high)
      ? "met"
      : !meets(r.interval.low) && !meets(r.interval.high)
      ? "missed"
      : "not decided";
  const target = Object.fromEntries(TASKS.map((variant) => {
    const requestsPerSecond = judge(
      ratios[variant].requestsPerSecond,
      (x) => x >= TARGET.requestsPerSecond,
    );
    const p99 = judge(ratios[variant].p99, (x) => x <= TARGET.p99);
    const both = [requestsPerSecond, p99];
    const met: Verdict = both.includes("missed")
      ? "missed"
      : both.every((v) => v === "met")
      ? "met"
      : "not decided";
    return [variant, { requestsPerSecond, p99, met }];
  })) as Record<
    (typeof TASKS)[number],
    { requestsPerSecond: Verdict; p99: Verdict; met: Verdict }
  >;

  const out = new Report();
  out.line(`## Server overhead — ${runtime.name}, ${runtime.cores} cores`);
  out.line();
  out.line(
    `\`POST /orders\` on the demo (Hono on ${
      slug === "deno" ? "Deno.serve" : "Bun.serve"
    }) with its confirmation-email task; with an empty task in its place (\`SEND_EMAILS=noop\`: \`c.var.tasks.run()\` with the same name and \`async () => {}\`: the manager's own cost); and without a task (\`SEND_EMAILS=0\`: the same handler minus \`sendConfirmation\`), on two servers: the second (A/A) measures the noise. ` +
      `wrk -t${THREADS} -c${CONNECTIONS} on 127.0.0.1, ${ROUNDS} rounds of ${SECONDS} s per variant, interleaved (the order rotates each round), after ${WARM_UP_SECONDS} s of warm-up each; ` +
      `median (min–max) of the rounds; ratios are medians (min–max) of per-round ratios. ` +
      `Latencies only from the rounds whose wrk latencies keep to Little's law (requests × mean latency ÷ time at most the ${CONNECTIONS} connections, +5 %; bench/README.md says why); the pooled p99 is over every request of those rounds together, and its ratio the ratio of the pooled p99s. ` +
      `Load average ${loadBefore ?? "?"} before, ${
        loadAfter ?? "?"
      } after (other work shares the machine).`,
  );
  out.line();
  out.line(
    "| variant | requests/s | p50 (ms) | p99 (ms) | pooled p99 (ms) | rounds with latencies | server CPU per request (µs) | tasks left when wrk stopped | errors |",
  );
  out.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const variant of ORDER) {
    const rs = rounds[variant];
    const pooled = pooledP99[variant];
    out.line(
      `| ${VARIANTS[variant].name} | ${
        spread(rs.map((r) => r.requestsPerSecond))
      } | ${spreadOf(rs.map(latency((r) => r.p50Ms)), 1)} | ${
        spreadOf(rs.map(latency((r) => r.p99Ms)), 1)
      } | ${pooled?.toFixed(1) ?? "—"} | ${
        timed[variant].length
      } of ${rs.length} | ${spreadOf(rs.map((r) => r.cpuUsPerRequest))} | ${
        spread(rs.map((r) => r.tasksLeft))
      } | ${rs.reduce((sum, r) => sum + r.errors, 0)} |`,
    );
  }
  for (const variant of COMPARED) {
    const r = ratios[variant];
    const name = variant === "again"
      ? "second server ÷ without (A/A)"
      : `${variant} task ÷ without`;
    out.line(
      `| ${name} | ${showRatio(r.requestsPerSecond)} | ${showRatio(r.p50)} | ${
        showRatio(r.p99)
      } | ${r.p99Pooled?.toFixed(2) ?? "—"} | | ${
        showRatio(r.cpuPerRequest)
      } | | |`,
    );
  }
  out.line();
  const interval = (r: Ratio | null) => {
    if (r === null) return "no round";
    const rounds = r.perRound.filter((x) => x !== null).length;
    return r.interval === null
      ? `too few rounds (${rounds})`
      : `${Math.round(r.interval.confidence * 100)} % interval ${
        r.interval.low.toFixed(2)
      }–${r.interval.high.toFixed(2)} over ${rounds} rounds`;
  };
  const verdict = (variant: Compared) => {
    const r = ratios[variant];
    const t = variant === "again" ? undefined : target[variant];
    const judged = (v: Verdict | undefined) => v === undefined ? "" : `: ${v}`;
    return `requests/s ×${r.requestsPerSecond.median.toFixed(2)} (${
      interval(r.requestsPerSecond)
    })${judged(t?.requestsPerSecond)}; p99 ×${
      r.p99?.median.toFixed(2) ?? "—"
    } (${interval(r.p99)})${judged(t?.p99)}`;
  };
  out.line(
    `Target: a background task within 5 % of the handler without it, in requests/s and p99, judged by the confidence interval of the median per-round ratio: ` +
      `met when all of it is within 5 %, missed when none of it is, else not decided. ` +
      `The empty task: **${target.empty.met}** (${verdict("empty")}). ` +
      `The email task: **${target.email.met}** (${verdict("email")}). ` +
      `For scale, two servers with the same handler (A/A): ${
        verdict("again")
      }.`,
  );
  if (PROFILED.every((variant) => profiles[variant] !== undefined)) {
    const sum = (us: Record<Group, number>) =>
      Object.values(us).reduce((a, b) => a + b, 0);
    const cells = (f: (p: Attribution) => string) =>
      PROFILED.map((variant) => f(profiles[variant]!)).join(" | ");
    out.line();
    out.line(
      `### Where the main thread's time goes (\`--cpu-prof\`, one ${PROFILE_SECONDS} s round per variant)`,
    );
    out.line();
    out.line(
      "| part (µs per request) | with the email task | with an empty task | without a task |",
    );
    out.line("| --- | ---: | ---: | ---: |");
    for (const group of Object.keys(GROUPS) as Group[]) {
      out.line(
        `| ${GROUPS[group]} | ${
          cells((p) => p.perRequestUs[group].toFixed(0))
        } |`,
      );
    }
    out.line(
      `| main thread busy, in all | ${
        cells((p) => sum(p.perRequestUs).toFixed(0))
      } |`,
    );
    out.line(
      `| requests in the profiled round | ${
        cells((p) => p.requests.toLocaleString("en"))
      } |`,
    );
    out.line();
    out.line(
      "Sampled wall-clock time of the main thread (time blocked in a synchronous call, such as SQLite's `fsync` at each commit, counts). " +
        "Each sample goes to one part by the project frames on its stack: the email task's functions (`markSent` and its group commit, `flush`; `send`, `writeFileAtomic`, ...) or a task's body started by the scheduler; " +
        "else the innermost frame in `src/` unless Hono's dispatch runs above it (the manager, the Hono middleware); else the handler's code in orders.ts; else the runtime and libraries. " +
        "The `.eml` file's `fsync` runs on the runtime's I/O threads: it shows in the CPU column above, not here. " +
        "One round each: a part of a few µs moves by about as much from run to run.",
    );
  }
  out.write("server", {
    benchmark: "server",
    runtime: runtime.name,
    cores: runtime.cores,
    load: { before: loadBefore ?? null, after: loadAfter ?? null },
    method: {
      wrkThreads: THREADS,
      connections: CONNECTIONS,
      rounds: ROUNDS,
      seconds: SECONDS,
      warmUpSeconds: WARM_UP_SECONDS,
      profileSeconds: PROFILE_SECONDS,
      order: "rotates each round, starting with email, empty, without, again",
      inFlightSlack: IN_FLIGHT_SLACK,
    },
    variants: Object.fromEntries(
      ORDER.map((variant) => [variant, VARIANTS[variant]]),
    ),
    rounds: Object.fromEntries(
      ORDER.map((variant) => [
        variant,
        rounds[variant].map(({ quantilesUs: _, ...r }) => r),
      ]),
    ),
    medians: Object.fromEntries(
      ORDER.map((variant) => {
        const rs = rounds[variant];
        const ts = timed[variant];
        return [variant, {
          requestsPerSecond: median(rs.map((r) => r.requestsPerSecond)),
          p50Ms: ts.length === 0 ? null : median(ts.map((r) => r.p50Ms)),
          p99Ms: ts.length === 0 ? null : median(ts.map((r) => r.p99Ms)),
          p99PooledMs: pooledP99[variant],
          roundsWithLatencies: ts.length,
          cpuUsPerRequest: rs.every((r) => r.cpuUsPerRequest !== null)
            ? median(rs.map((r) => r.cpuUsPerRequest!))
            : null,
        }];
      }),
    ),
    ratios,
    target: { ...TARGET, confidence: CONFIDENCE, ...target },
    profiles,
  });
}
