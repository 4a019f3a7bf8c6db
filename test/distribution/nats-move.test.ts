import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectNats } from '../../common/nats.js';
import { loadToolchain, startNatsServer } from '../../services/stack/index.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { natsAuthOf, startTestControlPlane } from '../helpers/control-plane.js';
import { TestOrchestrator } from '../helpers/distribution.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../helpers/onnx-models.js';

describe('an agent whose NATS server moved', () => {
  it('follows the NATS URL the control plane advertises in heartbeats and gets its models there', async () => {
    // As `edgeforge up` after a restart: the same JetStream store, a new port, new passwords.
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-nats-move-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const options = {
      binary: loadToolchain().natsServer,
      storeDir: join(dir, 'jetstream'),
      logFile: join(dir, 'nats-server.log'),
    };
    const before = await startNatsServer(options);
    const serviceBefore = await connectNats(before.url, { name: 'control-plane-before' });
    const cp = await startTestControlPlane({
      nats: serviceBefore,
      natsAuth: await natsAuthOf(before),
      advertisedNatsUrl: before.agentUrl,
    });
    const agent = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    const deviceId = agent.deviceId!;
    await eventually(() => expect(agent.status.models?.state).toBe('DEVICE_STATE_IDLE'));

    await cp.stop();
    await serviceBefore.close();
    await before.stop();
    const after = await startNatsServer(options);
    onTestFinished(() => after.stop());
    expect(after.port).not.toBe(before.port);
    const service = await connectNats(after.url, { name: 'control-plane-after' });
    onTestFinished(() => service.close());
    const restarted = await cp.restart({
      nats: service,
      natsAuth: await natsAuthOf(after),
      advertisedNatsUrl: after.agentUrl,
      listen: cp.address,
    });

    await eventually(async () => {
      const stored = JSON.parse(
        await readFile(join(agent.options.dataDir, 'identity.json'), 'utf8'),
      ) as { natsUrl: string };
      expect(stored.natsUrl).toBe(after.agentUrl);
    });
    const orchestrator = await TestOrchestrator.open(service, restarted.dataDir);
    const signed = await orchestrator.publish({
      model: hotFeatureClassifier(),
      holdout: npzBytes(matchingHoldout()),
      variant: 'fp32',
      hardwareClasses: [agent.hardwareClass!],
    });
    await orchestrator.run(deviceId, 'r-moved', signed);
    await eventually(
      () =>
        expect(restarted.registry.get(deviceId)?.lastStatus).toMatchObject({
          event: 'STATUS_EVENT_ACTIVATED',
          rolloutId: 'r-moved',
        }),
      30_000,
    );
  });
});
