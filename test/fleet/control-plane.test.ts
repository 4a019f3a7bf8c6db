import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import { beforeEach, describe, expect, it } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import { KV_BUCKETS } from '../../common/names.js';
import { loadManifestKeyPair } from '../../common/manifest.js';
import { CredentialAuthority } from '../../services/control-plane/auth/credentials.js';
import { DeviceState, type EnrollRequest } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { Connectivity } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import {
  ADMIN_TOKEN,
  benchmarkReport,
  ENROLLMENT_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { fixtureProfile } from '../helpers/profiles.js';
import { testNats } from '../helpers/stack.js';

function enrollRequest(overrides: Partial<EnrollRequest> = {}): EnrollRequest {
  return {
    enrollmentToken: ENROLLMENT_TOKEN,
    deviceName: `device-${randomUUID()}`,
    profile: profileToProto(fixtureProfile('raspberry-pi-4')),
    agentVersion: '0.1.0',
    ...overrides,
  };
}

/** The registry's raw KV content: key → revision. Unchanged means nothing was written. */
async function registrySnapshot(
  nats: Awaited<ReturnType<typeof testNats>>,
): Promise<Map<string, number>> {
  const kv = await new Kvm(nats).open(KV_BUCKETS.devices);
  const snapshot = new Map<string, number>();
  for await (const key of await kv.keys()) {
    snapshot.set(key, (await kv.get(key))?.revision ?? -1);
  }
  return snapshot;
}

async function expectStatus(
  promise: Promise<unknown>,
  code: status,
  details?: RegExp,
): Promise<void> {
  const err = (await promise.then(
    () => {
      throw new Error(`expected ${status[code]}, but the call succeeded`);
    },
    (e: unknown) => e,
  )) as ServiceError;
  expect(status[err.code], err.details).toBe(status[code]);
  if (details) expect(err.details).toMatch(details);
}

describe('control plane', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('enrolls a device, takes its heartbeats and lists it', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const enrolled = await api.enroll(enrollRequest({ deviceName: 'pi-kitchen' }));
    expect(enrolled.deviceId).toMatch(/^d-[0-9a-f]{20}$/);
    expect(enrolled.hardwareClass).toBe('aarch64-neon-nofp16-cpu-4g');
    expect(enrolled.credentialExpiresAt!.getTime()).toBeGreaterThan(Date.now());
    // The fleet's manifest key, created on first start; devices pin it to verify models.
    const { publicKeyRaw } = loadManifestKeyPair(
      await readFile(`${cp.dataDir}/manifest-signing.pem`, 'utf8'),
    );
    expect(Buffer.from(enrolled.manifestPublicKey)).toEqual(publicKeyRaw);

    for (let i = 0; i < 3; i++) {
      const beat = await api.heartbeat(
        { state: DeviceState.DEVICE_STATE_IDLE },
        enrolled.deviceCredential,
      );
      expect(beat.nextHeartbeatSeconds).toBe(1);
    }
    const { device } = await api.getDevice({ deviceId: enrolled.deviceId }, ADMIN_TOKEN);
    expect(device).toMatchObject({
      deviceName: 'pi-kitchen',
      hardwareClass: 'aarch64-neon-nofp16-cpu-4g',
      connectivity: Connectivity.CONNECTIVITY_ONLINE,
      state: DeviceState.DEVICE_STATE_IDLE,
    });
    expect(cp.registry.get(enrolled.deviceId)?.heartbeatCount).toBe(3);

    // Enrolling again under the same name keeps the id and the history.
    const again = await api.enroll(enrollRequest({ deviceName: 'pi-kitchen' }));
    expect(again.deviceId).toBe(enrolled.deviceId);
    expect(cp.registry.get(enrolled.deviceId)?.heartbeatCount).toBe(3);
  });

  it('pages through devices and filters by hardware class', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const pi = profileToProto(fixtureProfile('raspberry-pi-4'));
    const xeon = profileToProto(
      fixtureProfile('intel-xeon-gold-6242-cascade-lake', { memoryBytes: 8 * 1024 ** 3 }),
    );
    for (let i = 0; i < 5; i++) await api.enroll(enrollRequest({ profile: pi }));
    for (let i = 0; i < 3; i++) await api.enroll(enrollRequest({ profile: xeon }));

    const seen: string[] = [];
    let pageToken = '';
    do {
      const page = await api.listDevices(
        { hardwareClass: '', pageSize: 3, pageToken },
        ADMIN_TOKEN,
      );
      expect(page.devices.length).toBeLessThanOrEqual(3);
      seen.push(...page.devices.map((d) => d.deviceId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toHaveLength(8);
    expect(new Set(seen).size).toBe(8);

    const xeons = await api.listDevices(
      { hardwareClass: 'x86_64-vnni-nofp16-cpu-8g', pageSize: 0, pageToken: '' },
      ADMIN_TOKEN,
    );
    expect(xeons.devices).toHaveLength(3);
  });

  describe('refuses bad input with the right status and leaves the registry unchanged', () => {
    const big = 'x'.repeat(300 * 1024);
    const badEnrollments: [string, Partial<EnrollRequest>, status, RegExp][] = [
      ['no device name', { deviceName: '' }, status.INVALID_ARGUMENT, /device_name: is required/],
      [
        'a device name with spaces',
        { deviceName: 'my device' },
        status.INVALID_ARGUMENT,
        /device_name: must match/,
      ],
      ['no profile', { profile: undefined }, status.INVALID_ARGUMENT, /^profile: is required/],
      [
        'zero cores',
        { profile: { ...profileToProto(fixtureProfile('raspberry-pi-4')), cores: 0 } },
        status.INVALID_ARGUMENT,
        /profile\.cores/,
      ],
      [
        'an absurd memory size',
        { profile: { ...profileToProto(fixtureProfile('raspberry-pi-4')), memoryBytes: 2 ** 52 } },
        status.INVALID_ARGUMENT,
        /profile\.memory_bytes/,
      ],
      ['no agent version', { agentVersion: '' }, status.INVALID_ARGUMENT, /agent_version/],
      [
        'a wrong enrollment token',
        { enrollmentToken: 'guess-guess-guess-guess' },
        status.UNAUTHENTICATED,
        /enrollment_token/,
      ],
      ['an oversized message', { agentVersion: big }, status.RESOURCE_EXHAUSTED, /./],
    ];
    it.each(badEnrollments)('Enroll with %s', async (_what, overrides, code, details) => {
      const cp = await startTestControlPlane();
      const api = rawClients(cp.address);
      await api.enroll(enrollRequest());
      const before = await registrySnapshot(cp.nats);
      await expectStatus(api.enroll(enrollRequest(overrides)), code, details);
      expect(await registrySnapshot(cp.nats)).toEqual(before);
    });

    it('credentials: missing, forged, expired, from another fleet, or for the wrong service', async () => {
      const cp = await startTestControlPlane();
      const api = rawClients(cp.address);
      const { deviceId, deviceCredential } = await api.enroll(enrollRequest());
      const before = await registrySnapshot(cp.nats);
      const key = await readFile(`${cp.dataDir}/credential.key`);
      const expired = new CredentialAuthority(key, 60, () => Date.now() - 3600_000).issue(
        deviceId,
      ).credential;
      const foreign = new CredentialAuthority(CredentialAuthority.generateKey(), 60).issue(
        deviceId,
      ).credential;
      const beat = { state: DeviceState.DEVICE_STATE_IDLE };

      await expectStatus(api.heartbeat(beat), status.UNAUTHENTICATED, /missing "authorization/);
      await expectStatus(
        api.heartbeat(beat, 'not-a-credential'),
        status.UNAUTHENTICATED,
        /malformed/,
      );
      await expectStatus(
        api.heartbeat(beat, `${deviceCredential.slice(0, -4)}AAAA`),
        status.UNAUTHENTICATED,
        /signature/,
      );
      await expectStatus(api.heartbeat(beat, expired), status.UNAUTHENTICATED, /expired at/);
      await expectStatus(api.heartbeat(beat, foreign), status.UNAUTHENTICATED, /signature/);
      await expectStatus(
        api.heartbeat(beat, ADMIN_TOKEN),
        status.PERMISSION_DENIED,
        /admin credential cannot call FleetService/,
      );
      await expectStatus(
        api.listDevices({ hardwareClass: '', pageSize: 0, pageToken: '' }, deviceCredential),
        status.PERMISSION_DENIED,
        /device credential cannot call AdminService/,
      );
      await expectStatus(
        api.getDevice({ deviceId }, 'wrong-admin-token'),
        status.UNAUTHENTICATED,
        /admin credential is wrong/,
      );
      await expectStatus(api.getDevice({ deviceId }), status.UNAUTHENTICATED);
      expect(await registrySnapshot(cp.nats)).toEqual(before);
    });

    it('heartbeats and reports with bad fields', async () => {
      const cp = await startTestControlPlane();
      const api = rawClients(cp.address);
      const { deviceCredential: cred } = await api.enroll(enrollRequest());
      const before = await registrySnapshot(cp.nats);
      await expectStatus(
        api.heartbeat({ state: DeviceState.DEVICE_STATE_UNSPECIFIED }, cred),
        status.INVALID_ARGUMENT,
        /^state: /,
      );
      await expectStatus(
        api.heartbeat({ state: 42 as DeviceState }, cred),
        status.INVALID_ARGUMENT,
        /^state: is 42/,
      );
      await expectStatus(
        api.heartbeat(
          {
            state: DeviceState.DEVICE_STATE_SERVING,
            inferenceLatency: {
              bucketUpperBounds: [0.01, 0.1],
              bucketCounts: [1, 2, 3],
              sumSeconds: 0.2,
              count: 7,
            },
          },
          cred,
        ),
        status.INVALID_ARGUMENT,
        /inference_latency\.count: is 7 but the buckets add up to 6/,
      );
      await expectStatus(
        api.heartbeat(
          {
            state: DeviceState.DEVICE_STATE_SERVING,
            activeModel: { modelId: 'm', variant: 'int8', version: 1, sha256: 'nothex' },
          },
          cred,
        ),
        status.INVALID_ARGUMENT,
        /active_model\.sha256/,
      );
      await expectStatus(
        api.getDevice({ deviceId: 'd-nope' }, ADMIN_TOKEN),
        status.NOT_FOUND,
        /d-nope/,
      );
      await expectStatus(
        api.listDevices({ hardwareClass: '', pageSize: 5000, pageToken: '' }, ADMIN_TOKEN),
        status.INVALID_ARGUMENT,
        /page_size/,
      );
      expect(await registrySnapshot(cp.nats)).toEqual(before);
    });
  });

  it('never loses a heartbeat when two control planes write the same device at once', async () => {
    const first = await startTestControlPlane();
    const second = await first.restart();
    const a = rawClients(first.address);
    const b = rawClients(second.address);
    const { deviceId, deviceCredential } = await a.enroll(enrollRequest());
    const beats = 100;
    await Promise.all(
      Array.from({ length: beats }, (_, i) =>
        (i % 2 ? a : b).heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, deviceCredential),
      ),
    );
    const kv = await new Kvm(first.nats).open(KV_BUCKETS.devices);
    const stored = (await kv.get(deviceId))?.json<{ heartbeatCount: number }>();
    expect(stored?.heartbeatCount).toBe(beats);
    // Both replicas raced on one key, so compare-and-swap must have refused some writes.
    const conflicts = async (url: string) =>
      Number(
        /^edgeforge_registry_cas_conflicts_total (\d+)/m.exec(await (await fetch(url)).text())?.[1],
      );
    expect(
      (await conflicts(first.metricsUrl)) + (await conflicts(second.metricsUrl)),
    ).toBeGreaterThan(0);
  });

  it('keeps credentials valid across a restart', async () => {
    const cp = await startTestControlPlane();
    const { deviceCredential } = await rawClients(cp.address).enroll(enrollRequest());
    await cp.stop();
    const restarted = await cp.restart();
    const beat = await rawClients(restarted.address).heartbeat(
      { state: DeviceState.DEVICE_STATE_IDLE },
      deviceCredential,
    );
    expect(beat.nextHeartbeatSeconds).toBe(1);
  });

  it('records a benchmark report once per (device, rollout, variant)', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const { deviceCredential } = await api.enroll(enrollRequest());
    const report = benchmarkReport('r-1', 'int8-static');
    expect((await api.reportBenchmark(report, deviceCredential)).recorded).toBe(true);
    expect((await api.reportBenchmark(report, deviceCredential)).recorded).toBe(false);
    await expectStatus(
      api.reportBenchmark(
        { ...report, variant: 'fp16', latency: { ...report.latency, p99Ms: 0.5 } },
        deviceCredential,
      ),
      status.INVALID_ARGUMENT,
      /latency\.p99_ms: is below latency\.p95_ms/,
    );
  });

  it('exports fleet gauges and gRPC metrics without per-device labels', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    await api.enroll(enrollRequest());
    await api.enroll(
      enrollRequest({ profile: profileToProto(fixtureProfile('amd-ryzen-9-5950x-zen3')) }),
    );
    const text = await (await fetch(cp.metricsUrl)).text();
    expect(text).toContain(
      'edgeforge_fleet_devices{hardware_class="aarch64-neon-nofp16-cpu-4g",connectivity="online"} 1',
    );
    expect(text).toContain(
      'edgeforge_fleet_devices{hardware_class="x86_64-avx2-nofp16-cpu-4g",connectivity="online"} 1',
    );
    expect(text).toMatch(
      /edgeforge_grpc_server_handled_total\{grpc_service="edgeforge.v1.FleetService",grpc_method="Enroll",grpc_code="OK"\} 2/,
    );
    expect(text).toMatch(
      /edgeforge_grpc_server_handling_seconds_bucket\{le="0.005",grpc_service="edgeforge.v1.FleetService",grpc_method="Enroll"\}/,
    );
    expect(text).not.toMatch(/device_id|d-[0-9a-f]{20}/);
  });
});
