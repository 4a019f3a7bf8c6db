import { describe, expect, it } from 'vitest';
import { cohortOf } from '../../common/cohorts.js';
import { CanaryDraw } from './canaries.js';

const fleet = (n: number) => Array.from({ length: n }, (_, i) => `d-${i}`);
const draw = (ids: string[], count: number, seed: number, named: string[] = []) => {
  const d = new CanaryDraw(count, seed, named);
  for (const id of ids) d.offer(id);
  return d.result();
};

describe('CanaryDraw', () => {
  it('is the same for the same seed, whatever order the registry streams the devices in', () => {
    const ids = fleet(1_000);
    const a = draw(ids, 5, 42).canaries;
    expect(a).toHaveLength(5);
    expect(draw([...ids].reverse(), 5, 42).canaries).toEqual(a);
    expect(draw(ids, 5, 43).canaries).not.toEqual(a);
  });

  it('does not favour the first ids: over many seeds, every part of the fleet is drawn', () => {
    const ids = fleet(1_000);
    const drawn = new Set<string>();
    for (let seed = 0; seed < 200; seed++)
      for (const c of draw(ids, 1, seed).canaries) drawn.add(c);
    expect(drawn.size).toBeGreaterThan(150);
    expect([...drawn].some((id) => Number(id.slice(2)) >= 500)).toBe(true);
  });

  it('spreads canaries over cohorts before taking a second from one', () => {
    const canaries = draw(fleet(10_000), 20, 7).canaries;
    expect(new Set(canaries.map(cohortOf)).size).toBe(20);
    // Three devices all in one cohort: all three are still drawn when three are asked for.
    const sameCohort = fleet(5_000)
      .filter((id) => cohortOf(id) === 3)
      .slice(0, 3);
    expect(draw(sameCohort, 3, 1).canaries.sort()).toEqual([...sameCohort].sort());
  });

  it('takes named devices first, says which were not there, and skips ineligible ones', () => {
    const result = draw(fleet(100), 3, 1, ['d-50', 'missing']);
    expect(result.canaries[0]).toBe('d-50');
    expect(result.canaries).toHaveLength(3);
    expect(result.missingNamed).toEqual(['missing']);
    const d = new CanaryDraw(2, 1);
    d.offer('degraded', false);
    d.offer('healthy');
    expect(d.result().canaries).toEqual(['healthy']);
  });
});
