// Draws bench/results/chart.svg from the results files the benchmarks wrote:
// cost per task (the tables of cost-<runtime>.md), the server overhead
// (server-<runtime>.json) and the health check (health-<runtime>.json), for
// each runtime that has them. A hand-written SVG string: no dependencies.
//
//   deno run -A bench/chart.ts      bun bench/chart.ts

import { existsSync, readFileSync, writeFileSync } from "node:fs";

const RESULTS = new URL("./results/", import.meta.url);
const RUNTIMES = ["deno", "bun"] as const;
const IMPLS = ["TaskManager", "floor (hand-written)", "p-limit", "p-queue"];
const COLORS: Record<string, string> = {
  "TaskManager": "#2563eb",
  "floor (hand-written)": "#6b7280",
  "p-limit": "#d97706",
  "p-queue": "#059669",
};

interface Spread {
  median: number;
  min: number;
  max: number;
}

interface CostResults {
  title: string;
  /** Case title → implementation → ns per task. */
  cases: Map<string, Map<string, Spread>>;
}

/** The variants of server-<runtime>.json, in the order drawn. */
const SERVER_VARIANTS = [
  ["email", "email task", "#2563eb"],
  ["empty", "empty task (noop)", "#93c5fd"],
  ["without", "no task (SEND_EMAILS=0)", "#9ca3af"],
] as const;

interface ServerResults {
  runtime: string;
  medians: Record<
    "email" | "empty" | "without",
    { requestsPerSecond: number; p99PooledMs: number | null }
  >;
  /** Each ÷ without; requests/s as the median of per-round ratios. */
  ratios: Record<
    "email" | "empty",
    { requestsPerSecond: { median: number }; p99Pooled: number }
  >;
  target: { requestsPerSecond: number };
}

interface HealthResults {
  runtime: string;
  poolSize: number;
  summary: Record<"workers" | "main", { busy: { p99Ms: number } }>;
}

function read(name: string): string | undefined {
  const url = new URL(name, RESULTS);
  return existsSync(url) ? readFileSync(url, "utf8") : undefined;
}

/** The cost tables of cost-<runtime>.md: `### case`, then `| impl | median | min–max | ...`. */
export function parseCost(markdown: string): CostResults {
  const cases = new Map<string, Map<string, Spread>>();
  let current: Map<string, Spread> | undefined;
  let title = "";
  for (const line of markdown.split("\n")) {
    if (line.startsWith("## ")) title = line.slice(3).trim();
    if (line.startsWith("### ")) {
      current = new Map();
      cases.set(line.slice(4).trim(), current);
      continue;
    }
    const cells = line.split("|").slice(1, -1).map((cell) => cell.trim());
    if (current === undefined || cells.length < 3) continue;
    const median = Number(cells[1].replaceAll(",", ""));
    const range = /^([\d,.]+)–([\d,.]+)$/.exec(cells[2]);
    if (!Number.isFinite(median) || range === null) continue;
    current.set(cells[0], {
      median,
      min: Number(range[1].replaceAll(",", "")),
      max: Number(range[2].replaceAll(",", "")),
    });
  }
  return { title, cases };
}

function json<T>(name: string): T | undefined {
  const text = read(name);
  return text === undefined ? undefined : JSON.parse(text) as T;
}

const escape = (text: string) =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

const fmt = (x: number, digits = 0) =>
  x.toLocaleString("en", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });

class Svg {
  readonly parts: string[] = [];

  text(
    x: number,
    y: number,
    text: string,
    options: {
      size?: number;
      anchor?: string;
      weight?: string;
      fill?: string;
      /** A white outline, to stay readable across lines. */
      halo?: boolean;
    } = {},
  ): void {
    this.parts.push(
      `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="${
        options.size ?? 11
      }" text-anchor="${options.anchor ?? "start"}"${
        options.weight ? ` font-weight="${options.weight}"` : ""
      }${
        options.halo
          ? ` stroke="#ffffff" stroke-width="3" paint-order="stroke"`
          : ""
      } fill="${options.fill ?? "#111827"}">${escape(text)}</text>`,
    );
  }

