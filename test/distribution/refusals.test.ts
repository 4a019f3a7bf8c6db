import { beforeEach, describe, expect, it } from 'vitest';
import {
  generateManifestKeyPair,
  loadManifestKeyPair,
  signManifest,
} from '../../common/manifest.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import {
  flipByte,
  hotSample,
  infer,
  servedModel,
  topClass,
  TestOrchestrator,
  modelStore,
} from '../helpers/distribution.js';
import { testManifest, type TestManifestParts } from '../helpers/manifests.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout, NOT_ONNX } from '../helpers/onnx-models.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { testNats } from '../helpers/stack.js';

const HOLDOUT = npzBytes(matchingHoldout());

describe('an agent never runs a model it cannot trust', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('refuses each bad push with its reason and keeps serving the model it had', async () => {
    const cp = await startTestControlPlane();
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    const agent = await startTestAgent(cp.address, { cpuinfo: 'aws-graviton3' });
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

    /** A manifest for a new, fine model (version 3) unless `parts` says otherwise. */
    const candidate = (variant: string, parts: Partial<TestManifestParts> = {}) => {
      const model = hotFeatureClassifier({ scale: variant.length + 10 });
      return {
        model,
        manifest: testManifest({
          model,
          holdout: HOLDOUT,
          version: 3,
          variant,
          hardwareClasses,
          ...parts,
        }),
      };
    };
    const pushes: { variant: string; push: () => Promise<unknown>; expected: RegExp }[] = [
      {
        variant: 'flipped',
        push: async () => {
          const { model, manifest } = candidate('flipped');
          await orchestrator.upload(flipByte(model), manifest.model);
          return orchestrator.run(deviceId, 'r-flipped', orchestrator.sign(manifest));
        },
        expected: /^digest_mismatch: object .* has sha256 [0-9a-f]{64}; the manifest says/,
      },
      {
        variant: 'truncated',
        push: async () => {
          const { model, manifest } = candidate('truncated');
          await orchestrator.upload(model.subarray(0, -1), manifest.model);
          return orchestrator.run(deviceId, 'r-truncated', orchestrator.sign(manifest));
        },
        expected: /^size_mismatch: object .* has \d+ bytes; the manifest says \d+/,
      },
      {
        variant: 'foreign-key',
        push: async () => {
          const { model, manifest } = candidate('foreign-key');
          await orchestrator.upload(model, manifest.model);
          const stranger = loadManifestKeyPair(generateManifestKeyPair().privateKeyPem);
          return orchestrator.run(deviceId, 'r-key', signManifest(manifest, stranger.privateKey));
        },
        expected: /^bad_signature: the signature does not match the fleet key pinned at enrollment/,
      },
      {
        variant: 'older',
        push: async () =>
          orchestrator.run(
            deviceId,
            'r-older',
            await orchestrator.publish({
              model: hotFeatureClassifier({ scale: 7 }),
              holdout: HOLDOUT,
              version: 1,
              variant: 'older',
              hardwareClasses,
            }),
          ),
        expected: /^older_version: version 1 is older than the running version 2/,
      },
      {
        variant: 'expired',
        push: async () =>
          orchestrator.run(
            deviceId,
            'r-expired',
            await orchestrator.publish({
              model: hotFeatureClassifier({ scale: 8 }),
              version: 3,
              variant: 'expired',
              hardwareClasses,
              expiresAt: new Date(Date.now() - 1000).toISOString(),
            }),
          ),
        expected: /^expired: the manifest expired at /,
      },
      {
        variant: 'other-class',
        push: async () =>
          orchestrator.run(
            deviceId,
            'r-class',
            await orchestrator.publish({
              model: hotFeatureClassifier({ scale: 9 }),
              version: 3,
              variant: 'other-class',
              hardwareClasses: ['x86_64-amx-fp16-cpu-64g'],
            }),
          ),
        expected:
          /^wrong_class: built for x86_64-amx-fp16-cpu-64g, not for this device's class aarch64-/,
      },
      {
        variant: 'text-file',
        push: async () =>
          orchestrator.run(
            deviceId,
            'r-text',
            await orchestrator.publish({
              model: NOT_ONNX,
              version: 3,
              variant: 'text-file',
              hardwareClasses,
            }),
          ),
        expected: /^not_onnx: test\/[0-9a-f]{64} is not a model ONNX Runtime can load/,
      },
    ];
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

    // A value that is not a desired state at all.
    await orchestrator.put(deviceId, '{"kind": "run", "rollou');
    await eventually(() =>
      expect(lastStatus()).toMatchObject({
        event: 'STATUS_EVENT_REFUSED',
        detail: expect.stringMatching(/^malformed: the desired state is not JSON/) as unknown,
      }),
    );

    // Nothing changed on the device: same files, same state, same model answering.
    expect(await modelStore(agent)).toEqual(before);
    const { body } = await infer(agent, hotSample(4));
    expect([body.version, topClass(body)]).toEqual([2, 4]);
    expect(agent.status.models?.state).toBe('DEVICE_STATE_SERVING');
  });

  it('rolls back to the previous model when the new one fails its health check', async () => {
    const cp = await startTestControlPlane();
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    const agent = await startTestAgent(cp.address, { cpuinfo: 'jetson-xavier-agx' });
    const deviceId = agent.deviceId!;
    const hardwareClasses = [agent.hardwareClass!];
    const good = await orchestrator.publish({
      model: hotFeatureClassifier(),
      holdout: HOLDOUT,
      hardwareClasses,
    });
    await orchestrator.run(deviceId, 'r-1', good);
    await eventually(() =>
      expect(agent.status.models?.activeModel?.sha256).toBe(good.manifest.model.sha256),
    );

    // Loads fine, answers every holdout sample wrong: a broken build for this hardware.
    const broken = await orchestrator.publish({
      model: hotFeatureClassifier({ shift: 1 }),
      holdout: HOLDOUT,
      version: 2,
      variant: 'int8_static',
      centralAccuracy: 0.97,
      hardwareClasses,
    });
    await orchestrator.run(deviceId, 'r-2', broken);
    await eventually(() =>
      expect(cp.registry.get(deviceId)?.lastStatus).toMatchObject({
        event: 'STATUS_EVENT_ROLLED_BACK',
        rolloutId: 'r-2',
        variant: 'int8_static',
        detail:
          'health_check_failed: accuracy 0.000 on 20 holdout samples is more than 0.1 below the ' +
          'central accuracy 0.970; still serving hot-feature fp32 v1',
      }),
    );
    const { body } = await infer(agent, hotSample(6));
    expect([body.variant, topClass(body)]).toEqual(['fp32', 6]);
    await eventually(() =>
      expect(cp.registry.get(deviceId)).toMatchObject({
        state: 'DEVICE_STATE_SERVING',
        activeModel: { variant: 'fp32', sha256: good.manifest.model.sha256 },
      }),
    );
  });
});
