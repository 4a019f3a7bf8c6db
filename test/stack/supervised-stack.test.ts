import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import { connectNats } from '../../common/nats.js';
import { loadToolchain, startEmbeddedStack } from '../../services/stack/index.js';
import { eventually } from '../helpers/agents.js';
import { rawClients } from '../helpers/control-plane.js';
import { fixtureProfile } from '../helpers/profiles.js';

describe('the embedded stack restarts a part that dies', () => {
  it('brings nats-server, the control plane and the orchestrator back after kill -9, and a hung gpu worker, on the same addresses', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-supervised-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const said: string[] = [];
    const stack = await startEmbeddedStack({
      toolchain: loadToolchain(),
      dataDir: join(dir, 'data'),
      onProgress: (m) => said.push(m),
    });
    onTestFinished(() => stack.stop());
    const e = stack.endpoints;
    const token = (await readFile(e.enrollmentTokenFile, 'utf8')).trim();
    const enroll = (deviceName: string) =>
      rawClients(e.controlPlaneAddress).enroll({
        enrollmentToken: token,
        deviceName,
        profile: profileToProto(fixtureProfile('raspberry-pi-4')),
        agentVersion: '0.1.0',
      });
    await enroll('before');

    for (const part of ['nats-server', 'control plane', 'orchestrator worker'] as const) {
      stack.kill(part, 'SIGKILL');
      await eventually(() => expect(stack.restarts()[part]).toBe(1), 120_000);
      expect(said.join('\n')).toMatch(new RegExp(`${part} exited .*restarting it in`));
    }
    // Up but hung (stopped, not dead): its /healthz stops answering, so it is killed and restarted.
    stack.kill('gpu worker', 'SIGSTOP');
    await eventually(() => expect(stack.restarts()['gpu worker']).toBe(1), 120_000);
    expect(said.join('\n')).toMatch(
      /gpu worker failed its health check 3 times in a row \(http:\/\/127\.0\.0\.1:\d+\/healthz: no answer in 5 s\): killing it/,
    );

    // Everything answers where it did: the same NATS URL, the same control-plane address, and
    // the control plane serves the registry again (on the restarted NATS).
    const nc = await connectNats(e.natsUrl, { name: 'supervised-test' });
    await nc.close();
    await eventually(async () => {
      const { deviceId } = await enroll('after');
      expect(deviceId).toMatch(/^d-/);
    }, 60_000);
  });
});
