import { describe, expect, it } from 'vitest';
import { COHORTS } from '../../common/cohorts.js';
import { judgeWave, planWaves } from './waves.js';

/** Online devices per cohort: `count` devices in each of `cohorts`. */
const online = (cohorts: number[], count = 1) => {
  const perCohort = new Array<number>(COHORTS).fill(0);
  for (const c of cohorts) perCohort[c] = count;
  return perCohort;
};

describe('planWaves', () => {
  it('moves every cohort, in the ranges the percents give, with their online devices', () => {
    const waves = planWaves([10, 50, 100], new Array<number>(COHORTS).fill(2));
    expect(waves).toEqual([
      { range: { from: 0, to: 10 }, online: 20 },
      { range: { from: 10, to: 50 }, online: 80 },
      { range: { from: 50, to: 100 }, online: 100 },
    ]);
  });

  it('joins a range without online devices to the next, and a last empty one to the one before', () => {
    // Devices only in cohorts 30 and 60: the 10% range has nobody to judge it by.
    expect(planWaves([10, 50, 100], online([30, 60]))).toEqual([
      { range: { from: 0, to: 50 }, online: 1 },
      { range: { from: 50, to: 100 }, online: 1 },
    ]);
    expect(planWaves([10, 50, 100], online([5]))).toEqual([
      { range: { from: 0, to: 100 }, online: 1 },
    ]);
  });

  it('gives one wave over every cohort when no device is online', () => {
    expect(planWaves([10, 50, 100], online([]))).toEqual([
      { range: { from: 0, to: 100 }, online: 0 },
    ]);
  });
});

describe('judgeWave', () => {
  const base = {
    maxFailedShare: 0.2,
    minSuccessShare: 0.9,
    maxP95Regression: 0.25,
    baselineP95Ms: 2,
    servingP95Ms: 2.2,
  };

  it('passes a wave whose devices all serve the new model', () => {
    expect(judgeWave({ ...base, expected: 10, succeeded: 10, failed: 0 })).toMatchObject({
      passed: true,
      activated: 10,
      unresponsive: 0,
      servingP95Ms: 2.2,
    });
  });

  it('fails a wave in which too many devices stay silent: silence counts against the quorum', () => {
    // 1 activated and 4,999 silent used to pass: nobody failed.
    const judged = judgeWave({ ...base, expected: 5_000, succeeded: 1, failed: 0 });
    expect(judged).toMatchObject({ passed: false, unresponsive: 4_999 });
    expect(judged.reason).toMatch(
      /1 of 5000 online devices serve the new model .*the quorum is 90%/,
    );
    // 20% silent is below a 90% quorum; 10% silent is not.
    expect(judgeWave({ ...base, expected: 100, succeeded: 80, failed: 0 }).passed).toBe(false);
    expect(judgeWave({ ...base, expected: 100, succeeded: 90, failed: 0 }).passed).toBe(true);
  });

  it('fails a wave whose failed share is over the limit', () => {
    const judged = judgeWave({ ...base, expected: 4, succeeded: 1, failed: 3 });
    expect(judged.passed).toBe(false);
    expect(judged.reason).toMatch(/3 of 4 devices failed \(75%, the limit is 20%\)/);
  });

  it('fails a wave whose serving p95 regressed against the canaries beyond the limit', () => {
    const judged = judgeWave({ ...base, expected: 2, succeeded: 2, failed: 0, servingP95Ms: 3 });
    expect(judged.passed).toBe(false);
    expect(judged.reason).toMatch(/serving p95 3.00 ms is 50% over the canaries' 2.00 ms/);
  });

  it('does not judge latency it cannot compare', () => {
    for (const p95 of [{ servingP95Ms: null }, { baselineP95Ms: null }]) {
      expect(judgeWave({ ...base, ...p95, expected: 2, succeeded: 2, failed: 0 }).passed).toBe(
        true,
      );
    }
  });

  it('fails a wave with nobody to judge it by', () => {
    const judged = judgeWave({ ...base, expected: 0, succeeded: 0, failed: 0 });
    expect(judged).toMatchObject({ passed: false });
    expect(judged.reason).toMatch(/no device of the wave was online/);
  });
});
