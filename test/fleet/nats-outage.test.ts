import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, makeGenericClientConstructor, status } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import { DeviceState } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { connectNats } from '../../common/nats.js';
import { loadToolchain, startNatsServer } from '../../services/stack/index.js';
import { eventually } from '../helpers/agents.js';
import {
  ENROLLMENT_TOKEN,
  natsAuthOf,
  rawClients,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { fixtureProfile } from '../helpers/profiles.js';

/** The gRPC health service's answer for the whole server (''), as a probe asks it. */
function healthOf(address: string): Promise<string> {
  const Health = makeGenericClientConstructor(healthService, 'Health');
  const client = new Health(address, credentials.createInsecure()) as unknown as {
    check(
      request: { service: string },
      options: { deadline: number },
      callback: (err: Error | null, res: { status: string }) => void,
    ): void;
    close(): void;
  };
  onTestFinished(() => client.close());
  return new Promise((resolve, reject) =>
    client.check(
      { service: '' },
      { deadline: Date.now() + 5_000 },
      (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res.status)),
    ),
  );
}

describe('a control plane whose NATS goes down', () => {
  it('answers fleet calls UNAVAILABLE at once, naming the cause, and says NOT_SERVING until NATS is back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-nats-outage-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const options = { binary: loadToolchain().natsServer, storeDir: join(dir, 'jetstream') };
    let nats = await startNatsServer(options);
    onTestFinished(() => nats.stop());
    const service = await connectNats(nats.url, { name: 'control-plane' });
    onTestFinished(() => service.close());
    const cp = await startTestControlPlane({
      nats: service,
      natsAuth: await natsAuthOf(nats),
      advertisedNatsUrl: nats.agentUrl,
    });
    const api = rawClients(cp.address);
    const { deviceCredential } = await api.enroll({
      enrollmentToken: ENROLLMENT_TOKEN,
      deviceName: 'outage-device',
      profile: profileToProto(fixtureProfile('raspberry-pi-4')),
      agentVersion: '0.1.0',
    });
    expect(await healthOf(cp.address)).toBe('SERVING');

    nats.process.kill('SIGKILL');
    await nats.process.exited;
    // Not after the call's deadline: refused as soon as the connection is known lost.
    await eventually(async () => {
      const refused = await api
        .heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, deviceCredential)
        .then(
          () => undefined,
          (err: { code: status; details: string }) => err,
        );
      expect(refused?.code).toBe(status.UNAVAILABLE);
      expect(refused?.details).toMatch(/lost its NATS connection \(since .*\)/);
    });
    expect(await healthOf(cp.address)).toBe('NOT_SERVING');

    nats = await startNatsServer({ ...options, port: nats.port, secrets: nats.secrets });
    await eventually(async () => {
      await api.heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, deviceCredential);
      expect(await healthOf(cp.address)).toBe('SERVING');
    }, 60_000);
  });
});
