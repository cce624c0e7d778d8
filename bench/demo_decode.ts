// What imagescript's decode time follows, for the demo's budget rule
// (`decodeWork` in examples/demo/image_header.ts): the time per pixel of
// photo-like baseline JPEGs of three sizes, and the time of progressive
// JPEGs of one size with more and more scans (tests/demo/fixtures/crafted.ts:
// each AC scan is a few bytes that make the decoder walk every block again).
// The slope of time over scans, per pixel, says what a scan costs beside a
// pixel's whole decode. The decode is the demo's (`decodeImage` in
// examples/demo/image_job.ts); imagescript's v1 `Image.decode`, which the
// demo used before, is timed beside it for the baseline JPEGs.
//
//   deno run -A bench/demo_decode.ts      bun bench/demo_decode.ts
//
// In this process, on the main thread: decode cost is what is measured, not
// the demo. Median of 3 decodes each, after one warm-up decode. Writes
// bench/results/demo-decode-<runtime>.md and .json.

import { Image } from "imagescript";
import { decodeImage } from "../examples/demo/image_job.ts";
import { progressiveJpeg } from "../tests/demo/fixtures/crafted.ts";
import { load, photo, Report } from "./_demo.ts";
import { median, runtime } from "./_runtime.ts";

const DECODES = 3;
const SIZES: [number, number][] = [[1000, 1000], [2000, 1500], [3000, 2000]];
const PROGRESSIVE: [number, number] = [1000, 1000];
const SCANS = [2, 25, 50, 100];

/** Median milliseconds to decode `bytes`, after one decode to warm up. */
async function decodeMs(
  bytes: Uint8Array<ArrayBuffer>,
  decode: (bytes: Uint8Array<ArrayBuffer>) => Promise<Image> = decodeImage,
): Promise<number> {
  await decode(bytes);
  const times: number[] = [];
  for (let i = 0; i < DECODES; i++) {
    const start = performance.now();
    await decode(bytes);
    times.push(performance.now() - start);
  }
  return median(times);
}

const loadBefore = load();
const baseline = [];
for (const [width, height] of SIZES) {
  const bytes = await photo(width, height, 60, 92) as Uint8Array<ArrayBuffer>;
  const ms = await decodeMs(bytes);
  const v1Ms = await decodeMs(bytes, (bytes) => Image.decode(bytes));
  baseline.push({
    width,
    height,
    ms,
    nsPerPixel: (ms * 1e6) / (width * height),
    v1Ms,
  });
}
const [pw, ph] = PROGRESSIVE;
const progressive = [];
for (const scans of SCANS) {
  const ms = await decodeMs(
    progressiveJpeg({ width: pw, height: ph, scans }) as Uint8Array<
      ArrayBuffer
    >,
  );
  progressive.push({ scans, ms });
}
const loadAfter = load();

// Least squares of ms over scans: the cost of one more scan.
const meanScans = SCANS.reduce((a, b) => a + b, 0) / SCANS.length;
const meanMs = progressive.reduce((a, p) => a + p.ms, 0) / progressive.length;
const msPerScan = progressive.reduce(
  (a, p) => a + (p.scans - meanScans) * (p.ms - meanMs),
  0,
) / SCANS.reduce((a, s) => a + (s - meanScans) ** 2, 0);
const nsPerPixelPerScan = (msPerScan * 1e6) / (pw * ph);
const pixelNs = baseline.map((b) => b.nsPerPixel);
const scansPerPixel = Math.min(...pixelNs) / nsPerPixelPerScan;

const out = new Report();
out.line(
  `## Decode cost (imagescript) — ${runtime.name}, ${runtime.cores} cores`,
);
out.line();
out.line(
  `The demo's \`decodeImage\` on the main thread (v1 \`Image.decode\` beside it), median of ${DECODES} after one warm-up. Load average ${
    loadBefore ?? "?"
  } before, ${loadAfter ?? "?"} after.`,
);
out.line();
out.line(
  "| baseline JPEG (photo-like) | ms | ns per pixel | v1 `Image.decode` ms |",
);
out.line("| --- | ---: | ---: | ---: |");
for (const b of baseline) {
  out.line(
    `| ${b.width}x${b.height} | ${b.ms.toFixed(1)} | ${
      b.nsPerPixel.toFixed(1)
    } | ${b.v1Ms.toFixed(1)} |`,
  );
}
out.line();
out.line(`| progressive ${pw}x${ph}, scans | ms |`);
out.line("| ---: | ---: |");
for (const p of progressive) {
  out.line(`| ${p.scans} | ${p.ms.toFixed(1)} |`);
}
out.line();
out.line(
  `One more scan costs ${msPerScan.toFixed(2)} ms at ${pw}x${ph}: ${
    nsPerPixelPerScan.toFixed(2)
  } ns per pixel, against ${Math.min(...pixelNs).toFixed(0)} to ${
    Math.max(...pixelNs).toFixed(0)
  } ns per pixel for a whole baseline decode: a scan costs what 1/${
    scansPerPixel.toFixed(0)
  } of a pixel's decode does, at the cheapest (the demo's rule counts 1/100).`,
);
out.write("demo-decode", {
  benchmark: "demo-decode",
  runtime: runtime.name,
  load: { before: loadBefore ?? null, after: loadAfter ?? null },
  baseline,
  progressive: { width: pw, height: ph, runs: progressive },
  msPerScan,
  nsPerPixelPerScan,
  scansPerPixel,
});
