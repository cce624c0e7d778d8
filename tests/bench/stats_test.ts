// The statistics the benchmarks' verdicts rest on (bench/_stats.ts).

import assert from "node:assert/strict";
import { CONFIDENCE, medianInterval } from "../../bench/_stats.ts";
import { test } from "../_harness.ts";

test("medianInterval: 8 values give the 2nd to the 7th, at 93 %", () => {
  const values = [1.3, 0.9, 1.1, 0.7, 1.0, 1.2, 0.8, 1.4];
  const interval = medianInterval(values);
  assert.deepEqual(interval, {
    low: 0.8,
    high: 1.3,
    confidence: 1 - 2 * (1 + 8) / 256,
  });
  assert.deepEqual(
    values,
    [1.3, 0.9, 1.1, 0.7, 1.0, 1.2, 0.8, 1.4],
    "input kept",
  );
});

test("medianInterval: 20 values give the 6th to the 15th (the textbook 95 % interval)", () => {
  const values = Array.from({ length: 20 }, (_, i) => 20 - i);
  const interval = medianInterval(values)!;
  assert.equal(interval.low, 6);
  assert.equal(interval.high, 15);
  assert.ok(interval.confidence > 0.95 && interval.confidence < 0.96);
});

test("medianInterval: 5 values give min–max; fewer give no interval", () => {
  assert.deepEqual(medianInterval([3, 1, 2, 5, 4]), {
    low: 1,
    high: 5,
    confidence: 1 - 2 / 32,
  });
  for (const n of [0, 1, 2, 3, 4]) {
    assert.equal(
      medianInterval(Array.from({ length: n }, (_, i) => i)),
      null,
      `${n} values`,
    );
  }
});

test("medianInterval: every interval holds its confidence, at least CONFIDENCE", () => {
  for (let n = 5; n <= 60; n++) {
    const interval = medianInterval(Array.from({ length: n }, (_, i) => i))!;
    assert.ok(interval.confidence >= CONFIDENCE, `${n} values`);
    // The next narrower interval would fall under CONFIDENCE: the chance of
    // k or fewer values under the median, by direct sum.
    const k = interval.low + 1;
    if (2 * (k + 1) <= n + 1) {
      let below = 0;
      for (let j = 0; j <= k; j++) below += choose(n, j) / 2 ** n;
      assert.ok(1 - 2 * below < CONFIDENCE, `${n} values: not the narrowest`);
    }
  }
});

function choose(n: number, k: number): number {
  let c = 1;
  for (let i = 1; i <= k; i++) c = c * (n - k + i) / i;
  return c;
}
