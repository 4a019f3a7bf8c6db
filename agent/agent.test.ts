import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../common/logger.js';
import { DeviceState } from '../proto/gen/edgeforge/v1/fleet.pb.js';
import { EdgeAgent, type EdgeAgentConfig } from './agent.js';
import { IdentityStore } from './identity/identity-store.js';
import { ModelStore } from './models/model-store.js';
import {
  FleetDouble,
  TEST_ENROLLMENT_TOKEN,
  TEST_MANIFEST_KEY,
  TEST_NATS_URL,
  waitFor,
} from './test-support/fleet-double.js';
import { AGENT_VERSION } from './version.js';
import { testManifest } from '../test/helpers/manifests.js';
import { hotFeatureClassifier } from '../test/helpers/onnx-models.js';

const PI4_CPUINFO = fileURLToPath(
  new URL('../test/fixtures/cpuinfo/raspberry-pi-4.txt', import.meta.url),
);
const GiB = 1024 ** 3;

describe('EdgeAgent against an in-process FleetService', () => {
  let fleet: FleetDouble;
  let dir: string;
  let profileFile: string;
  let agents: EdgeAgent[];

  async function writeProfile(memoryBytes: number): Promise<void> {
    await writeFile(profileFile, JSON.stringify({ cpuinfoFile: PI4_CPUINFO, memoryBytes }));
  }

  function newAgent(config: Partial<EdgeAgentConfig> = {}): EdgeAgent {
    const agent = new EdgeAgent({
      controlPlane: fleet.address,
      enrollmentToken: TEST_ENROLLMENT_TOKEN,
      deviceName: 'pi-kitchen',
      dataDir: join(dir, 'data'),
      profileOverrideFile: profileFile,
      metricsAddress: '127.0.0.1:0',
      servingAddress: '127.0.0.1:0',
      logger: createLogger('agent-test', 'silent'),
      heartbeatIntervalMs: 20,
      backoff: { baseMs: 10, capMs: 100 },
      ...config,
    });
    agents.push(agent);
    return agent;
  }

  const storedIdentity = () => new IdentityStore(join(dir, 'data')).load();

  beforeEach(async () => {
    fleet = new FleetDouble();
    await fleet.start();
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-agent-'));
    profileFile = join(dir, 'profile.json');
    await writeProfile(4 * GiB);
    agents = [];
  });

  afterEach(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    fleet.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('enrolls once, heartbeats, keeps its identity on disk and serves /metrics', async () => {
    const agent = newAgent();
    await agent.start();
    expect(agent.deviceId).toBe('d-1');
    expect(agent.hardwareClass).toBe('aarch64-neon-nofp16-cpu-4g');
    await waitFor('3 heartbeats', () => fleet.heartbeats.length >= 3);

    expect(fleet.enrollments).toHaveLength(1);
    expect(fleet.enrollments[0]).toMatchObject({
      deviceName: 'pi-kitchen',
      agentVersion: AGENT_VERSION,
      profile: { cpuModel: 'Cortex-A72', memoryBytes: 4 * GiB },
    });
    const identity = await storedIdentity();
    expect(identity).toMatchObject({
      deviceId: 'd-1',
      deviceName: 'pi-kitchen',
      hardwareClass: 'aarch64-neon-nofp16-cpu-4g',
      manifestPublicKey: TEST_MANIFEST_KEY.toString('base64'),
      natsUrl: TEST_NATS_URL,
      controlPlane: fleet.address,
    });
    expect(fleet.credentialIsValid(identity!.credential)).toBe(true);
    expect((await stat(join(dir, 'data', 'identity.json'))).mode & 0o777).toBe(0o600);
    for (const beat of fleet.heartbeats) {
      expect(beat.credential).toBe(identity!.credential);
      expect(beat.request.state).toBe(DeviceState.DEVICE_STATE_IDLE);
      // Unchanged since enrollment, so not sent.
      expect(beat.request.profile).toBeUndefined();
    }

    const metrics = await (await fetch(agent.metricsUrl!)).text();
    expect(metrics).toMatch(/^edgeforge_agent_heartbeats_total\{result="ok"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^edgeforge_agent_heartbeat_duration_seconds_count [1-9]\d*$/m);
    expect(metrics).toMatch(/^edgeforge_agent_enrollments_total 1$/m);
    expect(metrics).toContain(
      `edgeforge_agent_info{device_id="d-1",hardware_class="aarch64-neon-nofp16-cpu-4g",agent_version="${AGENT_VERSION}"} 1`,
    );
    expect(metrics).toMatch(/^process_cpu_user_seconds_total /m);

    const url = agent.metricsUrl!;
    await agent.stop();
    expect(agent.status.state).toBe('stopped');
    await expect(fetch(url)).rejects.toThrow();
  });

  it('reuses its stored identity after a restart, without calling Enroll', async () => {
    const first = newAgent();
    await first.start();
    await waitFor('a heartbeat', () => first.status.heartbeatsOk >= 1);
    await first.stop();
    const beatsBefore = fleet.heartbeats.length;

    const second = newAgent();
    await second.start();
    expect(second.deviceId).toBe('d-1');
    await waitFor('heartbeats from the restarted agent', () => second.status.heartbeatsOk >= 2);
    expect(fleet.heartbeats.length).toBeGreaterThan(beatsBefore);
    expect(fleet.enrollments).toHaveLength(1);
    expect(second.status.enrollments).toBe(0);
  });

  it('backs off through UNAVAILABLE and DEADLINE_EXCEEDED and recovers without re-enrolling', async () => {
    const agent = newAgent();
    await agent.start();
    await waitFor('a heartbeat', () => agent.status.heartbeatsOk >= 1);
    const { credential } = (await storedIdentity())!;
    fleet.heartbeatFailures.push(
      status.UNAVAILABLE,
      status.UNAVAILABLE,
      status.UNAVAILABLE,
      status.DEADLINE_EXCEEDED,
    );
    const okBefore = agent.status.heartbeatsOk;
    await waitFor('the failures to pass', () => fleet.heartbeatFailures.length === 0);
    await waitFor('heartbeats again', () => agent.status.heartbeatsOk >= okBefore + 2);

    expect(agent.status.heartbeatsFailed).toBe(4);
    expect(agent.status.lastError?.code).toBe('DEADLINE_EXCEEDED');
    expect(fleet.enrollments).toHaveLength(1);
    expect((await storedIdentity())!.credential).toBe(credential);
    const metrics = await (await fetch(agent.metricsUrl!)).text();
    expect(metrics).toMatch(/^edgeforge_agent_heartbeats_total\{result="unavailable"\} 3$/m);
    expect(metrics).toMatch(/^edgeforge_agent_heartbeats_total\{result="deadline_exceeded"\} 1$/m);
  });

  it('keeps its credential across a control-plane restart', async () => {
    const agent = newAgent();
    await agent.start();
    await waitFor('a heartbeat', () => fleet.heartbeats.length >= 1);
    const { credential } = (await storedIdentity())!;

    fleet.stop();
    await waitFor('failed heartbeats', () => agent.status.heartbeatsFailed >= 2);
    expect(agent.status.lastError?.code).toBe('UNAVAILABLE');
    const beatsBefore = fleet.heartbeats.length;
    await fleet.start();
    await waitFor('heartbeats after the restart', () => fleet.heartbeats.length >= beatsBefore + 2);

    expect(fleet.enrollments).toHaveLength(1);
    expect(fleet.heartbeats.at(-1)!.credential).toBe(credential);
    expect((await storedIdentity())!.credential).toBe(credential);
  });

  it('enrolls again under the same name when its credential is rejected', async () => {
    const agent = newAgent();
    await agent.start();
    await waitFor('a heartbeat', () => fleet.heartbeats.length >= 1);
    const { credential: revoked } = (await storedIdentity())!;

    fleet.revokeAll();
    await waitFor('a second enrollment', () => fleet.enrollments.length === 2);
    const beatsAfter = fleet.heartbeats.length;
    await waitFor('heartbeats with the new credential', () => fleet.heartbeats.length > beatsAfter);

    expect(fleet.enrollments.map((e) => e.deviceName)).toEqual(['pi-kitchen', 'pi-kitchen']);
    expect(agent.deviceId).toBe('d-1');
    expect(agent.status.enrollments).toBe(2);
    const identity = (await storedIdentity())!;
    expect(identity.credential).not.toBe(revoked);
    expect(fleet.credentialIsValid(identity.credential)).toBe(true);
    expect(fleet.heartbeats.at(-1)!.credential).toBe(identity.credential);
  });

  it('stores a renewed credential and uses it from then on', async () => {
    const agent = newAgent();
    await agent.start();
    await waitFor('a heartbeat', () => fleet.heartbeats.length >= 1);
    const { credential: original } = (await storedIdentity())!;

    fleet.renewNext = true;
    await waitFor(
      'a heartbeat with another credential',
      () => fleet.heartbeats.at(-1)!.credential !== original,
    );

    const identity = (await storedIdentity())!;
    expect(identity.credential).toBe(fleet.heartbeats.at(-1)!.credential);
    expect(fleet.credentialIsValid(original)).toBe(false);
    expect(Date.parse(identity.credentialExpiresAt!)).toBeGreaterThan(Date.now() + 3_600_000);
    expect(fleet.enrollments).toHaveLength(1);
  });

  it('stores the NATS URL a heartbeat advertises when it differs from the enrolled one', async () => {
    const agent = newAgent();
    await agent.start();
    await waitFor('a heartbeat', () => fleet.heartbeats.length >= 1);
    expect((await storedIdentity())!.natsUrl).toBe(fleet.natsUrl);

    fleet.natsUrl = 'nats://agent:new-password@127.0.0.1:2';
    const beats = fleet.heartbeats.length;
    await waitFor('two more heartbeats', () => fleet.heartbeats.length >= beats + 2);
    expect((await storedIdentity())!.natsUrl).toBe('nats://agent:new-password@127.0.0.1:2');
    expect(fleet.enrollments).toHaveLength(1);
  });

  it('sends its profile in a heartbeat only when it changed since the accepted one', async () => {
    const first = newAgent();
    await first.start();
    await waitFor('heartbeats', () => fleet.heartbeats.length >= 2);
    await first.stop();

    await writeProfile(8 * GiB); // The board got more memory.
    const beatsBefore = fleet.heartbeats.length;
    const second = newAgent();
    await second.start();
    await waitFor('heartbeats', () => fleet.heartbeats.length >= beatsBefore + 3);

    const [changed, ...later] = fleet.heartbeats.slice(beatsBefore);
    expect(changed!.request.profile?.memoryBytes).toBe(8 * GiB);
    for (const beat of later) expect(beat.request.profile).toBeUndefined();
    expect(second.hardwareClass).toBe('aarch64-neon-nofp16-cpu-8g');
    expect((await storedIdentity())!.profile.memoryBytes).toBe(8 * GiB);
    expect(fleet.enrollments).toHaveLength(1);
  });

  it('backs off on INVALID_ARGUMENT and PERMISSION_DENIED without re-enrolling', async () => {
    const agent = newAgent();
    await agent.start();
    await waitFor('a heartbeat', () => agent.status.heartbeatsOk >= 1);
    fleet.heartbeatFailures.push(status.INVALID_ARGUMENT, status.PERMISSION_DENIED);
    const okBefore = agent.status.heartbeatsOk;
    await waitFor('heartbeats again', () => agent.status.heartbeatsOk > okBefore + 1);

    expect(agent.status.heartbeatsFailed).toBe(2);
    expect(agent.status.lastError?.message).toMatch(/PERMISSION_DENIED: test double fails/);
    expect(fleet.enrollments).toHaveLength(1);
  });

  it('fails to start, naming the token, when the enrollment token is refused', async () => {
    const agent = newAgent({ enrollmentToken: 'not-the-fleet-secret' });
    await expect(agent.start()).rejects.toThrow(
      /enrollment failed: Enroll to .* failed: UNAUTHENTICATED: .*check the enrollment token/,
    );
    expect(agent.status.state).toBe('stopped');
    await expect(fetch(agent.metricsUrl!)).rejects.toThrow();
    expect(await storedIdentity()).toBeUndefined();
  });

  it('waits at start for a control plane that is not up yet', async () => {
    fleet.stop();
    const agent = newAgent();
    const started = agent.start();
    await waitFor('a failed enrollment', () => agent.status.lastError?.code === 'UNAVAILABLE');
    await fleet.start();
    await started;
    expect(agent.deviceId).toBe('d-1');
    await waitFor('a heartbeat', () => agent.status.heartbeatsOk >= 1);
  });

  it('stops cleanly while still waiting to enroll', async () => {
    fleet.stop();
    const agent = newAgent();
    const started = agent.start();
    await waitFor('a failed enrollment', () => agent.status.lastError !== undefined);
    await agent.stop();
    await expect(started).rejects.toThrow(/stopped before it enrolled/);
    expect(agent.status.state).toBe('stopped');
  });

  it('serves its last good model at start and reports it, and its latencies, in heartbeats', async () => {
    // What an earlier run left: a verified model and the state naming it.
    const model = hotFeatureClassifier();
    const manifest = testManifest({ model, hardwareClasses: ['aarch64-neon-nofp16-cpu-4g'] });
    const store = new ModelStore(join(dir, 'data'));
    await store.open();
    await writeFile(store.modelFile(manifest), model);
    await store.saveState({ active: { manifest, signature: 'c2ln' }, previous: null });

    const agent = newAgent();
    await agent.start();
    const served = await fetch(`${agent.inferenceUrl}/v1/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: Array.from({ length: 16 }, (_, i) => (i === 2 ? 1 : 0)) }),
    });
    expect(served.status).toBe(200);
    await waitFor('a beat carrying the latency', () =>
      fleet.heartbeats.some((b) => b.request.inferenceLatency?.count === 1),
    );
    const beat = fleet.heartbeats.find((b) => b.request.inferenceLatency)!.request;
    expect(beat).toMatchObject({
      state: DeviceState.DEVICE_STATE_SERVING,
      activeModel: {
        modelId: 'hot-feature',
        variant: 'fp32',
        version: 1,
        sha256: manifest.model.sha256,
      },
    });

    // Counts leave the delta only once a beat carrying them was accepted.
    fleet.heartbeatFailures.push(status.UNAVAILABLE);
    await fetch(`${agent.inferenceUrl}/v1/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: new Array<number>(16).fill(0) }),
    });
    await waitFor('the failed beat to pass', () => fleet.heartbeatFailures.length === 0);
    const beatsBefore = fleet.heartbeats.length;
    await waitFor('another accepted beat', () => fleet.heartbeats.length > beatsBefore);
    const carried = fleet.heartbeats
      .map((b) => b.request.inferenceLatency?.count ?? 0)
      .reduce((sum, c) => sum + c, 0);
    expect(carried).toBe(2);
  });

  it('warns once at start that it simulates faults, only when its override file asks', async () => {
    const warnings = async (profile: Record<string, unknown>) => {
      await writeFile(profileFile, JSON.stringify({ cpuinfoFile: PI4_CPUINFO, ...profile }));
      const lines: { msg: string; simulate?: unknown }[] = [];
      const logger = pino(
        { level: 'warn' },
        { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[0]) },
      );
      const agent = newAgent({ logger });
      await agent.start();
      await waitFor('heartbeats', () => agent.status.heartbeatsOk >= 2);
      await agent.stop();
      return lines.filter((l) => /simulates hardware faults/.test(l.msg));
    };
    const simulate = { accuracyFaults: [{ variants: 'int8_*', flipShare: 0.3 }] };
    expect(await warnings({ simulate })).toEqual([expect.objectContaining({ simulate })]);
    expect(await warnings({})).toEqual([]);
  });
});
