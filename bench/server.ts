// Server overhead: the demo's `POST /orders` with its background task (the
// confirmation email) against the same handler without it (`SEND_EMAILS=0`),
// under load from wrk on 127.0.0.1.
//
//   deno run -A bench/server.ts      bun bench/server.ts
//
// Each runtime benchmarks its own server: the demo is started with this
// process's executable. Both variants run side by side, each warmed up for
// 2 s; then 3 rounds of 5 s per variant, interleaved (the order alternates),
// with `wrk -t1 -c32`. After each round the bench waits until the server has
// no task left, so one round's emails never run in the next one's time. It
// also reads the server's CPU time (all threads, from /proc) over the round
// and the wait. Then one more 5 s round with the email, under the runtime's
// `--cpu-prof`, says where the main thread's time goes.
//
// Needs wrk (`apt-get install -y wrk`); without it, says so and exits 0.
// Prints Markdown and writes bench/results/server-<runtime>.md and .json.

import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

const ROUNDS = 3;
const SECONDS = 5;
const WARM_UP_SECONDS = 2;
const CONNECTIONS = 32;
const THREADS = 1;
const BODY = JSON.stringify({
  email: "ada@example.com",
  items: [{ sku: "MUG-1", quantity: 2 }],
});

/** wrk's own summary, printed by the Lua script's `done()`. */
interface WrkResult {
  requests: number;
  durationUs: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  errors: number;
}

