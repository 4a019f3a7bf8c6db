import { describe, expect, it } from 'vitest';
import { parseRolloutSpec } from '../../common/rollout-spec.js';
import type { ClassStatus, RolloutStatus } from '../../common/rollout.js';
import { activityLine, classLine, progressEvents, progressLines } from './progress-view.js';

const spec = parseRolloutSpec({
  rolloutId: 'r-1',
  dataset: { source: 'digits' },
  source: { kind: 'distill', student: { architecture: 'small_cnn' } },
});

const cls = (hardwareClass: string, overrides: Partial<ClassStatus> = {}): ClassStatus => ({
  hardwareClass,
  phase: 'rolling_out',
  devicesTotal: 4,
  devicesDone: 1,
  devicesFailed: 0,
  unresponsive: [],
  unresponsiveCount: 0,
  canarySeed: 1,
  canaries: ['d-1'],
  candidates: [],
  chosen: null,
  waves: [
    {
      index: 0,
      cohorts: null,
      devices: 1,
      state: 'passed',
      activated: 1,
      failed: 0,
      unresponsive: 0,
      servingP95Ms: null,
    },
    {
      index: 1,
      cohorts: null,
      devices: 2,
      state: 'baking',
      activated: 2,
      failed: 0,
      unresponsive: 0,
      servingP95Ms: null,
    },
    {
      index: 2,
      cohorts: null,
      devices: 1,
      state: 'pending',
      activated: 0,
      failed: 0,
      unresponsive: 0,
      servingP95Ms: null,
    },
  ],
  reason: '',
  updatedAt: '2025-01-02T03:04:05.000Z',
  ...overrides,
});

const status = (overrides: Partial<RolloutStatus> = {}): RolloutStatus => ({
  rolloutId: 'r-1',
  modelId: null,
  phase: 'rolling_out',
  detail: '2 hardware class(es)',
  startedAt: '2025-01-02T03:04:05.000Z',
  updatedAt: '2025-01-02T03:05:05.000Z',
  finishedAt: null,
  spec,
  teacher: null,
  student: null,
  labels: null,
  classes: [
    cls('x86_64-vnni-nofp16-cpu-32g'),
    cls('aarch64-neon-nofp16-cpu-4g', { phase: 'benchmarking', devicesDone: 0, waves: [] }),
  ],
  skippedClasses: [],
  error: null,
  ...overrides,
});

describe('progress view', () => {
  it('a training heartbeat is an epoch progress bar with loss and accuracy', () => {
    const line = activityLine(
      {
        activity: 'prepare_teacher',
        phase: 'teacher',
        epoch: 2,
        epochs: 4,
        batch: 50,
        batches: 100,
        loss: 0.41234,
        accuracy: 0.881,
        attempt: 1,
      },
      true,
    );
    // (2 - 1 + 0.5) / 4 = 37.5%
    expect(line).toBe(
      'teacher training epoch 2/4 [########............] 38%  loss 0.412  train acc 88.1%',
    );
  });

  it('a variant heartbeat names the format; a retry says why', () => {
    expect(
      activityLine(
        {
          activity: 'build_variants',
          phase: 'variants',
          format: 'int8_static_minmax',
          step: 'calibrating',
          attempt: 2,
          lastFailure: 'worker lost',
        },
        true,
      ),
    ).toBe('building int8_static_minmax: calibrating (attempt 2, after: worker lost)');
    expect(
      activityLine({ activity: 'distill_student', phase: 'starting', attempt: 1 }, true),
    ).toBeNull();
  });

  it('a class line shows its phase, devices done of total, and each wave', () => {
    expect(classLine(cls('x86_64-vnni-nofp16-cpu-32g'), true)).toBe(
      'x86_64-vnni-nofp16-cpu-32g  rolling out   devices 1/4 [###.......]  waves canary:ok 1:baking 2:-',
    );
  });

  it('lines for a terminal; events for a log, one per thing that changed', () => {
    const lines = progressLines(status(), [], { elapsedSeconds: 60, ascii: false });
    expect(lines[0]).toBe('rollout r-1  rolling out  1m 00s  2 hardware class(es)');
    expect(lines).toHaveLength(3);
    // Class names are padded to the longest, so the columns line up.
    expect(lines[2]).toMatch(/^ {2}aarch64-neon-nofp16-cpu-4g {2}benchmarking/);
    const before = progressEvents(status(), [], true);
    const after = progressEvents(
      status({
        classes: [cls('x86_64-vnni-nofp16-cpu-32g', { devicesDone: 3 }), status().classes[1]!],
      }),
      [],
      true,
    );
    const changed = [...after].filter(([k, v]) => before.get(k) !== v).map(([k]) => k);
    expect(changed).toEqual(['class:x86_64-vnni-nofp16-cpu-32g']);
  });
});
