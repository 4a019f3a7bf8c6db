import { describe, expect, it } from 'vitest';
import { benchmarkSignal, classWorkflowId, measurementsKey, rolloutWorkflowId } from './rollout.js';

const report = {
  variant: 'int8_static_minmax',
  modelSha256: 'a'.repeat(64),
  latency: { p50Ms: 1, p95Ms: 2, p99Ms: 3, cv: 0.04, runs: 100, roundP95Ms: [1.9, 2, 2.2] },
  accuracy: 0.91,
  top1Agreement: 0.99,
  error: '',
};

describe('benchmarkSignal', () => {
  it('carries the latency and the holdout scores of a run', () => {
    expect(benchmarkSignal('d-1', report)).toEqual({
      deviceId: 'd-1',
      variant: 'int8_static_minmax',
      modelSha256: 'a'.repeat(64),
      p50Ms: 1,
      p95Ms: 2,
      p99Ms: 3,
      cv: 0.04,
      runs: 100,
      roundP95Ms: [1.9, 2, 2.2],
      accuracy: 0.91,
      agreement: 0.99,
      error: null,
    });
  });

  it('gives a failed run no accuracy, so it never counts as a measurement', () => {
    const failed = benchmarkSignal('d-1', {
      ...report,
      latency: undefined,
      accuracy: 0,
      top1Agreement: 0,
      error: 'refused: bad_signature',
    });
    expect(failed).toMatchObject({ accuracy: null, agreement: null, p95Ms: 0 });
    expect(failed.error).toBe('refused: bad_signature');
  });
});

describe('ids and keys', () => {
  it('names workflows and KV keys from the rollout id and class', () => {
    expect(rolloutWorkflowId('r1')).toBe('rollout-r1');
    expect(classWorkflowId('r1', 'x86_64-vnni-nofp16-cpu-8g')).toBe(
      'rollout-r1-class-x86_64-vnni-nofp16-cpu-8g',
    );
    // KV keys allow [-/_=.a-zA-Z0-9]; an architecture name with other characters is made safe.
    expect(measurementsKey('mobilenet v2', 'c')).toBe('measurements.mobilenet_v2.c');
  });
});