  rect(x: number, y: number, w: number, h: number, fill: string): void {
    this.parts.push(
      `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${
        w.toFixed(1)
      }" height="${Math.max(0, h).toFixed(1)}" fill="${fill}"/>`,
    );
  }

  line(
    x1: number,
    y1: number,
    x2: number,
    y2: number,
    stroke = "#d1d5db",
    dash = "",
  ): void {
    this.parts.push(
      `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${
        x2.toFixed(1)
      }" y2="${y2.toFixed(1)}" stroke="${stroke}"${
        dash ? ` stroke-dasharray="${dash}"` : ""
      }/>`,
    );
  }

  legend(x: number, y: number, items: [string, string][]): void {
    let at = x;
    for (const [label, color] of items) {
      this.rect(at, y - 9, 10, 10, color);
      this.text(at + 14, y, label);
      at += 24 + label.length * 6.3;
    }
  }
}

/** Round tick steps for a linear axis from 0 to about `max`. */
function ticks(max: number): number[] {
  const raw = max / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max * 1.0001; v += step) out.push(v);
  if (out.at(-1)! < max) out.push(out.at(-1)! + step);
  return out;
}

/** Cost per task: one panel per runtime, one group of bars per case. */
function costPanel(
  svg: Svg,
  x: number,
  y: number,
  w: number,
  h: number,
  cost: CostResults,
  top: number,
): void {
  const left = x + 44;
  const bottom = y + h - 34;
  const height = bottom - (y + 28);
  const scale = (v: number) => bottom - (v / top) * height;
  svg.text(x + w / 2, y + 12, cost.title.replace(/^Cost per task — /, ""), {
    size: 12,
    anchor: "middle",
    weight: "600",
  });
  for (const t of ticks(top)) {
    if (t > top) break;
    svg.line(left, scale(t), x + w, scale(t));
    svg.text(left - 4, scale(t) + 4, fmt(t), { anchor: "end", size: 10 });
  }
  const cases = [...cost.cases.entries()];
  const groupWidth = (x + w - left) / cases.length;
  const bar = Math.min(24, (groupWidth - 16) / IMPLS.length);
  cases.forEach(([name, rows], i) => {
    const gx = left + i * groupWidth + (groupWidth - bar * IMPLS.length) / 2;
    IMPLS.forEach((impl, j) => {
      const row = rows.get(impl);
      if (row === undefined) return;
      const bx = gx + j * bar;
      svg.rect(
        bx + 1,
        scale(row.median),
        bar - 2,
        bottom - scale(row.median),
        COLORS[impl],
      );
      const cx = bx + bar / 2;
      svg.line(
        cx,
        scale(Math.min(row.max, top)),
        cx,
        scale(row.min),
        "#111827",
      );
      svg.text(cx, scale(Math.min(row.max, top)) - 3, fmt(row.median), {
        size: 8.5,
        anchor: "middle",
        fill: "#374151",
      });
    });
    const title = name.replaceAll("`", "").replace(/^100k /, "");
    const cut = title.lastIndexOf(", ");
    const cx = left + (i + 0.5) * groupWidth;
    svg.text(cx, bottom + 14, cut < 0 ? title : title.slice(0, cut), {
      size: 10,
      anchor: "middle",
    });
    if (cut >= 0) {
      svg.text(cx, bottom + 26, title.slice(cut + 2), {
        size: 10,
        anchor: "middle",
        fill: "#4b5563",
      });
    }
  });
  svg.line(left, bottom, x + w, bottom, "#6b7280");
}

