import { describe, expect, it } from 'vitest';
import { judgeWave, splitWaves } from './waves.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `d${i}`);

describe('splitWaves', () => {
  it.each([
    { n: 10, canaries: 1, percents: [10, 50, 100], sizes: [1, 1, 4, 4] },
    { n: 3, canaries: 1, percents: [10, 50, 100], sizes: [1, 1, 1] },
    { n: 1, canaries: 1, percents: [10, 50, 100], sizes: [1] },
    { n: 4, canaries: 2, percents: [100], sizes: [2, 2] },
    { n: 5, canaries: 0, percents: [50], sizes: [3, 2] },
  ])('$n devices, $canaries canaries, $percents → $sizes', ({ n, canaries, percents, sizes }) => {
    const devices = ids(n);
    const waves = splitWaves(devices, devices.slice(0, canaries), percents);
    expect(waves.map((w) => w.length)).toEqual(sizes);
    expect(waves.flat().sort()).toEqual([...devices].sort());
  });
});

describe('judgeWave', () => {
  const base = { maxFailedShare: 0.2, maxP95Regression: 0.25, baselineP95Ms: 2 };

  it('passes a healthy wave and leaves unresponsive devices out of the share', () => {
    const judged = judgeWave({
      ...base,
      outcomes: { a: 'activated', b: 'activated', c: 'unresponsive' },
      servingP95Ms: { a: 2.1, b: 2.3 },
    });
    expect(judged).toMatchObject({
      passed: true,
      activated: 2,
      unresponsive: 1,
      servingP95Ms: 2.2,
    });
  });

  it('fails a wave whose failed share is over the limit', () => {
    const judged = judgeWave({
      ...base,
      outcomes: { a: 'activated', b: 'failed', c: 'activated', d: 'activated' },
      servingP95Ms: {},
    });
    expect(judged.passed).toBe(false);
    expect(judged.reason).toMatch(/1 of 4 devices failed \(25%, the limit is 20%\)/);
  });

  it('fails a wave whose serving p95 regressed against the canaries', () => {
    const judged = judgeWave({
      ...base,
      outcomes: { a: 'activated', b: 'activated' },
      servingP95Ms: { a: 3, b: 2.8 },
    });
    expect(judged.passed).toBe(false);
    expect(judged.reason).toMatch(/45% over the canaries' 2.00 ms/);
  });

  it('does not judge latency without a baseline', () => {
    const judged = judgeWave({
      ...base,
      baselineP95Ms: null,
      outcomes: { a: 'activated' },
      servingP95Ms: { a: 30 },
    });
    expect(judged.passed).toBe(true);
  });

  it('fails a wave where nobody answered', () => {
    const judged = judgeWave({ ...base, outcomes: { a: 'unresponsive' }, servingP95Ms: {} });
    expect(judged).toMatchObject({ passed: false, reason: 'no device of the wave reported back' });
  });
});
