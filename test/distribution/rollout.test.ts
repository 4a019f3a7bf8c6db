import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import {
  hotSample,
  infer,
  recordedBenchmark,
  servedModel,
  topClass,
  TestOrchestrator,
} from '../helpers/distribution.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../helpers/onnx-models.js';
import { testNats } from '../helpers/stack.js';

const HOLDOUT = npzBytes(matchingHoldout({ samples: 30 }), { deflate: true });
const SETTINGS = { warmupRuns: 2, minRuns: 20, minSeconds: 0.1, threads: 1 };

describe('model distribution to a real agent', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('benchmarks the candidates it is sent, then activates and serves the one it is told to run', async () => {
    const cp = await startTestControlPlane();
    const nats = await testNats('orchestrator');
    const orchestrator = await TestOrchestrator.open(nats, cp.dataDir);
    const agent = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    const deviceId = agent.deviceId!;
    const hardwareClasses = [agent.hardwareClass!];
    const rolloutId = `r-${deviceId}`;
    const fp32 = await orchestrator.publish({
      model: hotFeatureClassifier(),
      holdout: HOLDOUT,
      variant: 'fp32',
      rolloutId,
      hardwareClasses,
    });
    const int8 = await orchestrator.publish({
      model: hotFeatureClassifier({ scale: 3 }),
      holdout: HOLDOUT,
      variant: 'int8_dynamic',
      rolloutId,
      hardwareClasses,
    });

    await orchestrator.benchmark(deviceId, rolloutId, [fp32, int8], SETTINGS);
    for (const candidate of [fp32, int8]) {
      const { variant, model } = candidate.manifest;
      const report = await eventually(async () => {
        const recorded = await recordedBenchmark(nats, rolloutId, variant, deviceId);
        expect(recorded).toBeDefined();
        return recorded!;
      });
      expect(report).toMatchObject({
        deviceId,
        rolloutId,
        variant,
        modelSha256: model.sha256,
        accuracy: 1,
        top1Agreement: 1,
        threads: 1,
        error: '',
      });
      const latency = report.latency as { runs: number; p50Ms: number; p99Ms: number };
      expect(latency.runs).toBeGreaterThanOrEqual(SETTINGS.minRuns);
      expect(latency.p50Ms).toBeGreaterThan(0);
      expect(latency.p99Ms).toBeGreaterThanOrEqual(latency.p50Ms);
      expect(report.throughputPerSecond).toBeGreaterThan(0);
      expect(report.sessionLoadMs).toBeGreaterThan(0);
    }
    // Benchmarking never activates anything.
    expect(await servedModel(agent.inferenceUrl!)).toBe(503);

    await orchestrator.run(deviceId, rolloutId, int8);
    await eventually(() =>
      expect(cp.registry.get(deviceId)?.lastStatus).toMatchObject({
        event: 'STATUS_EVENT_ACTIVATED',
        rolloutId,
        variant: 'int8_dynamic',
      }),
    );
    const { status, body } = await infer(agent, hotSample(7));
    expect(status).toBe(200);
    expect(body).toMatchObject({ model: 'hot-feature', variant: 'int8_dynamic', version: 1 });
    expect(topClass(body)).toBe(7);

    // Heartbeats carry the state and the active model, and the control plane accepts the
    // latency histogram delta they now carry.
    const beatsBefore = agent.status.heartbeatsOk;
    await eventually(() =>
      expect(cp.registry.get(deviceId)).toMatchObject({
        state: 'DEVICE_STATE_SERVING',
        activeModel: {
          modelId: 'hot-feature',
          variant: 'int8_dynamic',
          version: 1,
          sha256: int8.manifest.model.sha256,
        },
      }),
    );
    await eventually(() => expect(agent.status.heartbeatsOk).toBeGreaterThan(beatsBefore + 1));
    expect(agent.status.heartbeatsFailed).toBe(0);
    expect(await (await fetch(agent.metricsUrl!)).text()).toContain(
      'edgeforge_agent_inference_latency_seconds_count{model="hot-feature",variant="int8_dynamic",' +
        'hardware_class="aarch64-neon-nofp16-cpu-4g"} 1',
    );
  });

  it('catches up with the latest desired state after being offline, and applies each revision once', async () => {
    const cp = await startTestControlPlane();
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    const first = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-5' });
    const { dataDir, deviceName } = first.options;
    const deviceId = first.deviceId!;
    const versions = await Promise.all(
      [1, 2, 3].map((version) =>
        orchestrator.publish({
          model: hotFeatureClassifier({ scale: version }),
          holdout: HOLDOUT,
          version,
          rolloutId: `r-${version}`,
          hardwareClasses: [first.hardwareClass!],
        }),
      ),
    );
    const [v1, v2, v3] = versions as [
      (typeof versions)[0],
      (typeof versions)[0],
      (typeof versions)[0],
    ];
    await orchestrator.run(deviceId, 'r-1', v1);
    await eventually(() => expect(first.status.models?.activeModel?.version).toBe(1));

    await first.stop();
    await orchestrator.run(deviceId, 'r-2', v2);
    const latest = await orchestrator.run(deviceId, 'r-3', v3);

    const back = await startTestAgent(
      cp.address,
      { cpuinfo: 'raspberry-pi-5' },
      { dataDir, deviceName },
    );
    await eventually(() =>
      expect(back.status.models).toMatchObject({
        state: 'DEVICE_STATE_SERVING',
        activeModel: { version: 3 },
        desiredState: { appliedRevision: latest },
      }),
    );
    // Only the latest revision was applied: v2 was never activated, so v1 is the fallback.
    const state = JSON.parse(await readFile(join(dataDir, 'model-state.json'), 'utf8')) as {
      previous: { manifest: { version: number } };
    };
    expect(state.previous.manifest.version).toBe(1);
    await back.stop();

    // The watch delivers the latest entry again on every start; it changes nothing.
    const again = await startTestAgent(
      cp.address,
      { cpuinfo: 'raspberry-pi-5' },
      { dataDir, deviceName },
    );
    await eventually(() => expect(again.status.models?.desiredState.seenRevision).toBe(latest));
    expect(again.status.models?.activeModel?.version).toBe(3);
    expect(await (await fetch(again.metricsUrl!)).text()).not.toMatch(
      /edgeforge_agent_model_events_total\{event="activated"\}/,
    );
  });
});
