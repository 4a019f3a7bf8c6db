import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadToolchain } from '../../services/stack/index.js';
import { Kvm } from '@nats-io/kv';
import { Worker } from '@temporalio/worker';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RunModel } from '../../common/desired-state.js';
import { deviceDesiredKey, KV_BUCKETS, trackKey } from '../../common/names.js';
import { MAX_TIE_SHARE } from '../../workflows/decisions/choose.js';
import {
  classWorkflowId,
  measurementsKey,
  ROLLOUT_SIGNALS,
  rolloutRecordKey,
  type ClassStatus,
  type RolloutStatus,
} from '../../common/rollout.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import { servedModel } from '../helpers/distribution.js';
import {
  startCanaryAndBrokenAgent,
  startRolloutWorker,
  statusWhen,
  temporalOption,
  tinySpec,
} from '../helpers/rollouts.js';
import { testNats, testStack, testTemporal } from '../helpers/stack.js';

const run = promisify(execFile);

const WORKFLOWS_PATH = fileURLToPath(
  new URL('../../workflows/definitions/index.ts', import.meta.url),
);
const HISTORIES_DIR = fileURLToPath(
  new URL('../../workflows/definitions/histories', import.meta.url),
);

const VNNI = { cpuinfo: 'intel-xeon-gold-6242-cascade-lake' };
const AVX2 = { cpuinfo: 'amd-ryzen-9-5950x-zen3' };
const PI4_ONE_THREAD = { cpuinfo: 'raspberry-pi-4', threads: 1, cores: 1 };

const classOf = (status: RolloutStatus, hardwareClass: string): ClassStatus => {
  const found = status.classes.find((c) => c.hardwareClass === hardwareClass);
  expect(
    found,
    `class ${hardwareClass} in ${status.classes.map((c) => c.hardwareClass).join(', ')}`,
  ).toBeDefined();
  return found!;
};

