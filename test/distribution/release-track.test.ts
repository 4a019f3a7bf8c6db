import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { cohortOf } from '../../common/cohorts.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import { servedModel, TestOrchestrator } from '../helpers/distribution.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../helpers/onnx-models.js';
import { testNats } from '../helpers/stack.js';

const HOLDOUT = npzBytes(matchingHoldout({ samples: 30 }), { deflate: true });
const GIB = 1024 ** 3;

describe('an agent follows its release track', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it("runs its track's model, its own entry while it has one, and another class's track when its class changes", async () => {
    const cp = await startTestControlPlane();
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-track-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const device = (memoryBytes: number) => ({ cpuinfo: 'raspberry-pi-4', memoryBytes });
    const config = { dataDir: join(dir, 'data'), deviceName: 'pi-track' };
    const agent = await startTestAgent(cp.address, device(4 * GIB), config);
    const [deviceId, small] = [agent.deviceId!, agent.hardwareClass!];
    // Every rollout has a model id of its own; versions grow across rollouts.
    const publish = (scale: number, hardwareClass: string, version: number) =>
      orchestrator.publish({
        model: hotFeatureClassifier({ scale }),
        holdout: HOLDOUT,
        variant: `v${scale}`,
        modelId: `rollout-${version}-small_cnn`,
        version,
        hardwareClasses: [hardwareClass],
      });
    const served = (sha256: string) =>
      eventually(async () =>
        expect(await servedModel(agent.inferenceUrl!)).toMatchObject({ sha256 }),
      );

    // Only the track: no entry of its own, no rollout.
    const release = await publish(2, small, 1);
    await orchestrator.track(small, cohortOf(deviceId), 'r-track', release);
    await served(release.manifest.model.sha256);

    // Its own entry wins while it is there; removed, the device is back on its track.
    const pinned = await publish(3, small, 2);
    await orchestrator.run(deviceId, 'r-pin', pinned);
    await served(pinned.manifest.model.sha256);
    const back = await publish(2, small, 3);
    await orchestrator.track(small, cohortOf(deviceId), 'r-track', back);
    await orchestrator.clear(deviceId);
    await served(back.manifest.model.sha256);

    // An earlier rollout's signed entry written back (by anyone with write access to the
    // bucket) is refused, although its model id differs, and reported; nothing changes.
    await orchestrator.run(deviceId, 'r-track', release);
    await eventually(() => {
      const status = cp.registry.get(deviceId)?.lastStatus;
      expect(status?.event).toBe('STATUS_EVENT_REFUSED');
      expect(status?.detail).toMatch(
        /^older_version: version 1 is older than the running version 3/,
      );
    });
    await served(back.manifest.model.sha256);
    await orchestrator.clear(deviceId);

    // A memory upgrade puts the same device (same id, same data dir) in another class.
    await agent.stop();
    const upgraded = await startTestAgent(cp.address, device(16 * GIB), config);
    expect(upgraded.deviceId).toBe(deviceId);
    await eventually(() => expect(upgraded.hardwareClass).not.toBe(small));
    const large = upgraded.hardwareClass!;
    const bigger = await publish(4, large, 4);
    await orchestrator.track(large, cohortOf(deviceId), 'r-large', bigger);
    await eventually(async () =>
      expect(await servedModel(upgraded.inferenceUrl!)).toMatchObject({
        sha256: bigger.manifest.model.sha256,
      }),
    );
  });
});
