import { beforeEach, describe, expect, it } from 'vitest';
import { addInitializer, ifSubgraph } from '../helpers/onnx-builder.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import {
  hotSample,
  infer,
  recordedBenchmark,
  servedModel,
  topClass,
  TestOrchestrator,
  modelStore,
} from '../helpers/distribution.js';
import { testManifest } from '../helpers/manifests.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../helpers/onnx-models.js';
import { testNats } from '../helpers/stack.js';

const MiB = 1024 * 1024;
const HOLDOUT = npzBytes(matchingHoldout());
/** 32 MiB of zero samples (and their labels) in about 40 KB of deflate. */
const BOMB = npzBytes(
  {
    x: { data: new Float32Array(8 * MiB), shape: [512 * 1024, 1, 4, 4] },
    y: { data: new BigInt64Array(512 * 1024), shape: [512 * 1024] },
  },
  { deflate: true },
);
const SETTINGS = { warmupRuns: 1, minRuns: 5, minSeconds: 0.01, threads: 1 };

describe('on-device model checks before ONNX Runtime sees a file', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('refuses external data and a model too big for the device, bounds holdout decompression, and keeps serving', async () => {
    const cp = await startTestControlPlane();
    const nats = await testNats('orchestrator');
    const orchestrator = await TestOrchestrator.open(nats, cp.dataDir);
    // A board with 8 MiB of memory: it takes models up to 4 MiB, holdouts up to 2 MiB.
    const agent = await startTestAgent(cp.address, {
      cpuinfo: 'raspberry-pi-4',
      memoryBytes: 8 * MiB,
    });
    const deviceId = agent.deviceId!;
    const hardwareClasses = [agent.hardwareClass!];
    const lastStatus = () => cp.registry.get(deviceId)?.lastStatus;

    const good = await orchestrator.publish({
      model: hotFeatureClassifier(),
      holdout: HOLDOUT,
      version: 2,
      hardwareClasses,
    });
    await orchestrator.run(deviceId, 'r-good', good);
    await eventually(() => expect(lastStatus()?.event).toBe('STATUS_EVENT_ACTIVATED'));
    const before = await modelStore(agent);
    expect(before.downloads).toEqual([]);

    // 131072 features x 10 classes of float32: a real 5 MiB classifier, over the 4 MiB cap.
    const big = hotFeatureClassifier({ sampleShape: [1, 256, 512] });
    const bigManifest = testManifest({
      model: big,
      version: 3,
      variant: 'too-big',
      sampleShape: [1, 256, 512],
      hardwareClasses,
    });
    const pushes = [
      {
        variant: 'identity-reader',
        push: async () =>
          orchestrator.run(
            deviceId,
            'r-identity',
            await orchestrator.publish({
              model: addInitializer({ location: '../../identity.json', offset: 0, length: 8 }),
              version: 3,
              variant: 'identity-reader',
              hardwareClasses,
            }),
          ),
        expected:
          /^external_data: test\/[0-9a-f]{64} keeps tensor "W" \(graph "main" > initializer "W"\) in an external file, location "\.\.\/\.\.\/identity\.json", offset 0, length 8; the device loads only self-contained models, never a path a model names: re-export with the weights inside the file: onnx\.save\(model, path, save_as_external_data=False\)$/,
      },
      {
        variant: 'shadow-in-subgraph',
        push: async () =>
          orchestrator.run(
            deviceId,
            'r-shadow',
            await orchestrator.publish({
              model: ifSubgraph({ location: '/etc/shadow' }),
              version: 3,
              variant: 'shadow-in-subgraph',
              hardwareClasses,
            }),
          ),
        expected:
          /^external_data: test\/[0-9a-f]{64} keeps tensor "" \(graph "main" > node "choose" \(If\) > attribute "then_branch" > graph "then" > .*\) in an external file, location "\/etc\/shadow"; /,
      },
      {
        variant: 'too-big',
        // Refused before the download: the object is not even in the store, so a transfer
        // would have been a DOWNLOAD_FAILED, retried for ever.
        push: () => orchestrator.run(deviceId, 'r-big', orchestrator.sign(bigManifest)),
        expected:
          /^too_large: the model test\/[0-9a-f]{64} is 5\.0 MiB; this device takes models up to 4\.0 MiB, half of its 8\.0 MiB of memory/,
      },
    ];
    expect(big.length).toBeGreaterThan(5 * MiB);
    for (const { variant, push, expected } of pushes) {
      await push();
      await eventually(() =>
        expect(lastStatus()).toMatchObject({
          event: 'STATUS_EVENT_REFUSED',
          variant,
          detail: expect.stringMatching(expected) as unknown,
        }),
      );
      expect(await servedModel(agent.inferenceUrl!)).toMatchObject({
        sha256: good.manifest.model.sha256,
      });
    }
    // Nothing the refused models brought stayed on the device.
    expect(await modelStore(agent)).toEqual(before);

    // A holdout bundle that is a zip bomb: the benchmark fails with the reason...
    const bombed = await orchestrator.publish({
      model: hotFeatureClassifier({ scale: 5 }),
      holdout: BOMB,
      version: 3,
      variant: 'bombed',
      rolloutId: 'r-bomb',
      hardwareClasses,
    });
    await orchestrator.benchmark(deviceId, 'r-bomb', [bombed], SETTINGS);
    const report = await eventually(async () => {
      const recorded = await recordedBenchmark(nats, 'r-bomb', 'bombed', deviceId);
      expect(recorded).toBeDefined();
      return recorded!;
    });
    expect(report.error).toMatch(
      /^the holdout bundle cannot be read: .*\.npz: the zip entry x\.npy inflates to 32\.0 MiB, which takes its members past the 2\.0 MiB this [\d.]+ KiB bundle may inflate to \(the most any holdout may on this device: 25% of its memory/,
    );
    // ...and so does the health check of an activation, and the old model keeps serving.
    await orchestrator.run(deviceId, 'r-bomb-run', bombed);
    await eventually(() =>
      expect(lastStatus()).toMatchObject({
        event: 'STATUS_EVENT_ROLLED_BACK',
        rolloutId: 'r-bomb-run',
        variant: 'bombed',
        detail: expect.stringMatching(
          /^health_check_failed: .*the zip entry x\.npy inflates to 32\.0 MiB.*; still serving hot-feature fp32 v2$/,
        ) as unknown,
      }),
    );

    const { body } = await infer(agent, hotSample(4));
    expect([body.version, topClass(body)]).toEqual([2, 4]);
    expect((await modelStore(agent)).state).toBe(before.state);
    await eventually(() => expect(agent.status.models?.state).toBe('DEVICE_STATE_SERVING'));
  });
});
