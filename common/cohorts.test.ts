import { describe, expect, it } from 'vitest';
import { COHORTS, cohortOf, cohortRanges, cohortsIn } from './cohorts.js';
import { trackKey } from './names.js';

describe('cohorts', () => {
  it('puts a device in the same cohort every time, and spreads devices evenly', () => {
    expect(cohortOf('d-1')).toBe(cohortOf('d-1'));
    const counts = new Array<number>(COHORTS).fill(0);
    for (let i = 0; i < 100_000; i++) counts[cohortOf(`device-${i}`)]! += 1;
    // 1,000 expected per cohort; a fair hash stays well within ±20%.
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1_200);
  });

  it('turns cumulative percents into cohort ranges covering every cohort once', () => {
    expect(cohortRanges([10, 50, 100])).toEqual([
      { from: 0, to: 10 },
      { from: 10, to: 50 },
      { from: 50, to: 100 },
    ]);
    expect(cohortRanges([0.5, 100])).toEqual([
      { from: 0, to: 1 },
      { from: 1, to: 100 },
    ]);
    expect(cohortRanges([30]).flatMap(cohortsIn)).toEqual([...Array(COHORTS).keys()]);
  });

  it('names a track key per class and cohort, and refuses what is not a subject token', () => {
    expect(trackKey('x86_64-vnni-nofp16-cpu-8g', 7)).toBe('track.x86_64-vnni-nofp16-cpu-8g.07');
    expect(() => trackKey('mips\n; DROP', 1)).toThrow(/not a subject token/);
    expect(() => trackKey('a.b', 1)).toThrow(/not a subject token/);
    expect(() => trackKey('x', 100)).toThrow(/0\.\.99/);
  });
});
