import { randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { beforeEach, describe, expect, it } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import { Connectivity } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import { DeviceState, StatusEvent } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import {
  ADMIN_TOKEN,
  benchmarkReport,
  ENROLLMENT_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { fixtureProfile } from '../helpers/profiles.js';
import { testNats } from '../helpers/stack.js';

async function refusal(promise: Promise<unknown>): Promise<ServiceError> {
  return (await promise.then(
    () => {
      throw new Error('expected the call to be refused, but it succeeded');
    },
    (e: unknown) => e,
  )) as ServiceError;
}

async function expectStatus(promise: Promise<unknown>, code: status, details?: RegExp) {
  const err = await refusal(promise);
  expect(status[err.code], err.details).toBe(status[code]);
  if (details) expect(err.details).toMatch(details);
}

const enrollRequest = (deviceName: string) => ({
  enrollmentToken: ENROLLMENT_TOKEN,
  deviceName,
  profile: profileToProto(fixtureProfile('raspberry-pi-4')),
  agentVersion: '0.1.0',
});

describe('revoking and deleting devices', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('cuts a revoked agent off at once; it does not re-enrol; delete lets it back in', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const agent = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    await eventually(() => expect(agent.status.heartbeatsOk).toBeGreaterThanOrEqual(1));
    const deviceId = agent.deviceId!;
    const name = agent.options.deviceName;
    expect(agent.status.enrollments).toBe(1);

    const revokedAt = Date.now();
    const { device, revoked } = await api.revokeDevice(
      { deviceId, reason: 'stolen from site 4' },
      ADMIN_TOKEN,
    );
    expect(revoked).toBe(true);
    expect(device).toMatchObject({
      deviceId,
      connectivity: Connectivity.CONNECTIVITY_REVOKED,
      revokedReason: 'stolen from site 4',
    });

    // Heartbeats every second (±10%): the next one is refused.
    await eventually(() => {
      expect(agent.status.revoked).toBe(true);
      expect(agent.status.lastError).toMatchObject({ code: 'PERMISSION_DENIED' });
    }, 5_000);
    expect(Date.now() - revokedAt).toBeLessThan(2_500);
    expect(agent.status.lastError?.message).toMatch(
      /was revoked by an operator at .*: stolen from site 4; nothing this device can do/,
    );
    // It keeps asking (at its backoff cap, 500 ms in tests), never enrolling again.
    const failed = agent.status.heartbeatsFailed;
    await eventually(() => expect(agent.status.heartbeatsFailed).toBeGreaterThan(failed + 1));
    expect(agent.status.enrollments).toBe(1);

    await expectStatus(
      api.enroll(enrollRequest(name)),
      status.PERMISSION_DENIED,
      new RegExp(
        `device ${deviceId} \\(${name}\\) was revoked by an operator at .*: stolen from site 4; ` +
          'an operator must delete it before it can enrol again',
      ),
    );

    const { devices } = await api.listDevices(
      { hardwareClass: '', pageSize: 0, pageToken: '' },
      ADMIN_TOKEN,
    );
    expect(devices).toEqual([
      expect.objectContaining({
        deviceId,
        connectivity: Connectivity.CONNECTIVITY_REVOKED,
        revokedAt: expect.any(Date) as Date,
        revokedReason: 'stolen from site 4',
      }),
    ]);
    // Not online in the fleet gauge either.
    const metrics = await (await fetch(cp.metricsUrl)).text();
    expect(metrics).toMatch(/edgeforge_fleet_devices\{[^}]*connectivity="revoked"[^}]*\} 1/);
    expect(metrics).toMatch(/edgeforge_fleet_devices\{[^}]*connectivity="online"[^}]*\} 0/);

    // Deleted: its next beat is an unknown device's, and it enrols again as a new device.
    const before = (await api.getDevice({ deviceId }, ADMIN_TOKEN)).device!;
    await api.deleteDevice({ deviceId }, ADMIN_TOKEN);
    await eventually(() => {
      expect(agent.status.enrollments).toBe(2);
      expect(agent.status.revoked).toBe(false);
    }, 10_000);
    const again = (await api.getDevice({ deviceId }, ADMIN_TOKEN)).device!;
    expect(again.revokedAt).toBeUndefined();
    expect(again.revokedReason).toBe('');
    expect(again.enrolledAt!.getTime()).toBeGreaterThan(before.enrolledAt!.getTime());
    await eventually(async () => {
      const { device: d } = await api.getDevice({ deviceId }, ADMIN_TOKEN);
      expect(d?.connectivity).toBe(Connectivity.CONNECTIVITY_ONLINE);
    });
  });

  it('refuses every device call of a revoked credential, idempotently, until deleted', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const name = `device-${randomUUID()}`;
    const { deviceId, deviceCredential } = await api.enroll(enrollRequest(name));

    const first = await api.revokeDevice({ deviceId, reason: '' }, ADMIN_TOKEN);
    const second = await api.revokeDevice({ deviceId, reason: 'another reason' }, ADMIN_TOKEN);
    expect(first.revoked).toBe(true);
    expect(second.revoked).toBe(false);
    // The first revocation stands.
    expect(second.device?.revokedAt).toEqual(first.device?.revokedAt);
    expect(second.device?.revokedReason).toBe('');

    const revokedCall =
      /was revoked by an operator at .*: \(no reason given\); nothing this device/;
    await expectStatus(
      api.heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, deviceCredential),
      status.PERMISSION_DENIED,
      revokedCall,
    );
    await expectStatus(
      api.reportStatus(
        {
          event: StatusEvent.STATUS_EVENT_ACTIVATED,
          rolloutId: 'r-1',
          variant: 'int8',
          detail: '',
        },
        deviceCredential,
      ),
      status.PERMISSION_DENIED,
      revokedCall,
    );
    await expectStatus(
      api.reportBenchmark(benchmarkReport('r-1', 'int8'), deviceCredential),
      status.PERMISSION_DENIED,
      revokedCall,
    );
    await expectStatus(api.enroll(enrollRequest(name)), status.PERMISSION_DENIED, /must delete it/);

    await expectStatus(
      api.revokeDevice({ deviceId: 'd-missing', reason: '' }, ADMIN_TOKEN),
      status.NOT_FOUND,
      /no device d-missing/,
    );
    await expectStatus(
      api.deleteDevice({ deviceId: 'd-missing' }, ADMIN_TOKEN),
      status.NOT_FOUND,
      /no device d-missing/,
    );

    await api.deleteDevice({ deviceId }, ADMIN_TOKEN);
    await expectStatus(
      api.heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, deviceCredential),
      status.UNAUTHENTICATED,
      /not in the fleet registry/,
    );
    const back = await api.enroll(enrollRequest(name));
    expect(back.deviceId).toBe(deviceId);
    await api.heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, back.deviceCredential);
  });

  it('takes the admin credential only', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const { deviceId, deviceCredential } = await api.enroll(enrollRequest(`d-${randomUUID()}`));
    for (const call of [
      (credential?: string) => api.revokeDevice({ deviceId, reason: '' }, credential),
      (credential?: string) => api.deleteDevice({ deviceId }, credential),
    ]) {
      await expectStatus(call(), status.UNAUTHENTICATED, /missing "authorization/);
      await expectStatus(
        call('wrong-admin-token'),
        status.UNAUTHENTICATED,
        /admin credential is wrong/,
      );
      await expectStatus(
        call(deviceCredential),
        status.PERMISSION_DENIED,
        /device credential cannot/,
      );
      await expectStatus(call(ENROLLMENT_TOKEN), status.UNAUTHENTICATED);
    }
    await expectStatus(
      api.revokeDevice({ deviceId: '', reason: '' }, ADMIN_TOKEN),
      status.INVALID_ARGUMENT,
      /device_id/,
    );
    // Nothing was revoked or deleted.
    const { device } = await api.getDevice({ deviceId }, ADMIN_TOKEN);
    expect(device?.revokedAt).toBeUndefined();
  });
});
