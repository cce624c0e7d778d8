// Events: what one `start` and one `settle` listener add to a TaskManager's
// task, against what the runtime's own two `Event`s add when the same manager
// dispatches them at the same points instead of its `TaskEvent`s: the least a
// manager built on `EventTarget` can pay for them, in the very same work.
//
//   deno run -A bench/events.ts        bun bench/events.ts
//
// The second manager is a copy of src/ in a temporary folder whose
// `dispatchTaskEvent` dispatches `new Event(type)` and returns
// (_events_copy.ts). Processes
// alternate between the two (a process each, PAIRS pairs per case, so that
// neither shares a heap or the optimizer's state with the other); each runs
// ROUNDS rounds with and without listeners, interleaved, and the figure of a
// process is its median difference. Prints Markdown and writes it to
// bench/results/events-<runtime>.md.

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { CASES } from "./_cases.ts";
import { copyWithPlainEvents } from "./_events_copy.ts";
import { median, runtime } from "./_runtime.ts";

const PAIRS = Number(process.env.BENCH_PAIRS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 11);
const ROOT = new URL("../", import.meta.url);

const copy = copyWithPlainEvents(ROOT);
try {
  const modules = { ours: new URL("mod.ts", ROOT).href, plain: copy.module };
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const child = fileURLToPath(new URL("./_events_child.ts", import.meta.url));
  const measure = (module: string, index: number): number => {
    const taskEvents = module === modules.ours;
    const args = [child, module, String(index), String(ROUNDS)];
    const result = spawnSync(
      deno ? deno.execPath() : process.execPath,
      deno ? ["run", "-A", ...args] : args,
      { encoding: "utf8" },
    );
    if (result.status !== 0) {
      throw new Error(
        `${CASES[index].name} with ${module} failed:\n${result.stderr}`,
      );
    }
    const found = JSON.parse(result.stdout);
    if (found.taskEvents !== taskEvents) {
      throw new Error(
        `${module}: the listeners got ${
          found.taskEvents ? "TaskEvents" : "plain Events"
        }, not what this copy should dispatch`,
      );
    }
    return median(found.added);
  };

  const lines: string[] = [];
  const out = (line = "") => {
    console.log(line);
    lines.push(line);
  };
  out(`## Events at the same points — ${runtime.name}, ${runtime.cores} cores`);
  out();
  out(
    `What one \`start\` and one \`settle\` listener add to a task (ns per task), with the manager's \`TaskEvent\`s and with the runtime's own \`new Event(type)\` dispatched by a copy of the manager at the same points. ${PAIRS} processes of each, alternated; each process gives the median of ${ROUNDS} rounds' differences (with listeners − without, interleaved); the table gives the median over processes. Target: at most 1.3× the runtime's own events.`,
  );
  out();
  out(
    "| case | TaskEvents add | the runtime's Events add | ratio (median) | ratio (min–max over pairs) |",
  );
  out("| --- | ---: | ---: | ---: | ---: |");
  for (const [index, { name }] of CASES.entries()) {
    const ours: number[] = [];
    const plain: number[] = [];
    for (let pair = 0; pair < PAIRS; pair++) {
      // Alternate which goes first, so that neither always runs warmer.
      if (pair % 2 === 0) {
        ours.push(measure(modules.ours, index));
        plain.push(measure(modules.plain, index));
      } else {
        plain.push(measure(modules.plain, index));
        ours.push(measure(modules.ours, index));
      }
    }
    const ratios = ours.map((x, i) => x / plain[i]);
    out(
      `| ${name} | ${median(ours).toFixed(0)} | ${median(plain).toFixed(0)} | ${
        (median(ours) / median(plain)).toFixed(2)
      } | ${Math.min(...ratios).toFixed(2)}–${
        Math.max(...ratios).toFixed(2)
      } |`,
    );
  }
  const slug = runtime.name.split(" ")[0];
  const url = new URL(`./results/events-${slug}.md`, import.meta.url);
  writeFileSync(url, lines.join("\n") + "\n");
  console.log(`\nwrote bench/results/events-${slug}.md`);
} finally {
  copy.remove();
}
