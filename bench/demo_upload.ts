// The demo's uploads: how soon a 201 comes after the last byte of the body,
// and the memory of the server (and of its image processes) while 100
// photos of 2.2 MB are uploaded at once, until all are ready.
//
//   deno run -A bench/demo_upload.ts      bun bench/demo_upload.ts
//
// Time to 201: one upload at a time on a fresh server (a quiet server:
// nothing else runs), a 1600x1200 JPEG and a 12 MP JPEG in turn, ROUNDS of
// each. The client writes the request on a raw TCP socket and times from
// the moment its last byte was handed to the kernel to the first byte of
// the answer; the server's own figure (Server-Timing `store`: from the end
// of the body it read to the answer) is given beside it.
//
// Memory: 100 concurrent uploads of a 2.2 MB JPEG (the client honours each
// 503's Retry-After), RSS of the server and of its image processes (from
// /proc, every 50 ms) until every photo is ready; then the RSS after 3 s idle.
//
// Prints Markdown and writes bench/results/demo-upload-<runtime>.md and .json.

import { connect } from "node:net";
import { readFileSync } from "node:fs";
import {
  load,
  percentile,
  photo,
  Report,
  request,
  sleep,
  spread,
  startDemo,
} from "./_demo.ts";
import { runtime } from "./_runtime.ts";

const ROUNDS = 40;
const UPLOADS = 100;

/** A multipart request for `bytes`, as raw HTTP/1.1 bytes. */
function rawRequest(port: number, bytes: Uint8Array): Uint8Array {
  const boundary = "----bench-boundary-7f3a";
  const head = new TextEncoder().encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
  );
  const tail = new TextEncoder().encode(`\r\n--${boundary}--\r\n`);
  const length = head.length + bytes.length + tail.length;
  const start = new TextEncoder().encode(
    `POST /photos HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`,
  );
  const all = new Uint8Array(start.length + length);
  all.set(start);
  all.set(head, start.length);
  all.set(bytes, start.length + head.length);
  all.set(tail, start.length + head.length + bytes.length);
  return all;
}

/** Sends one upload; ms from the last byte written to the first byte of the answer, and the server's `store` figure. */
function timeTo201(
  port: number,
  body: Uint8Array,
): Promise<{ client: number; server: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let sent = 0;
    let answer = "";
    let firstByte = 0;
    socket.setNoDelay(true);
    socket.on("connect", () => {
      socket.write(body, () => {
        sent = performance.now();
      });
    });
    socket.on("data", (chunk: Uint8Array) => {
      if (firstByte === 0) firstByte = performance.now();
      answer += new TextDecoder().decode(chunk);
    });
    socket.on("error", reject);
    socket.on("close", () => {
      const status = answer.slice(9, 12);
      if (status !== "201") {
        return reject(new Error(`answered ${answer.slice(0, 300)}`));
      }
      const store = /server-timing: .*store;dur=([\d.]+)/i.exec(answer);
      resolve({ client: firstByte - sent, server: Number(store?.[1]) });
    });
  });
}

/** RSS of a process in MB, from /proc; 0 if it is gone. */
function rss(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The pids of a process's children. */
function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim()
      .split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const loadBefore = load();
const sizes = {
  "1600x1200": await photo(1600, 1200, 60, 92),
  "12 MP (4000x3000)": await photo(4000, 3000, 40, 85),
};
const big = await photo(1900, 1400, 90, 95);
console.error(
  `photos: ${
    Object.entries(sizes).map(([k, v]) =>
      `${k} ${(v.length / 1e6).toFixed(2)} MB`
    ).join(", ")
  }; memory photo ${(big.length / 1e6).toFixed(2)} MB`,
);

// Time to 201, interleaved.
const timing: Record<string, { client: number[]; server: number[] }> = {};
{
  const demo = await startDemo();
  try {
    const port = Number(new URL(demo.url).port);
    const bodies = Object.fromEntries(
      Object.entries(sizes).map(([k, v]) => [k, rawRequest(port, v)]),
    );
    for (const name of Object.keys(sizes)) {
      timing[name] = { client: [], server: [] };
    }
    // Warm-up.
    for (const name of Object.keys(sizes)) await timeTo201(port, bodies[name]);
    for (let round = 0; round < ROUNDS; round++) {
      const names = Object.keys(sizes);
      if (round % 2) names.reverse();
      for (const name of names) {
        const t = await timeTo201(port, bodies[name]);
        timing[name].client.push(t.client);
        timing[name].server.push(t.server);
      }
    }
  } finally {
    await demo.stop();
  }
}

// Memory under 100 concurrent 2.2 MB uploads.
const memory = {
  serverPeak: 0,
  processesPeak: 0,
  totalPeak: 0,
  serverIdle: 0,
  processesIdle: 0,
  before: 0,
  refused: 0,
  ready: 0,
  failed: 0,
  seconds: 0,
};
{
  const demo = await startDemo();
  try {
    memory.before = rss(demo.pid);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const server = rss(demo.pid);
        const processes = children(demo.pid).reduce(
          (sum, pid) => sum + rss(pid),
          0,
        );
        memory.serverPeak = Math.max(memory.serverPeak, server);
        memory.processesPeak = Math.max(memory.processesPeak, processes);
        memory.totalPeak = Math.max(memory.totalPeak, server + processes);
        await sleep(50);
      }
    })();
    const started = performance.now();
    const ids = await Promise.all(
      Array.from({ length: UPLOADS }, async (_, i) => {
        for (;;) {
          const form = new FormData();
          form.append(
            "photo",
            new Blob([big as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }),
            `p${i}.jpg`,
          );
          const response = await request(`${demo.url}/photos`, {
            method: "POST",
            body: form,
          }, 120_000);
          const body = await response.json();
          if (response.status === 503) {
            memory.refused++;
            await sleep(Number(response.headers.get("retry-after")) * 1000);
            continue;
          }
          if (response.status !== 201) {
            throw new Error(
              `upload answered ${response.status}: ${body.error}`,
            );
          }
          return body.photoId as string;
        }
      }),
    );
    for (;;) {
      const list = await Promise.all(
        ids.map(async (id) =>
          (await (await request(`${demo.url}/photos/${id}`)).json()).status
        ),
      );
      if (list.every((s) => s !== "processing")) {
        memory.ready = list.filter((s) => s === "ready").length;
        memory.failed = list.filter((s) => s === "failed").length;
        break;
      }
      await sleep(500);
    }
    memory.seconds = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;
    await sleep(3000);
    memory.serverIdle = rss(demo.pid);
    memory.processesIdle = children(demo.pid).reduce(
      (sum, pid) => sum + rss(pid),
      0,
    );
  } finally {
    await demo.stop();
  }
}
const loadAfter = load();

