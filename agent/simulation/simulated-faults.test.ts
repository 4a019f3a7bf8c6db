import { describe, expect, it } from 'vitest';
import { flipShareFor, globMatches, isFlipped } from './simulated-faults.js';

const flippedSamples = (count: number, share: number) =>
  Array.from({ length: count }, (_, i) => i).filter((i) => isFlipped(i, share));

describe('isFlipped', () => {
  it('flips floor(samples × share) samples, spread evenly', () => {
    expect(flippedSamples(10, 0.5)).toEqual([1, 3, 5, 7, 9]);
    expect(flippedSamples(10, 0.3)).toEqual([3, 6, 9]);
    expect(flippedSamples(20, 0.25)).toEqual([3, 7, 11, 15, 19]);
    expect(flippedSamples(100, 0.57)).toHaveLength(57);
    expect(flippedSamples(30, 0.1)).toHaveLength(3);
  });

  it('flips none at 0 and all at 1', () => {
    expect(flippedSamples(10, 0)).toEqual([]);
    expect(flippedSamples(10, 1)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('globMatches', () => {
  it('matches whole variant names with * and ?', () => {
    expect(globMatches('int8_*', 'int8_static_minmax')).toBe(true);
    expect(globMatches('int8_*', 'int8_')).toBe(true);
    expect(globMatches('int8_*', 'fp32')).toBe(false);
    expect(globMatches('int8_*', 'x_int8_dynamic')).toBe(false);
    expect(globMatches('*', 'fp16')).toBe(true);
    expect(globMatches('fp??', 'fp16')).toBe(true);
    expect(globMatches('fp??', 'fp8')).toBe(false);
    expect(globMatches('fp32', 'fp32')).toBe(true);
  });

  it('takes other characters literally', () => {
    expect(globMatches('int8.static', 'int8.static')).toBe(true);
    expect(globMatches('int8.static', 'int8_static')).toBe(false);
    expect(globMatches('a+(b)', 'a+(b)')).toBe(true);
  });
});

describe('flipShareFor', () => {
  const faults = {
    accuracyFaults: [
      { variants: 'int8_static_*', flipShare: 0.6 },
      { variants: 'int8_*', flipShare: 0.3 },
    ],
  };

  it('is the first matching fault’s share', () => {
    expect(flipShareFor(faults, 'int8_static_minmax')).toBe(0.6);
    expect(flipShareFor(faults, 'int8_dynamic')).toBe(0.3);
  });

  it('is 0 for variants no fault names, and on devices without faults', () => {
    expect(flipShareFor(faults, 'fp32')).toBe(0);
    expect(flipShareFor(undefined, 'int8_dynamic')).toBe(0);
    expect(flipShareFor({ accuracyFaults: [] }, 'int8_dynamic')).toBe(0);
  });
});
