import { describe, expect, it } from 'vitest';
import { percentile, summarizeLatencies, summarizeRounds } from './latency-stats.js';

describe('percentile', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100

  it('is the nearest-rank sample', () => {
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    expect(percentile([10, 20, 30, 40], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 51)).toBe(30);
    expect(percentile([7], 1)).toBe(7);
  });

  it('refuses what has no answer', () => {
    expect(() => percentile([], 50)).toThrow(/no samples/);
    expect(() => percentile([1], 0)).toThrow(/not in \(0, 100\]/);
  });
});

describe('summarizeRounds', () => {
  it('takes the median of the rounds, so one disturbed round does not move the percentiles', () => {
    const steady = Array.from({ length: 20 }, (_, i) => 1 + i / 100);
    const disturbed = steady.map((v) => v * 5);
    const summary = summarizeRounds([steady, disturbed, steady.map((v) => v + 0.01)]);
    expect(summary.p95Ms).toBeCloseTo(1.19);
    const [first, second, third] = summary.roundP95Ms;
    expect([first, second, third].map((v) => v!.toFixed(2))).toEqual(['1.18', '5.90', '1.19']);
    // Mean, cv and the run count are over every run: the disturbance is not hidden.
    expect(summary.runs).toBe(60);
    expect(summary.meanMs).toBeGreaterThan(2);
  });

  it('is summarizeLatencies for one round', () => {
    const runs = [4, 2, 8, 6, 10];
    expect(summarizeRounds([runs])).toEqual(summarizeLatencies(runs));
  });
});

describe('summarizeLatencies', () => {
  it('summarizes unsorted runs', () => {
    const runs = [4, 2, 8, 6, 10, 1, 3, 5, 7, 9];
    expect(summarizeLatencies(runs)).toEqual({
      p50Ms: 5,
      p90Ms: 9,
      p95Ms: 10,
      p99Ms: 10,
      meanMs: 5.5,
      cv: Math.sqrt(8.25) / 5.5,
      runs: 10,
      roundP95Ms: [10],
    });
  });

  it('has a coefficient of variation of 0 for identical runs', () => {
    expect(summarizeLatencies([2, 2, 2]).cv).toBe(0);
    expect(summarizeLatencies([0, 0]).cv).toBe(0);
  });

  it('keeps the percentiles in order, as the control plane requires', () => {
    const runs = Array.from({ length: 1000 }, () => Math.random() * 10);
    const s = summarizeLatencies(runs);
    expect(s.p50Ms).toBeLessThanOrEqual(s.p90Ms);
    expect(s.p90Ms).toBeLessThanOrEqual(s.p95Ms);
    expect(s.p95Ms).toBeLessThanOrEqual(s.p99Ms);
  });
});
