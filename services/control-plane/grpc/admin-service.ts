import {
  Connectivity,
  type AdminServiceServer,
  type Device,
  type PendingEnrollment as PendingEnrollmentMessage,
} from '../../../proto/gen/edgeforge/v1/admin.pb.js';
import { DeviceState } from '../../../proto/gen/edgeforge/v1/fleet.pb.js';
import { profileToProto } from '../../../common/fleet-api.js';
import type { DeviceRegistry } from '../registry/device-registry.js';
import {
  connectivityOf,
  revoked,
  revokedEnrollRefusal,
  type ConnectivityThresholds,
  type DeviceRecord,
} from '../registry/device-record.js';
import { keyFingerprint } from '../registry/device-key.js';
import type { PendingEnrollment } from '../registry/enrollment-store.js';
import { withApprovedKey } from '../registry/key-decision.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors.js';
import { deviceIdFor } from './fleet-service.js';
import { createRolloutAdmin, type RolloutAdminDependencies } from './rollout-admin.js';
import type { FleetKeys } from '../auth/fleet-keys.js';
import { createKeyRotationAdmin } from './key-rotation-admin.js';
import { unary, type UnaryContext } from './unary.js';
import {
  validateCreateEnrollmentToken,
  validateListDevices,
  validatePendingId,
} from './validation.js';

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
  keys: FleetKeys,
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

    ...createEnrollmentAdmin(ctx, registry, thresholds),
    ...createRolloutAdmin(ctx, rollouts),
    ...createKeyRotationAdmin(ctx, keys),
  };
}

function toPendingMessage(
  pending: PendingEnrollment,
  current: DeviceRecord | undefined,
): PendingEnrollmentMessage {
  return {
    pendingId: pending.pendingId,
    deviceId: pending.deviceId,
    deviceName: pending.deviceName,
    keyFingerprint: keyFingerprint(pending.publicKey),
    currentKeyFingerprint: current?.publicKey ? keyFingerprint(current.publicKey) : '',
    requestedAt: new Date(pending.requestedAt),
    expiresAt: new Date(pending.expiresAt),
    hardwareClass: pending.hardwareClass,
    agentVersion: pending.agentVersion,
  };
}

function unknownPending(pendingId: string): NotFoundError {
  return new NotFoundError(
    `no pending enrolment ${pendingId}: it was approved, rejected or expired, or a newer ` +
      'request of the device replaced it (`edgeforge fleet pending` lists those that stand)',
  );
}

type EnrollmentMethods = Pick<
  AdminServiceServer,
  | 'listPendingEnrollments'
  | 'approvePendingEnrollment'
  | 'rejectPendingEnrollment'
  | 'createEnrollmentToken'
>;

/** Device keys: enrolments waiting for an operator, and one-time enrollment tokens. */
function createEnrollmentAdmin(
  ctx: UnaryContext,
  registry: DeviceRegistry,
  thresholds: ConnectivityThresholds,
): EnrollmentMethods {
  const service = 'edgeforge.v1.AdminService';
  return {
    listPendingEnrollments: unary(ctx, service, 'ListPendingEnrollments', 'admin', async () => {
      const pending = await registry.enrollments.listPending(Date.now());
      return {
        pending: pending
          .map((p) => ({ p, current: registry.get(p.deviceId) }))
          // Moot ones: the device was deleted (its name enrols as new), or has this key now.
          .filter(({ p, current }) => current !== undefined && current.publicKey !== p.publicKey)
          .map(({ p, current }) => toPendingMessage(p, current)),
      };
    }),

    approvePendingEnrollment: unary(
      ctx,
      service,
      'ApprovePendingEnrollment',
      'admin',
      async (request, _caller, log) => {
        const pendingId = validatePendingId(request.pendingId);
        const now = Date.now();
        const pending = await registry.enrollments.findPending(pendingId, now);
        if (!pending) throw unknownPending(pendingId);
        const { deviceId } = pending;
        let before: DeviceRecord | undefined;
        const record = await registry.update(deviceId, (current) => {
          if (!current) {
            throw new NotFoundError(
              `device ${deviceId} of pending enrolment ${pendingId} is no longer in the registry: ` +
                'its name enrols as a new device, no approval needed',
              { context: { deviceId } },
            );
          }
          const refusal = revokedEnrollRefusal(current);
          if (refusal) {
            throw new FailedPreconditionError(`${refusal}; a new key would not let it in`, {
              context: { deviceId },
            });
          }
          before = current;
          return withApprovedKey(current, pending, now);
        });
        await registry.enrollments.removePending(pendingId);
        log.info(
          {
            deviceId,
            deviceName: record.deviceName,
            pendingId,
            keyFingerprint: keyFingerprint(pending.publicKey),
            previousKeyFingerprint: before?.publicKey ? keyFingerprint(before.publicKey) : null,
          },
          'pending enrolment approved: the device has a new key',
        );
        return {
          device: toDeviceMessage(record, Date.now(), thresholds),
          approved: toPendingMessage(pending, before),
        };
      },
    ),

    rejectPendingEnrollment: unary(
      ctx,
      service,
      'RejectPendingEnrollment',
      'admin',
      async (request, _caller, log) => {
        const pendingId = validatePendingId(request.pendingId);
        if (!(await registry.enrollments.removePending(pendingId))) throw unknownPending(pendingId);
        log.info({ pendingId }, 'pending enrolment rejected');
        return {};
      },
    ),

    createEnrollmentToken: unary(
      ctx,
      service,
      'CreateEnrollmentToken',
      'admin',
      async (request, _caller, log) => {
        const req = validateCreateEnrollmentToken(request);
        const deviceId = deviceIdFor(req.deviceName);
        const current = registry.get(deviceId);
        const refusal = current && revokedEnrollRefusal(current);
        if (refusal) {
          throw new FailedPreconditionError(`${refusal}; a token would not let it in`, {
            context: { deviceId },
          });
        }
        const { token, expiresAt } = await registry.enrollments.createToken(
          req.deviceName,
          deviceId,
          req.ttlSeconds,
          Date.now(),
        );
        // Never the token itself: only the answer carries it.
        log.info(
          { deviceId, deviceName: req.deviceName, expiresAt, existing: current !== undefined },
          'one-time enrollment token created',
        );
        return { enrollmentToken: token, expiresAt, deviceId };
      },
    ),
  };
}