const LUA = `
wrk.method = "POST"
wrk.body = '${BODY}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,"errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
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
  return {
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
  sqlite: "the email task: SQLite UPDATE (`markSent`)",
  mail: "the email task: the `.eml` file and the rest",
  manager: "@background/tasks (task manager, Hono middleware)",
  http: "HTTP server, Hono, JSON, GC and the rest",
} as const;
type Group = keyof typeof GROUPS;

const EMAIL_UPDATES = new Set(["markSent", "recordFailure", "markFailed"]);
const EMAIL_FUNCTIONS = new Set([
  "confirmation",
  "sendWithRetry",
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
      const result = await wrk(script, `${demo.url}/orders`, SECONDS);
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
  const variants = {
    with: { name: "with the email task", env: { SEND_EMAILS: "1" } },
    without: { name: "without it (SEND_EMAILS=0)", env: { SEND_EMAILS: "0" } },
  };
  type Variant = keyof typeof variants;
  const demos: Partial<Record<Variant, Demo>> = {};
  const rounds: Record<Variant, Round[]> = { with: [], without: [] };
  const profiles: Partial<Record<Variant, Attribution>> = {};
  try {
    for (const variant of ["with", "without"] as const) {
      demos[variant] = await startDemo(variants[variant].env);
      await round(demos[variant]!, script, WARM_UP_SECONDS);
    }
    for (let i = 0; i < ROUNDS; i++) {
      const order: Variant[] = i % 2 === 0
        ? ["with", "without"]
        : ["without", "with"];
      for (const variant of order) {
        const r = await round(demos[variant]!, script, SECONDS);
        rounds[variant].push(r);
        console.error(
          `round ${i + 1} ${variant}: ${
            r.requestsPerSecond.toFixed(0)
          } req/s, p99 ${r.p99Ms.toFixed(1)} ms`,
        );
      }
    }
    for (const demo of Object.values(demos)) await demo.stop();
    for (const variant of ["with", "without"] as const) {
      profiles[variant] = await profileRound(script, variants[variant].env);
    }
  } finally {
    for (const demo of Object.values(demos)) await demo.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const loadAfter = load();

  const ratio = (pick: (r: Round) => number) =>
    median(rounds.with.map((r, i) => pick(r) / pick(rounds.without[i])));
  const ratios = {
    requestsPerSecond: ratio((r) => r.requestsPerSecond),
    p50: ratio((r) => r.p50Ms),
    p99: ratio((r) => r.p99Ms),
    cpuPerRequest: rounds.with[0].cpuUsPerRequest === null
      ? null
      : ratio((r) => r.cpuUsPerRequest!),
  };
  const met = ratios.requestsPerSecond >= 0.95 && ratios.p99 <= 1.05;

  const out = new Report();
  out.line(`## Server overhead — ${runtime.name}, ${runtime.cores} cores`);
  out.line();
  out.line(
    `\`POST /orders\` on the demo (Hono on ${
      slug === "deno" ? "Deno.serve" : "Bun.serve"
    }), with its confirmation-email task and without it (\`SEND_EMAILS=0\`: the same handler minus \`sendConfirmation\`). ` +
      `wrk -t${THREADS} -c${CONNECTIONS} on 127.0.0.1, ${ROUNDS} rounds of ${SECONDS} s per variant, interleaved, after ${WARM_UP_SECONDS} s of warm-up; ` +
      `median (min–max) of the rounds; ratios are medians of per-round ratios. ` +
      `Load average ${loadBefore ?? "?"} before, ${
        loadAfter ?? "?"
      } after (other work shares the machine).`,
  );
  out.line();
  out.line(
    "| variant | requests/s | p50 (ms) | p99 (ms) | server CPU per request (µs) | tasks left when wrk stopped | errors |",
  );
  out.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const variant of ["with", "without"] as const) {
    const rs = rounds[variant];
    const cpu = rs.every((r) => r.cpuUsPerRequest !== null)
      ? spread(rs.map((r) => r.cpuUsPerRequest!))
      : "—";
    out.line(
      `| ${variants[variant].name} | ${
        spread(rs.map((r) => r.requestsPerSecond))
      } | ${spread(rs.map((r) => r.p50Ms), 1)} | ${
        spread(rs.map((r) => r.p99Ms), 1)
      } | ${cpu} | ${spread(rs.map((r) => r.tasksLeft))} | ${
        rs.reduce((sum, r) => sum + r.errors, 0)
      } |`,
    );
  }
  out.line(
    `| with ÷ without | ${ratios.requestsPerSecond.toFixed(2)} | ${
      ratios.p50.toFixed(2)
    } | ${ratios.p99.toFixed(2)} | ${
      ratios.cpuPerRequest?.toFixed(2) ?? "—"
    } | | |`,
  );
  out.line();
  out.line(
    `Target: with the task within 5 % of without, in requests/s and p99: **${
      met ? "met" : "missed"
    }** (requests/s ×${ratios.requestsPerSecond.toFixed(2)}, p99 ×${
      ratios.p99.toFixed(2)
    }).`,
  );
  if (profiles.with && profiles.without) {
    const { with: on, without: off } = profiles;
    const sum = (us: Record<Group, number>) =>
      Object.values(us).reduce((a, b) => a + b, 0);
    out.line();
    out.line(
      `### Where the main thread's time goes (\`--cpu-prof\`, one ${SECONDS} s round per variant)`,
    );
    out.line();
    out.line(
      "| part | with the email task (µs per request) | without (µs per request) |",
    );
    out.line("| --- | ---: | ---: |");
    for (const group of Object.keys(GROUPS) as Group[]) {
      out.line(
        `| ${GROUPS[group]} | ${on.perRequestUs[group].toFixed(0)} | ${
          off.perRequestUs[group].toFixed(0)
        } |`,
      );
    }
    out.line(
      `| main thread busy, in all | ${sum(on.perRequestUs).toFixed(0)} | ${
        sum(off.perRequestUs).toFixed(0)
      } |`,
    );
    out.line(
      `| requests in the profiled round | ${
        on.requests.toLocaleString("en")
      } | ${off.requests.toLocaleString("en")} |`,
    );
    out.line();
    out.line(
      "Sampled wall-clock time of the main thread (time blocked in a synchronous call, such as SQLite's `fsync` at each commit, counts). " +
        "Each sample goes to one part by the project frames on its stack: the email task's functions (`markSent`; `sendWithRetry`, `writeFileAtomic`, ...) or a task started by the scheduler; " +
        "else the innermost frame in `src/` unless Hono's dispatch runs above it (the manager, the Hono middleware); else the handler's code in orders.ts; else the runtime and libraries. " +
        "The `.eml` file's `fsync` runs on the runtime's I/O threads: it shows in the CPU column above, not here.",
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
    },
    rounds,
    medians: Object.fromEntries(
      (["with", "without"] as const).map((variant) => [variant, {
        requestsPerSecond: median(
          rounds[variant].map((r) => r.requestsPerSecond),
        ),
        p50Ms: median(rounds[variant].map((r) => r.p50Ms)),
        p99Ms: median(rounds[variant].map((r) => r.p99Ms)),
      }]),
    ),
    ratios,
    target: { met },
    profiles,
  });
}
