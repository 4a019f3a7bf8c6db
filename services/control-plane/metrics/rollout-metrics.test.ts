import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  ROLLOUT_DEFAULTS,
  rolloutRecordKey,
  type ClassStatus,
  type RolloutStatus,
} from '../../../common/rollout.js';
import { RECENT_FINISHED_ROLLOUTS, RolloutMetrics } from './rollout-metrics.js';

function classStatus(overrides: Partial<ClassStatus>): ClassStatus {
  return {
    hardwareClass: 'aarch64-neon-nofp16-cpu-4g',
    phase: 'rolling_out',
    devicesTotal: 10,
    devicesDone: 4,
    devicesFailed: 1,
    unresponsive: ['d-1'],
    unresponsiveCount: 0,
    canarySeed: 1,
    canaries: ['d-2'],
    candidates: [],
    chosen: null,
    waves: [],
    reason: '',
    updatedAt: '2026-11-28T10:00:00.000Z',
    ...overrides,
  };
}

function rollout(id: string, overrides: Partial<RolloutStatus> = {}): RolloutStatus {
  return {
    rolloutId: id,
    modelId: `${id}-small_cnn`,
    phase: 'rolling_out',
    detail: '',
    startedAt: '2026-11-28T09:00:00.000Z',
    updatedAt: '2026-11-28T10:00:00.000Z',
    finishedAt: null,
    spec: {
      rolloutId: id,
      dataset: { source: 'digits' },
      source: { kind: 'distill', teacher: {}, student: { architecture: 'small_cnn' } },
      ...ROLLOUT_DEFAULTS,
    },
    teacher: null,
    student: null,
    labels: 'dataset',
    classes: [classStatus({})],
    skippedClasses: [],
    error: null,
    ...overrides,
  };
}

function finished(id: string, minute: number, phase: RolloutStatus['phase'] = 'succeeded') {
  const at = new Date(Date.UTC(2026, 10, 28, 11, minute)).toISOString();
  return rollout(id, { phase, finishedAt: at, updatedAt: at });
}

/** The metric lines (no comments) of the registry. */
async function lines(register: Registry): Promise<string[]> {
  return (await register.metrics()).split('\n').filter((l) => l && !l.startsWith('#'));
}

describe('RolloutMetrics', () => {
  it('exports phases, devices per class and state, outcomes and rollbacks from the records', async () => {
    const register = new Registry();
    const metrics = new RolloutMetrics(register);
    const rolledBack = classStatus({
      hardwareClass: 'x86_64-avx2-nofp16-cpu-8g',
      phase: 'rolled_back',
      devicesTotal: 4,
      devicesDone: 0,
      devicesFailed: 2,
      unresponsive: [],
      unresponsiveCount: 0,
      canarySeed: 1,
      waves: [
        {
          index: 0,
          cohorts: null,
          devices: 1,
          state: 'passed',
          activated: 1,
          failed: 0,
          unresponsive: 0,
          servingP95Ms: 2,
        },
        {
          index: 1,
          cohorts: null,
          devices: 2,
          state: 'rolled_back',
          activated: 2,
          failed: 2,
          unresponsive: 0,
          servingP95Ms: 9,
        },
      ],
    });
    metrics.apply(rolloutRecordKey('r1'), rollout('r1'));
    metrics.apply(
      rolloutRecordKey('r2'),
      finished('r2', 5, 'partially_succeeded') satisfies RolloutStatus,
    );
    metrics.apply(rolloutRecordKey('r2'), {
      ...finished('r2', 5, 'partially_succeeded'),
      classes: [classStatus({ phase: 'succeeded', devicesDone: 9, devicesFailed: 0 }), rolledBack],
    });
    const out = await lines(register);
    expect(out).toEqual(
      expect.arrayContaining([
        'edgeforge_rollouts{phase="rolling_out"} 1',
        'edgeforge_rollouts{phase="partially_succeeded"} 1',
        'edgeforge_rollouts{phase="failed"} 0',
        'edgeforge_rollout_class_devices{rollout_id="r1",hardware_class="aarch64-neon-nofp16-cpu-4g",state="done"} 4',
        'edgeforge_rollout_class_devices{rollout_id="r1",hardware_class="aarch64-neon-nofp16-cpu-4g",state="failed"} 1',
        'edgeforge_rollout_class_devices{rollout_id="r1",hardware_class="aarch64-neon-nofp16-cpu-4g",state="unresponsive"} 1',
        'edgeforge_rollout_class_devices{rollout_id="r1",hardware_class="aarch64-neon-nofp16-cpu-4g",state="pending"} 4',
        'edgeforge_rollout_class_devices{rollout_id="r2",hardware_class="x86_64-avx2-nofp16-cpu-8g",state="pending"} 2',
        'edgeforge_rollout_outcomes_total{outcome="partially_succeeded"} 1',
        'edgeforge_rollout_outcomes_total{outcome="failed"} 0',
        'edgeforge_rollout_rollbacks_total{hardware_class="x86_64-avx2-nofp16-cpu-8g"} 1',
        'edgeforge_rollout_rollbacks_total{hardware_class="aarch64-neon-nofp16-cpu-4g"} 0',
        `edgeforge_rollout_started_timestamp_seconds{rollout_id="r1"} ${Date.parse('2026-11-28T09:00:00Z') / 1000}`,
        `edgeforge_rollout_updated_timestamp_seconds{rollout_id="r1",phase="rolling_out"} ${Date.parse('2026-11-28T10:00:00Z') / 1000}`,
      ]),
    );
    // Scraping again changes nothing.
    expect(await lines(register)).toEqual(out);

    metrics.apply(rolloutRecordKey('r2'), null);
    const after = await lines(register);
    expect(after).toContain('edgeforge_rollout_outcomes_total{outcome="partially_succeeded"} 0');
    expect(after.some((l) => l.includes('rollout_id="r2"'))).toBe(false);
  });

  it('keeps per-rollout series for running rollouts and the last finished ones only', async () => {
    const register = new Registry();
    const metrics = new RolloutMetrics(register);
    const total = RECENT_FINISHED_ROLLOUTS + 5;
    for (let i = 0; i < total; i++) metrics.apply(rolloutRecordKey(`f${i}`), finished(`f${i}`, i));
    metrics.apply(rolloutRecordKey('running'), rollout('running'));
    const out = await lines(register);
    const ids = new Set(
      out
        .filter((l) => l.startsWith('edgeforge_rollout_class_devices'))
        .map((l) => /rollout_id="([^"]+)"/.exec(l)![1]),
    );
    expect(ids.size).toBe(RECENT_FINISHED_ROLLOUTS + 1);
    expect(ids.has('running')).toBe(true);
    // The oldest finished ones dropped out; the counters still count them.
    expect(ids.has('f0')).toBe(false);
    expect(ids.has(`f${total - 1}`)).toBe(true);
    expect(out).toContain(`edgeforge_rollout_outcomes_total{outcome="succeeded"} ${total}`);
  });

  it('leaves out records it cannot read, and says why', async () => {
    const register = new Registry();
    const metrics = new RolloutMetrics(register);
    expect(metrics.apply(rolloutRecordKey('bad'), { rolloutId: 'bad', phase: 'exploding' })).toBe(
      'unknown phase exploding',
    );
    expect(metrics.apply(rolloutRecordKey('bad'), 'text')).toBe('not a JSON object');
    expect((await lines(register)).filter((l) => / [1-9]/.test(l))).toEqual([]);
  });
});
