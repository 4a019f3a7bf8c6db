import {
  Connectivity,
  type AdminServiceServer,
  type Device,
} from '../../../proto/gen/edgeforge/v1/admin.pb.js';
import { DeviceState } from '../../../proto/gen/edgeforge/v1/fleet.pb.js';
import { profileToProto } from '../../../common/fleet-api.js';
import type { DeviceRegistry } from '../registry/device-registry.js';
import {
  connectivityOf,
  revoked,
  type ConnectivityThresholds,
  type DeviceRecord,
} from '../registry/device-record.js';
import { InvalidArgumentError, NotFoundError } from './errors.js';
import { createRolloutAdmin, type RolloutAdminDependencies } from './rollout-admin.js';
import { unary, type UnaryContext } from './unary.js';
import { validateListDevices } from './validation.js';

const CONNECTIVITY: Record<string, Connectivity> = {
  online: Connectivity.CONNECTIVITY_ONLINE,
  stale: Connectivity.CONNECTIVITY_STALE,
  offline: Connectivity.CONNECTIVITY_OFFLINE,
  revoked: Connectivity.CONNECTIVITY_REVOKED,
};

/** The longest reason RevokeDevice keeps: it goes into every refusal the device gets. */
export const MAX_REVOKE_REASON = 500;

function unknownDevice(deviceId: string): NotFoundError {
  return new NotFoundError(`no device ${deviceId} in the registry`, { context: { deviceId } });
}

export function toDeviceMessage(
  record: DeviceRecord,
  now: number,
  thresholds: ConnectivityThresholds,
): Device {
  return {
    deviceId: record.deviceId,
    deviceName: record.deviceName,
    hardwareClass: record.hardwareClass,
    profile: profileToProto(record.profile),
    state:
      DeviceState[record.state as keyof typeof DeviceState] ?? DeviceState.DEVICE_STATE_UNSPECIFIED,
    connectivity:
      CONNECTIVITY[connectivityOf(record, now, thresholds)] ??
      Connectivity.CONNECTIVITY_UNSPECIFIED,
    enrolledAt: new Date(record.enrolledAt),
    lastSeenAt: new Date(record.lastSeenAt),
    activeModel: record.activeModel ?? undefined,
    agentVersion: record.agentVersion,
    revokedAt: record.revokedAt ? new Date(record.revokedAt) : undefined,
    revokedReason: record.revokedReason ?? '',
  };
}

export function createAdminService(
  ctx: UnaryContext,
  registry: DeviceRegistry,
  thresholds: ConnectivityThresholds,
  rollouts: RolloutAdminDependencies,
): AdminServiceServer {
  const service = 'edgeforge.v1.AdminService';
  return {
    listDevices: unary(ctx, service, 'ListDevices', 'admin', (request) => {
      const req = validateListDevices(request);
      // The page token is the last device id of the previous page: stable while devices enroll.
      const after = req.pageToken ? Buffer.from(req.pageToken, 'base64url').toString() : '';
      const matching = registry
        .list()
        .filter(
          (d) =>
            (!req.hardwareClass || d.hardwareClass === req.hardwareClass) && d.deviceId > after,
        );
      const page = matching.slice(0, req.pageSize);
      const last = page.at(-1);
      const now = Date.now();
      return {
        devices: page.map((d) => toDeviceMessage(d, now, thresholds)),
        nextPageToken:
          matching.length > page.length && last
            ? Buffer.from(last.deviceId).toString('base64url')
            : '',
      };
    }),

    getDevice: unary(ctx, service, 'GetDevice', 'admin', (request) => {
      if (!request.deviceId) throw new InvalidArgumentError('device_id', 'is required');
      const record = registry.get(request.deviceId);
      if (!record) throw unknownDevice(request.deviceId);
      return { device: toDeviceMessage(record, Date.now(), thresholds) };
    }),

    revokeDevice: unary(ctx, service, 'RevokeDevice', 'admin', async (request, _caller, log) => {
      const deviceId = request.deviceId;
      if (!deviceId) throw new InvalidArgumentError('device_id', 'is required');
      const reason = request.reason.trim();
      if (Array.from(reason).length > MAX_REVOKE_REASON) {
        throw new InvalidArgumentError('reason', `is longer than ${MAX_REVOKE_REASON} characters`);
      }
      // Checked here and inside the compare-and-swap (a delete may race in between).
      if (!registry.get(deviceId)) throw unknownDevice(deviceId);
      const now = new Date().toISOString();
      let already = false;
      const record = await registry.update(deviceId, (current) => {
        if (!current) throw unknownDevice(deviceId);
        already = current.revokedAt !== undefined;
        return revoked(current, reason, now);
      });
      if (!already) {
        log.info(
          { deviceId, deviceName: record.deviceName, reason: record.revokedReason },
          'device revoked',
        );
      }
      return { device: toDeviceMessage(record, Date.now(), thresholds), revoked: !already };
    }),

    deleteDevice: unary(ctx, service, 'DeleteDevice', 'admin', async (request, _caller, log) => {
      const deviceId = request.deviceId;
      if (!deviceId) throw new InvalidArgumentError('device_id', 'is required');
      const removed = await registry.delete(deviceId);
      if (!removed) throw unknownDevice(deviceId);
      log.info(
        { deviceId, deviceName: removed.deviceName, wasRevoked: Boolean(removed.revokedAt) },
        'device deleted',
      );
      return {};
    }),

    ...createRolloutAdmin(ctx, rollouts),
  };
}
