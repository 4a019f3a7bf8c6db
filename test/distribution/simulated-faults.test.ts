import { availableParallelism } from 'node:os';
import { beforeEach, describe, expect, it } from 'vitest';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import { recordedBenchmark, servedModel, TestOrchestrator } from '../helpers/distribution.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../helpers/onnx-models.js';
import { testNats } from '../helpers/stack.js';

const HOLDOUT = npzBytes(matchingHoldout({ samples: 30 }), { deflate: true });
// More threads than the one-thread board has: it must benchmark on one anyway.
const SETTINGS = { warmupRuns: 2, minRuns: 10, minSeconds: 0.05, threads: 4 };
const INT8_FAULT = { accuracyFaults: [{ variants: 'int8_*', flipShare: 0.3 }] };

describe('simulated devices on a real agent', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('a board whose int8 kernels lose accuracy scores int8 lower and refuses to run it; a sound one runs it', async () => {
    const cp = await startTestControlPlane();
    const nats = await testNats('orchestrator');
    const orchestrator = await TestOrchestrator.open(nats, cp.dataDir);
    const faulty = await startTestAgent(cp.address, {
      cpuinfo: 'raspberry-pi-4',
      cores: 1,
      threads: 1,
      simulate: INT8_FAULT,
    });
    const sound = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    expect(faulty.profile).toMatchObject({ cores: 1, threads: 1 });
    expect(sound.hardwareClass).toBe(faulty.hardwareClass);
    const rolloutId = `r-sim-${faulty.deviceId}`;
    const hardwareClasses = [faulty.hardwareClass!];
    const fp32 = await orchestrator.publish({
      model: hotFeatureClassifier(),
      holdout: HOLDOUT,
      variant: 'fp32',
      rolloutId,
      hardwareClasses,
    });
    // The same classifier, another build (its answers are fp32's): right on every sample.
    const int8 = await orchestrator.publish({
      model: hotFeatureClassifier({ scale: 3 }),
      holdout: HOLDOUT,
      variant: 'int8_static_minmax',
      rolloutId,
      hardwareClasses,
    });

    const reported = (deviceId: string, variant: string) =>
      eventually(async () => {
        const report = await recordedBenchmark(nats, rolloutId, variant, deviceId);
        expect(report).toBeDefined();
        return report!;
      });
    await orchestrator.benchmark(faulty.deviceId!, rolloutId, [fp32, int8], SETTINGS);
    await orchestrator.benchmark(sound.deviceId!, rolloutId, [int8], { ...SETTINGS, threads: 0 });
    const faultyFp32 = await reported(faulty.deviceId!, 'fp32');
    const faultyInt8 = await reported(faulty.deviceId!, 'int8_static_minmax');
    const soundInt8 = await reported(sound.deviceId!, 'int8_static_minmax');
    expect(faultyFp32).toMatchObject({ accuracy: 1, top1Agreement: 1, threads: 1, error: '' });
    // 9 of 30 predictions flipped to the next class.
    expect(faultyInt8).toMatchObject({ accuracy: 0.7, top1Agreement: 0.7, threads: 1, error: '' });
    expect(faultyInt8.accuracy).toBeLessThan(faultyFp32.accuracy as number);
    // threads 0: every thread of the (dump's four-core) board, as far as this host has them.
    expect(soundInt8).toMatchObject({
      accuracy: 1,
      top1Agreement: 1,
      threads: Math.min(4, availableParallelism()),
      error: '',
    });

    await orchestrator.run(faulty.deviceId!, rolloutId, int8);
    await orchestrator.run(sound.deviceId!, rolloutId, int8);
    await eventually(() =>
      expect(cp.registry.get(faulty.deviceId!)?.lastStatus).toMatchObject({
        event: 'STATUS_EVENT_ROLLED_BACK',
        rolloutId,
        variant: 'int8_static_minmax',
        detail:
          'health_check_failed: accuracy 0.700 on 30 holdout samples (simulated fault: 0.3 of ' +
          'top-1 predictions flipped) is more than 0.1 below the central accuracy 1.000; ' +
          'no model to fall back to',
      }),
    );
    expect(await servedModel(faulty.inferenceUrl!)).toBe(503);
    await eventually(() =>
      expect(cp.registry.get(sound.deviceId!)?.lastStatus).toMatchObject({
        event: 'STATUS_EVENT_ACTIVATED',
        rolloutId,
        variant: 'int8_static_minmax',
      }),
    );
    expect(await servedModel(sound.inferenceUrl!)).toMatchObject({
      variant: 'int8_static_minmax',
      sha256: int8.manifest.model.sha256,
    });
  });
});
