import { describe, expect, it } from 'vitest';
import { histogramQuantile, rebucket } from './latency-histogram.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];

describe('histogramQuantile', () => {
  it('interpolates linearly inside the bucket the rank falls in, as histogram_quantile does', () => {
    // 10 observations: 2 in (0, 0.001], 6 in (0.001, 0.01], 2 in (0.01, 0.1].
    const counts = [2, 6, 2, 0, 0];
    // rank 5 → 3 into the second bucket's 6: 0.001 + 0.009 × 3/6.
    expect(histogramQuantile(BOUNDS, counts, 0.5)).toBeCloseTo(0.0055, 12);
    // rank 9.5 → 1.5 into the third bucket's 2: 0.01 + 0.09 × 0.75.
    expect(histogramQuantile(BOUNDS, counts, 0.95)).toBeCloseTo(0.0775, 12);
    // The first bucket starts at 0: rank 1 of its 2 → half its bound.
    expect(histogramQuantile(BOUNDS, counts, 0.1)).toBeCloseTo(0.0005, 12);
    expect(histogramQuantile(BOUNDS, counts, 1)).toBeCloseTo(0.1, 12);
  });

  it('returns the highest finite bound when the quantile is in +Inf', () => {
    expect(histogramQuantile(BOUNDS, [0, 0, 0, 1, 9], 0.5)).toBe(1);
  });

  it('skips empty buckets below the rank', () => {
    expect(histogramQuantile(BOUNDS, [0, 0, 4, 0, 0], 0.5)).toBeCloseTo(0.055, 12);
  });

  it('is NaN for an empty histogram and ±Inf outside [0, 1], like PromQL', () => {
    expect(histogramQuantile(BOUNDS, [0, 0, 0, 0, 0], 0.5)).toBeNaN();
    expect(histogramQuantile(BOUNDS, [1, 0, 0, 0, 0], -0.1)).toBe(-Infinity);
    expect(histogramQuantile(BOUNDS, [1, 0, 0, 0, 0], 1.1)).toBe(Infinity);
    expect(histogramQuantile(BOUNDS, [1, 0, 0, 0, 0], NaN)).toBeNaN();
  });

  it('refuses counts that do not match the bounds', () => {
    expect(() => histogramQuantile(BOUNDS, [1, 2, 3, 4], 0.5)).toThrow(/4 bounds has 5 counts/);
  });
});

describe('rebucket', () => {
  it('is the identity on the same bounds', () => {
    expect(rebucket(BOUNDS, [1, 2, 3, 4, 5], BOUNDS)).toEqual([1, 2, 3, 4, 5]);
  });

  it('is exact from a subset of the bounds', () => {
    expect(rebucket([0.01, 1], [3, 4, 5], BOUNDS)).toEqual([0, 3, 0, 4, 5]);
  });

  it('moves counts from unknown bounds up to the next bound, never down', () => {
    // 0.005 is not a target bound: its counts go to 0.01; 2 (above every bound) to +Inf.
    expect(rebucket([0.005, 2], [7, 1, 2], BOUNDS)).toEqual([0, 7, 0, 0, 3]);
  });
});