/** `GET /health` p99, image processes vs main thread, on a log scale in ms. */
function healthPanel(
  svg: Svg,
  x: number,
  y: number,
  w: number,
  h: number,
  health: HealthResults[],
): void {
  svg.text(
    x,
    y + 12,
    "GET /health p99 while 20 uploads get thumbnails (ms, log scale)",
    {
      size: 12,
      weight: "600",
    },
  );
  svg.legend(x, y + 30, [["image processes", "#2563eb"], [
    "main thread",
    "#dc2626",
  ]]);
  const left = x + 52;
  const bottom = y + h - 22;
  const topY = y + 50;
  const lo = -1; // 0.1 ms
  const hi = 5; // 100 s
  const scale = (ms: number) =>
    bottom -
    ((Math.log10(Math.max(ms, 0.1)) - lo) / (hi - lo)) * (bottom - topY);
  for (let p = lo; p <= hi; p++) {
    const v = 10 ** p;
    svg.line(left, scale(v), x + w, scale(v));
    svg.text(left - 4, scale(v) + 4, v >= 1000 ? `${v / 1000} s` : `${v}`, {
      anchor: "end",
      size: 10,
    });
  }
  svg.line(left, scale(10), x + w, scale(10), "#dc2626", "4 3");
  svg.text(left + 4, scale(10) - 4, "target: 10 ms", {
    size: 10,
    fill: "#dc2626",
  });
  const groupWidth = (x + w - left) / Math.max(1, health.length);
  health.forEach((result, i) => {
    const gx = left + i * groupWidth + groupWidth / 2;
    const bars: [number, string][] = [
      [result.summary.workers.busy.p99Ms, "#2563eb"],
      [result.summary.main.busy.p99Ms, "#dc2626"],
    ];
    bars.forEach(([ms, color], j) => {
      const bx = gx - 48 + j * 58;
      svg.rect(bx, scale(ms), 38, bottom - scale(ms), color);
      svg.text(
        bx + 19,
        scale(ms) - 4,
        ms >= 1000 ? `${fmt(ms / 1000, 1)} s` : `${fmt(ms, 1)} ms`,
        { size: 10, anchor: "middle" },
      );
    });
    svg.text(gx, bottom + 15, result.runtime, { anchor: "middle" });
  });
  svg.line(left, bottom, x + w, bottom, "#6b7280");
}

/**
 * `POST /orders` requests/s and pooled p99: with the email task, with an
 * empty task, without a task; a dashed line marks the 5 % target.
 */
function serverPanel(
  svg: Svg,
  x: number,
  y: number,
  w: number,
  h: number,
  server: ServerResults[],
): void {
  svg.text(
    x,
    y + 12,
    "POST /orders requests/s, with the pooled p99 in ms",
    {
      size: 12,
      weight: "600",
    },
  );
  svg.legend(
    x,
    y + 30,
    SERVER_VARIANTS.map(([, label, color]) => [label, color]),
  );
  const left = x + 52;
  const bottom = y + h - 34;
  const topY = y + 56;
  const max = Math.max(
    1,
    ...server.flatMap((s) =>
      SERVER_VARIANTS.map(([key]) => s.medians[key].requestsPerSecond)
    ),
  );
  // Room above the tallest bar for its two labels.
  const axis = ticks(max * 1.1);
  const top = axis.at(-1)!;
  const scale = (v: number) => bottom - (v / top) * (bottom - topY);
  for (const t of axis) {
    svg.line(left, scale(t), x + w, scale(t));
    svg.text(left - 4, scale(t) + 4, fmt(t), { anchor: "end", size: 10 });
  }
  const groupWidth = (x + w - left) / Math.max(1, server.length);
  const bar = 34;
  const step = 48;
  server.forEach((result, i) => {
    const gx = left + i * groupWidth + groupWidth / 2;
    const x0 = gx - (step * (SERVER_VARIANTS.length - 1) + bar) / 2;
    // The target: a task within 5 % of the requests/s without one.
    const goal = result.target.requestsPerSecond *
      result.medians.without.requestsPerSecond;
    svg.line(
      x0 - 4,
      scale(goal),
      x0 + step * (SERVER_VARIANTS.length - 1) + bar + 4,
      scale(goal),
      "#dc2626",
      "4 3",
    );
    SERVER_VARIANTS.forEach(([key, , color], j) => {
      const { requestsPerSecond: rps, p99PooledMs: p99 } = result.medians[key];
      const bx = x0 + j * step;
      svg.rect(bx, scale(rps), bar, bottom - scale(rps), color);
      svg.text(bx + bar / 2, scale(rps) - 14, fmt(rps), {
        size: 10,
        anchor: "middle",
        halo: true,
      });
      svg.text(
        bx + bar / 2,
        scale(rps) - 3,
        p99 === null ? "p99 —" : `p99 ${fmt(p99)}`,
        {
          size: 8.5,
          anchor: "middle",
          fill: "#4b5563",
          halo: true,
        },
      );
      if (key !== "without") {
        svg.text(
          bx + bar / 2,
          bottom + 12,
          `×${result.ratios[key].requestsPerSecond.median.toFixed(2)}`,
          { size: 9.5, anchor: "middle", fill: "#374151" },
        );
      }
    });
    svg.text(gx, bottom + 26, result.runtime, { anchor: "middle" });
  });
  svg.text(
    x + w,
    y + 46,
    "× : ÷ no task (median of rounds); red dashes: the −5 % target",
    { size: 9, anchor: "end", fill: "#4b5563" },
  );
  svg.line(left, bottom, x + w, bottom, "#6b7280");
}

