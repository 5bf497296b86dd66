import { describe, expect, it } from 'vitest';
import { geomean, mean, median, p95, quantile, summarize } from '../../../bench/lib/stats.js';

const oneToHundred = Array.from({ length: 100 }, (_, i) => i + 1);

describe('median', () => {
  it('is the middle value of an odd-sized sample', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([7])).toBe(7);
  });

  it('is the mean of the two middle values of an even-sized sample', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median(oneToHundred)).toBe(50.5);
  });

  it('does not reorder the caller’s array', () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });
});

describe('p95', () => {
  it('interpolates between the nearest ranks (type 7, as R and NumPy)', () => {
    // position (100 - 1) × 0.95 = 94.05: between 95 and 96.
    expect(p95(oneToHundred)).toBeCloseTo(95.05, 10);
    // position 19 × 0.95 = 18.05 in 1..20.
    expect(p95(Array.from({ length: 20 }, (_, i) => i + 1))).toBeCloseTo(19.05, 10);
  });

  it('is pulled up by a slow tail that the median ignores', () => {
    const values = [...Array(19).fill(1), 100];
    expect(median(values)).toBe(1);
    expect(p95(values)).toBeCloseTo(1 + 0.05 * 99, 10);
  });

  it('is the value itself for a constant or single-value sample', () => {
    expect(p95([5, 5, 5])).toBe(5);
    expect(p95([42])).toBe(42);
  });
});

describe('quantile', () => {
  it('gives the extremes at 0 and 1', () => {
    expect(quantile([9, 2, 5], 0)).toBe(2);
    expect(quantile([9, 2, 5], 1)).toBe(9);
  });

  it('refuses an empty sample or a q outside [0, 1]', () => {
    expect(() => quantile([], 0.5)).toThrow(RangeError);
    expect(() => quantile([1], 1.5)).toThrow(RangeError);
    expect(() => quantile([1], Number.NaN)).toThrow(RangeError);
  });
});

describe('mean, geomean, summarize', () => {
  it('averages ratios geometrically', () => {
    expect(geomean([2, 0.5])).toBeCloseTo(1, 12);
    expect(geomean([0.01, 0.1, 1])).toBeCloseTo(0.1, 12);
    expect(() => geomean([1, 0])).toThrow(RangeError);
  });

  it('summarizes a sample', () => {
    expect(mean([1, 2, 3, 6])).toBe(3);
    expect(summarize([4, 1, 3, 2])).toEqual({
      n: 4,
      min: 1,
      median: 2.5,
      p95: expect.closeTo(3.85, 10),
      max: 4,
      mean: 2.5,
    });
  });
});
