/**
 * Order statistics for benchmark samples. Quantiles interpolate linearly
 * between the two nearest ranks (Hyndman & Fan type 7, the default of R,
 * NumPy and Excel's PERCENTILE.INC), so the median of an even-sized sample
 * is the mean of its two middle values.
 */

/** The q-quantile (0 ≤ q ≤ 1) of values; values need not be sorted. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError('quantile of an empty sample');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is not within [0, 1]`);
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const lower = sorted[below]!;
  const upper = sorted[Math.min(below + 1, sorted.length - 1)]!;
  return lower + (upper - lower) * (position - below);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export function p95(values: readonly number[]): number {
  return quantile(values, 0.95);
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('mean of an empty sample');
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** Geometric mean: the right average for ratios (a 2× and a 0.5× cancel out). */
export function geomean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('geometric mean of an empty sample');
  if (values.some((v) => !(v > 0))) throw new RangeError('geometric mean needs positive values');
  return Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);
}

export interface Summary {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
  mean: number;
}

export function summarize(values: readonly number[]): Summary {
  return {
    n: values.length,
    min: Math.min(...values),
    median: median(values),
    p95: p95(values),
    max: Math.max(...values),
    mean: mean(values),
  };
}