describe('rollout workflow on the real stack', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('distills, builds per-class variants, benchmarks on canaries and rolls the winners out', async () => {
    const cp = await startTestControlPlane(temporalOption());
    const orchestrator = await startRolloutWorker(cp);
    const agents = [
      await startTestAgent(cp.address, VNNI),
      await startTestAgent(cp.address, VNNI),
      await startTestAgent(cp.address, AVX2),
      await startTestAgent(cp.address, PI4_ONE_THREAD),
    ];
    const [vnni, , avx2, pi] = agents.map((a) => a.hardwareClass!);
    expect(new Set([vnni, avx2, pi]).size).toBe(3);

    const handle = await orchestrator.start(tinySpec(`full-${Date.now()}`));
    const status = await handle.result();

    expect(status.phase, status.detail).toBe('succeeded');
    expect(status.teacher?.testAccuracy).toBeGreaterThan(0.5);
    expect(status.student?.testAccuracy).toBeGreaterThan(0.5);
    expect(status.classes).toHaveLength(3);
    // The planner's priors differ per class: VNNI leads with full-range static int8, AVX2 without
    // VNNI with reduce_range.
    expect(classOf(status, vnni!).candidates[0]!.variant).toBe('int8_static_minmax');
    expect(classOf(status, avx2!).candidates[0]!.variant).toBe('int8_static_reduce_range');

    for (const cls of status.classes) {
      expect(['succeeded', 'fell_back'], cls.reason).toContain(cls.phase);
      const chosen = cls.chosen!;
      const won = cls.candidates.find((c) => c.verdict === 'won')!;
      expect(won.variant).toBe(chosen.variant);
      // The winner has the lowest on-device p95 of every candidate that passed the gates, or is
      // tied with it within the noise and at most MAX_TIE_SHARE slower (then smaller or more
      // accurate: workflows/decisions/choose.ts).
      for (const other of cls.candidates.filter((c) => c.verdict === 'slower')) {
        expect(won.onDevice!.p95Ms).toBeLessThanOrEqual(
          other.onDevice!.p95Ms * (1 + MAX_TIE_SHARE),
        );
      }
      expect(cls.candidates.find((c) => c.verdict === 'reference')?.variant).toBe('teacher_fp32');
      expect(chosen.speedupVsTeacher).toBeGreaterThan(0);
      expect(chosen.accuracy).toBeGreaterThan(0.5);
      expect(cls.devicesDone).toBe(cls.devicesTotal);
    }
    const vnniClass = classOf(status, vnni!);
    // The canary first, then one wave over every cohort of the track (percents [100]), judged
    // by both devices of the class: the canary serves the winner too.
    expect(vnniClass.waves.map((w) => [w.cohorts, w.devices, w.state])).toEqual([
      [null, 1, 'passed'],
      [{ from: 0, to: 100 }, 2, 'passed'],
    ]);
    // The track holds the winner for every cohort, the canary's own entry is gone: a device
    // that enrols now runs the winner with no rollout (test/rollouts/release-tracks.test.ts).
    const desired = await new Kvm(await testNats('check')).open(KV_BUCKETS.desiredState);
    for (const cohort of [0, 37, 99]) {
      const track = await desired.get(trackKey(vnni!, cohort));
      expect(track?.json<RunModel>().model.manifest.model.sha256).toBe(vnniClass.chosen!.sha256);
    }
    expect((await desired.get(deviceDesiredKey(vnniClass.canaries[0]!)))?.operation).not.toBe(
      'PUT',
    );

    // Every device serves its class's winner.
    for (const agent of agents) {
      const chosen = classOf(status, agent.hardwareClass!).chosen!;
      expect(await servedModel(agent.inferenceUrl!)).toMatchObject({
        variant: chosen.variant,
        sha256: chosen.sha256,
      });
    }
    // The Pi-class device benchmarked with the one thread its profile has.
    const nats = await testNats('check');
    const benchmarks = await new Kvm(nats).open(KV_BUCKETS.benchmarks);
    const piReport = await benchmarks.get(`${status.rolloutId}.fp32.${agents[3]!.deviceId}`);
    expect(piReport?.json<{ threads: number }>().threads).toBe(1);

    // The record outlives the workflow; measurements seed the next rollout's planner.
    const rollouts = await new Kvm(nats).open(KV_BUCKETS.rollouts);
    const record = await rollouts.get(rolloutRecordKey(status.rolloutId));
    expect(record?.json<RolloutStatus>().phase).toBe('succeeded');
    const measured = await rollouts.get(measurementsKey('small_cnn', vnni!));
    expect(measured?.json<{ rolloutId: string }[]>().map((m) => m.rolloutId)).toContain(
      status.rolloutId,
    );

    // Replaying the recorded history with today's code gives the same commands (determinism).
    const { client } = await testTemporal();
    const history = await client.workflow.getHandle(handle.workflowId).fetchHistory();
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, handle.workflowId);
    // EDGEFORGE_RECORD_HISTORIES=1 keeps the histories for workflows/definitions/replay.test.ts,
    // which replays them on every run: a change that breaks running rollouts fails there.
    if (process.env.EDGEFORGE_RECORD_HISTORIES === '1') {
      const record = async (workflowId: string, name: string) => {
        const { stdout } = await run(loadToolchain().temporal, [
          ...['workflow', 'show', '--workflow-id', workflowId, '--output', 'json'],
          ...['--address', testStack().temporalAddress],
        ]);
        await writeFile(`${HISTORIES_DIR}/${name}.json`, stdout);
      };
      await record(handle.workflowId, 'rollout-four-devices');
      await record(classWorkflowId(status.rolloutId, vnni!), 'class-two-waves');
    }
  });

  it('falls back to fp32 on a class whose devices lose accuracy with int8', async () => {
    const cp = await startTestControlPlane(temporalOption());
    const orchestrator = await startRolloutWorker(cp);
    const agent = await startTestAgent(cp.address, {
      cpuinfo: 'raspberry-pi-5',
      simulate: { accuracyFaults: [{ variants: 'int8_*', flipShare: 0.5 }] },
    });
    const handle = await orchestrator.start(
      tinySpec(`fallback-${Date.now()}`, { formats: ['int8_static_minmax', 'int8_dynamic'] }),
    );
    const status = await handle.result();
    const cls = classOf(status, agent.hardwareClass!);
    expect(cls.phase, cls.reason).toBe('fell_back');
    expect(cls.chosen?.variant).toBe('fp32');
    const int8 = cls.candidates.filter((c) => c.variant.startsWith('int8'));
    expect(int8.length).toBeGreaterThan(0);
    for (const c of int8) {
      expect(c.verdict, c.reason).toBe('over_accuracy_budget_on_device');
    }
    expect(cls.reason).toMatch(/fell back to the fp32 student/);
    expect(await servedModel(agent.inferenceUrl!)).toMatchObject({ variant: 'fp32' });
  });

  it('rolls a failing wave back and stops the class', async () => {
    const cp = await startTestControlPlane(temporalOption());
    const orchestrator = await startRolloutWorker(cp);
    const { canary, broken } = await startCanaryAndBrokenAgent(
      cp.address,
      AVX2,
      `wave-${Date.now()}`,
    );
    expect(broken.hardwareClass).toBe(canary.hardwareClass);
    const status = await (
      await orchestrator.start(
        tinySpec(`wave-${Date.now()}`, { canaryDevices: [canary.deviceId!] }),
      )
    ).result();
    const cls = classOf(status, canary.hardwareClass!);
    expect(cls.canaries).toEqual([canary.deviceId]);
    expect(cls.phase, cls.reason).toBe('rolled_back');
    expect(cls.waves.map((w) => w.state)).toEqual(['passed', 'rolled_back']);
    // The canary's cohort moves with the broken device's: the canary succeeds, the other fails.
    expect(cls.waves[1]!.reason).toMatch(/1 of 2 devices failed/);
    expect(cls.waves[1]!.failures).toEqual([
      expect.objectContaining({ deviceId: broken.deviceId, event: 'rolled_back' }),
    ]);
    expect(status.phase).toBe('failed');
    // The canary keeps the winner; the broken device never left its earlier state (no model).
    expect(await servedModel(canary.inferenceUrl!)).toMatchObject({ variant: cls.chosen!.variant });
    expect(await servedModel(broken.inferenceUrl!)).toBe(503);
  });

  it('cancelling puts every device back on the model it ran before', async () => {
    const cp = await startTestControlPlane(temporalOption());
    const orchestrator = await startRolloutWorker(cp);
    const agent = await startTestAgent(cp.address, VNNI);
    const first = await (
      await orchestrator.start(tinySpec(`before-${Date.now()}`, { formats: ['fp32'] }))
    ).result();
    const before = classOf(first, agent.hardwareClass!).chosen!;
    expect(await servedModel(agent.inferenceUrl!)).toMatchObject({ sha256: before.sha256 });

    const spec = tinySpec(`cancel-${Date.now()}`, {
      waves: { percents: [100], bakeSeconds: 600, maxFailedShare: 0.2, maxP95Regression: 10 },
      source: {
        kind: 'distill',
        teacher: { source: 'train', architecture: 'small_cnn', training: { epochs: 1 } },
        student: { architecture: 'small_cnn', distill: { training: { epochs: 3, seed: 7 } } },
      },
    });
    const handle = await orchestrator.start(spec);
    const baking = await statusWhen(handle, (s) =>
      s.classes.some((c) => c.waves[0]?.state === 'baking'),
    );
    const during = classOf(baking, agent.hardwareClass!).chosen!;
    expect(during.sha256).not.toBe(before.sha256);
    await eventually(async () =>
      expect(await servedModel(agent.inferenceUrl!)).toMatchObject({ sha256: during.sha256 }),
    );

    // As the control plane's CancelRollout does: the reason first, then the cancellation.
    await handle.signal(ROLLOUT_SIGNALS.cancelReason, 'the wrong dataset');
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    await eventually(async () =>
      expect(await servedModel(agent.inferenceUrl!)).toMatchObject({ sha256: before.sha256 }),
    );
    const record = await (
      await new Kvm(await testNats('check')).open(KV_BUCKETS.rollouts)
    ).get(rolloutRecordKey(spec.rolloutId));
    const cancelled = record!.json<RolloutStatus>();
    expect(cancelled.phase).toBe('cancelled');
    expect(cancelled.detail).toBe(
      'cancelled (the wrong dataset): every device is back on its earlier model',
    );
    expect(classOf(cancelled, agent.hardwareClass!).phase).toBe('cancelled');
  }, 300_000);
});
