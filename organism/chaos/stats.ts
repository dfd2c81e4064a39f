/**
 * Order statistics for benchmark samples. Percentiles use the nearest-rank method (the
 * value at rank ⌈p·n⌉ of the sorted samples), so every reported figure is a sample that
 * was really measured; with 20 samples p95 is the 19th and p50 the 10th.
 */

export interface Distribution {
  n: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of already sorted samples; NaN when there are none. */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function percentile(samples: readonly number[], p: number): number {
  return percentileSorted([...samples].sort((a, b) => a - b), p);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/** min, p50, p95, max and mean of the finite samples (NaN fields when there are none). */
export function distribution(samples: readonly number[]): Distribution {
  const sorted = samples.filter(Number.isFinite).sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p50: percentileSorted(sorted, 50),
    p95: percentileSorted(sorted, 95),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
  };
}

/** Rounds for reports: `digits` decimals, NaN and infinities become null (valid JSON). */
export function round(value: number, digits = 1): number | null {
  if (!Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
