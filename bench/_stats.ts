// Statistics the benchmarks' verdicts rest on.

/** The least confidence of an interval a verdict rests on. */
export const CONFIDENCE = 0.9;

/** A confidence interval. */
export interface Interval {
  low: number;
  high: number;
  /** The chance that the interval holds the true median (0 to 1). */
  confidence: number;
}

/**
 * A confidence interval for the median of `values` that assumes nothing of
 * their distribution: the k-th smallest to the k-th largest value, with the
 * largest k whose interval still holds the median with `CONFIDENCE` (each
 * value is on either side of the median with chance 1/2). With 8 rounds it
 * is the 2nd to the 7th value (93 %); under 5 values, even min–max holds
 * less than 90 %: `null`.
 */
export function medianInterval(values: number[]): Interval | null {
  const n = values.length;
  const sorted = [...values].sort((a, b) => a - b);
  let best: Interval | null = null;
  let outside = 0; // P(fewer than k of n values below the median)
  let ways = 1; // n choose (k - 1)
  for (let k = 1; 2 * k <= n + 1; k++) {
    outside += ways / 2 ** n;
    ways = ways * (n - k + 1) / k;
    const confidence = 1 - 2 * outside;
    if (confidence < CONFIDENCE) break;
    best = { low: sorted[k - 1], high: sorted[n - k], confidence };
  }
  return best;
}