const costs = RUNTIMES.flatMap((rt) => {
  const text = read(`cost-${rt}.md`);
  return text === undefined ? [] : [parseCost(text)];
});
const servers = RUNTIMES.flatMap((rt) => {
  const result = json<ServerResults>(`server-${rt}.json`);
  if (result === undefined) return [];
  if (result.medians.empty === undefined) {
    // Written before the empty-task variant: run bench/server.ts again.
    console.warn(`server-${rt}.json has no empty-task variant: left out`);
    return [];
  }
  return [result];
});
const healths = RUNTIMES.flatMap((rt) =>
  json<HealthResults>(`health-${rt}.json`) ?? []
);

const WIDTH = 1000;
const svg = new Svg();
let y = 0;
svg.text(20, 26, "@background/tasks — benchmarks", { size: 16, weight: "600" });
y = 40;
if (costs.length > 0) {
  svg.text(
    20,
    y + 16,
    "Cost per task (ns, median of rounds, min–max whiskers; lower is better)",
    {
      size: 13,
      weight: "600",
    },
  );
  svg.legend(20, y + 36, IMPLS.map((impl) => [impl, COLORS[impl]]));
  const top = ticks(
    Math.max(
      ...costs.flatMap((c) =>
        [...c.cases.values()].flatMap((rows) =>
          IMPLS.flatMap((impl) => rows.get(impl)?.max ?? [])
        )
      ),
    ),
  ).at(-1)!;
  const panelWidth = (WIDTH - 40 - 20 * (costs.length - 1)) / costs.length;
  costs.forEach((cost, i) =>
    costPanel(
      svg,
      20 + i * (panelWidth + 20),
      y + 44,
      panelWidth,
      290,
      cost,
      top,
    )
  );
  y += 44 + 290 + 20;
}
if (healths.length > 0 || servers.length > 0) {
  const half = (WIDTH - 60) / 2;
  if (healths.length > 0) healthPanel(svg, 20, y, half, 270, healths);
  if (servers.length > 0) serverPanel(svg, 40 + half, y, half, 270, servers);
  y += 270 + 10;
}
const height = y + 10;
const out = [
  `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">`,
  `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
  ...svg.parts,
  "</svg>",
].join("\n");
writeFileSync(new URL("chart.svg", RESULTS), out + "\n");
console.log(
  `wrote bench/results/chart.svg (cost: ${costs.length}, server: ${servers.length}, health: ${healths.length} runtime(s))`,
);
