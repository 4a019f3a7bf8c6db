import { describe, expect, it } from 'vitest';
import { Backoff, DEFAULT_BACKOFF, jitter } from './backoff.js';

/** Each call returns the next value, so a test pins exactly what "random" is. */
function sequence(...values: number[]): () => number {
  return () => {
    const next = values.shift();
    if (next === undefined) throw new Error('the test ran out of random numbers');
    return next;
  };
}

describe('Backoff', () => {
  it('doubles the ceiling per failure from 1 s up to the 60 s cap', () => {
    const backoff = new Backoff({ ...DEFAULT_BACKOFF, random: () => 0.999999 });
    const ceilings = Array.from({ length: 10 }, () => Math.round(backoff.next()));
    expect(ceilings).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60, 60].map((s) => s * 1000));
    expect(backoff.failures).toBe(10);
  });

  it('waits a uniformly random share of the ceiling (full jitter)', () => {
    const backoff = new Backoff({ baseMs: 1000, capMs: 60_000, random: sequence(0, 0.5, 0.25) });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([0, 1000, 1000]);
  });

  it('stays within [0, cap) with the real Math.random, however long it fails', () => {
    const backoff = new Backoff();
    for (let i = 0; i < 2000; i++) {
      const wait = backoff.next();
      expect(wait).toBeGreaterThanOrEqual(0);
      expect(wait).toBeLessThan(60_000);
    }
  });

  it('starts from the base again after a success', () => {
    const backoff = new Backoff({ ...DEFAULT_BACKOFF, random: () => 0.999999 });
    for (let i = 0; i < 5; i++) backoff.next();
    backoff.reset();
    expect(backoff.failures).toBe(0);
    expect(Math.round(backoff.next())).toBe(1000);
  });

  it('rejects a schedule that cannot work', () => {
    expect(() => new Backoff({ baseMs: 0, capMs: 10 })).toThrow(/0 < baseMs <= capMs/);
    expect(() => new Backoff({ baseMs: 100, capMs: 10 })).toThrow(/baseMs 100, capMs 10/);
  });
});

describe('jitter', () => {
  it('moves an interval by at most ±10%', () => {
    expect(jitter(30_000, 0.1, () => 0)).toBe(27_000);
    expect(jitter(30_000, 0.1, () => 0.5)).toBe(30_000);
    expect(jitter(30_000, 0.1, () => 0.999999)).toBeCloseTo(33_000, -1);
    for (let i = 0; i < 1000; i++) {
      const ms = jitter(30_000, 0.1);
      expect(ms).toBeGreaterThanOrEqual(27_000);
      expect(ms).toBeLessThan(33_000);
    }
  });
});