const out = new Report();
const ms = (values: number[]) =>
  `${percentile(values, 0.5).toFixed(1)} / ${
    percentile(values, 0.99).toFixed(1)
  }`;
out.line(`## Demo uploads — ${runtime.name}, ${runtime.cores} cores`);
out.line();
out.line(
  `Time from the last byte of the request body to the 201, one upload at a time on a quiet server, ${ROUNDS} uploads of each size interleaved (after one warm-up each). Client: from the last byte handed to the kernel to the first byte of the answer (raw TCP on 127.0.0.1). Server: Server-Timing \`store\`, from the end of the body as the handler read it to the answer (flushing the last bytes to disk, writing meta.json, renaming the folder, starting the task). Load average ${
    loadBefore ?? "?"
  } before, ${loadAfter ?? "?"} after.`,
);
out.line();
out.line(
  "| JPEG | bytes | client p50 / p99 (ms) | client max (ms) | server p50 / p99 (ms) | server median (min–max) |",
);
out.line("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const [name, bytes] of Object.entries(sizes)) {
  const t = timing[name];
  out.line(
    `| ${name} | ${bytes.length.toLocaleString("en")} | ${ms(t.client)} | ${
      Math.max(...t.client).toFixed(1)
    } | ${ms(t.server)} | ${spread(t.server, 1)} |`,
  );
}
out.line();
// The target is the server's: from the end of the body to the answer. The
// client's figure also holds the end of the transfer, which the kernel's
// loopback buffers hide from its last write, and grows with the size.
const p99 = (name: string, side: "server" | "client") =>
  percentile(timing[name][side], 0.99);
const server = Object.keys(sizes).map((name) => p99(name, "server"));
const client = Object.keys(sizes).map((name) => p99(name, "client"));
out.line(
  `Target: p99 ≤ 15 ms from the end of the body to the 201, independent of size: **${
    server.every((p) => p <= 15) ? "met" : "missed"
  }** (server p99 ${
    server.map((p) => p.toFixed(1)).join(" ms and ")
  } ms; the client's, which includes the end of the transfer, ${
    client.map((p) => p.toFixed(1)).join(" ms and ")
  } ms).`,
);
out.line();
out.line(
  `### Memory: ${UPLOADS} concurrent uploads of a ${
    (big.length / 1e6).toFixed(1)
  } MB JPEG (1900x1400)`,
);
out.line();
out.line(
  `The default settings (32 uploads in flight, ${
    Math.max(1, Math.min(4, runtime.cores - 1))
  } image process(es)); the client waits out each 503's Retry-After. RSS from /proc every 50 ms until every photo was ready (${
    memory.seconds.toFixed(0)
  } s); idle: 3 s later.`,
);
out.line();
out.line("| | server (MB) | image processes (MB) | together (MB) |");
out.line("| --- | ---: | ---: | ---: |");
out.line(`| before | ${memory.before.toFixed(0)} | — | — |`);
out.line(
  `| peak | ${memory.serverPeak.toFixed(0)} | ${
    memory.processesPeak.toFixed(0)
  } | ${memory.totalPeak.toFixed(0)} |`,
);
out.line(
  `| idle after | ${memory.serverIdle.toFixed(0)} | ${
    memory.processesIdle.toFixed(0)
  } | ${(memory.serverIdle + memory.processesIdle).toFixed(0)} |`,
);
out.line();
out.line(
  `Photos: ${memory.ready} ready, ${memory.failed} failed; ${memory.refused} answer(s) 503 on the way. Target: peak ≤ 300 MB: **${
    memory.serverPeak <= 300 ? "met" : "missed"
  }** for the server (${memory.serverPeak.toFixed(0)} MB), **${
    memory.totalPeak <= 300 ? "met" : "missed"
  }** with its image processes (${memory.totalPeak.toFixed(0)} MB).`,
);
out.write("demo-upload", {
  benchmark: "demo-upload",
  runtime: runtime.name,
  load: { before: loadBefore ?? null, after: loadAfter ?? null },
  bytes: Object.fromEntries(
    Object.entries(sizes).map(([k, v]) => [k, v.length]),
  ),
  timing,
  memory,
});
