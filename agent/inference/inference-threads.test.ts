import { describe, expect, it } from 'vitest';
import { inferenceThreads } from './inference-threads.js';

describe('inferenceThreads', () => {
  it('uses every hardware thread of the device when none is asked for', () => {
    expect(inferenceThreads(0, 4)).toBe(4);
    expect(inferenceThreads(0, 1)).toBe(1);
  });

  it('gives what is asked for, but never more than the device has', () => {
    expect(inferenceThreads(2, 4)).toBe(2);
    expect(inferenceThreads(4, 4)).toBe(4);
    expect(inferenceThreads(8, 4)).toBe(4);
    expect(inferenceThreads(8, 1)).toBe(1);
  });
});
