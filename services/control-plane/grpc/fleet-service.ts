import { createHash } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import { bucketOptions, type NatsConnection } from '../../../common/nats.js';
import { deviceDesiredKey, KV_BUCKETS } from '../../../common/names.js';
import { deriveHardwareClass } from '../../../common/hardware/index.js';
import {
  DeviceState,
  StatusEvent,
  type FleetServiceServer,
} from '../../../proto/gen/edgeforge/v1/fleet.pb.js';
import { PermissionDeniedError, UnauthenticatedError, secretMatches } from '../auth/credentials.js';
import type { DeviceRegistry } from '../registry/device-registry.js';
import type { RolloutSignals } from '../rollouts/rollout-signals.js';
import {
  nextServing,
  revokedCallRefusal,
  revokedEnrollRefusal,
  type DeviceRecord,
} from '../registry/device-record.js';
import { unary, type Caller, type UnaryContext } from './unary.js';
import {
  validateEnroll,
  validateHeartbeat,
  validateReportBenchmark,
  validateReportStatus,
} from './validation.js';

export interface FleetServiceOptions {
  enrollmentToken: string;
  heartbeatIntervalSeconds: number;
  /** NATS URL handed to agents for desired state and models. */
  advertisedNatsUrl: string;
  /** Raw ed25519 public key that signs model manifests (pinned by agents at enrollment). */
  manifestPublicKey: Uint8Array;
  /** Forwards reports to the rollout workflows; never fails the device's call. */
  rolloutSignals: RolloutSignals;
}

/**
 * Stable device id from the name the device enrolls with, so enrolling again (after a wipe, or
 * with an expired credential) keeps the device's history instead of creating a twin.
 */
export function deviceIdFor(deviceName: string): string {
  return `d-${createHash('sha256').update(deviceName).digest('hex').slice(0, 20)}`;
}

function deviceOf(caller: Caller): string {
  if (caller.role !== 'device') throw new Error('unreachable: FleetService call without a device');
  return caller.claims.deviceId;
}

/**
 * A credential whose device is gone from the registry (registry reset, or deleted by an operator)
 * must enroll again; a revoked device's is refused outright. Checked inside each write's
 * compare-and-swap, so a call racing a revocation cannot slip through.
 */
function requireRecord(deviceId: string, record: DeviceRecord | undefined): DeviceRecord {
  if (!record) {
    throw new UnauthenticatedError(
      `device ${deviceId} is not in the fleet registry: enroll again`,
      {
        context: { deviceId },
      },
    );
  }
  const refusal = revokedCallRefusal(record);
  if (refusal) throw new PermissionDeniedError(refusal, { context: { deviceId } });
  return record;
}

export async function createFleetService(
  ctx: UnaryContext,
  registry: DeviceRegistry,
  nats: NatsConnection,
  options: FleetServiceOptions,
): Promise<FleetServiceServer> {
  const benchmarks: KV = await new Kvm(nats).create(
    KV_BUCKETS.benchmarks,
    bucketOptions({ history: 1 }),
  );
  // Enrolled agents watch their desired-state entry at once; without the bucket they back off
  // for up to a minute, and would see the orchestrator's first rollout that much later.
  const desired = await new Kvm(nats).create(KV_BUCKETS.desiredState, bucketOptions());
  /** Whether the orchestrator asked this device to benchmark for this rollout (a canary). */
  const askedToBenchmark = async (deviceId: string, rolloutId: string) => {
    const entry = await desired.get(deviceDesiredKey(deviceId));
    if (entry?.operation !== 'PUT') return false;
    try {
      const state = entry.json<{ kind?: unknown; rolloutId?: unknown }>();
      return state.kind === 'benchmark' && state.rolloutId === rolloutId;
    } catch {
      return false;
    }
  };
  const service = 'edgeforge.v1.FleetService';

  return {
    enroll: unary(ctx, service, 'Enroll', 'anyone', async (request, _caller, log) => {
      const req = validateEnroll(request);
      if (!secretMatches(req.enrollmentToken, options.enrollmentToken)) {
        throw new UnauthenticatedError(
          "enrollment_token is not this fleet's enrollment token: ask the operator for the current one",
        );
      }
      const deviceId = deviceIdFor(req.deviceName);
      const hardwareClass = deriveHardwareClass(req.profile).key;
      const now = new Date().toISOString();
      let known = false;
      await registry.update(deviceId, (current) => {
        known = current !== undefined;
        // Its name does not buy a revoked device back in: only deleting it does.
        const refusal = current && revokedEnrollRefusal(current);
        if (refusal) throw new PermissionDeniedError(refusal, { context: { deviceId } });
        return {
          deviceId,
          deviceName: req.deviceName,
          hardwareClass,
          profile: req.profile,
          agentVersion: req.agentVersion,
          state: current?.state ?? DeviceState[DeviceState.DEVICE_STATE_IDLE],
          enrolledAt: current?.enrolledAt ?? now,
          lastSeenAt: now,
          heartbeatCount: current?.heartbeatCount ?? 0,
          activeModel: current?.activeModel ?? null,
          lastStatus: current?.lastStatus ?? null,
          // Enrolling again (a lost credential) changes nothing about what the device serves.
          serving: current?.serving ?? null,
        };
      });
      ctx.metrics.enrollments.inc({ kind: known ? 'again' : 'new' });
      const { credential, claims } = ctx.authority.issue(deviceId);
      log.info(
        { deviceId, deviceName: req.deviceName, hardwareClass, again: known },
        'device enrolled',
      );
      return {
        deviceId,
        deviceCredential: credential,
        credentialExpiresAt: new Date(claims.expiresAt * 1000),
        hardwareClass,
        manifestPublicKey: Buffer.from(options.manifestPublicKey),
        natsUrl: options.advertisedNatsUrl,
      };
    }),

    heartbeat: unary(ctx, service, 'Heartbeat', 'device', async (request, caller) => {
      const deviceId = deviceOf(caller);
      const req = validateHeartbeat(request);
      const now = new Date().toISOString();
      const updated = await registry.update(deviceId, (current) => {
        const record = requireRecord(deviceId, current);
        return {
          ...record,
          state: DeviceState[req.state] ?? record.state,
          lastSeenAt: now,
          heartbeatCount: record.heartbeatCount + 1,
          activeModel: req.activeModel,
          serving: nextServing(record.serving, req.activeModel, req.inferenceLatency, now),
          ...(req.profile
            ? { profile: req.profile, hardwareClass: deriveHardwareClass(req.profile).key }
            : {}),
        };
      });
      // After the write: a beat the registry refused leaves its latencies with the agent.
      ctx.metrics.recordEdgeLatency(updated.hardwareClass, req.activeModel, req.inferenceLatency);
      const renewal =
        caller.role === 'device' && ctx.authority.shouldRenew(caller.claims)
          ? ctx.authority.issue(deviceId)
          : undefined;
      return {
        nextHeartbeatSeconds: options.heartbeatIntervalSeconds,
        renewedCredential: renewal?.credential ?? '',
        renewedCredentialExpiresAt: renewal ? new Date(renewal.claims.expiresAt * 1000) : undefined,
        // Every beat: an agent enrolled against an earlier NATS server finds the current one.
        natsUrl: options.advertisedNatsUrl,
      };
    }),

    reportBenchmark: unary(
      ctx,
      service,
      'ReportBenchmark',
      'device',
      async (request, caller, log) => {
        const deviceId = deviceOf(caller);
        const req = validateReportBenchmark(request);
        const device = requireRecord(deviceId, registry.get(deviceId));
        const key = `${req.rolloutId}.${req.variant}.${deviceId}`;
        const report = { ...request, deviceId, receivedAt: new Date().toISOString() };
        // create() fails when the key exists: a repeated report is recorded once.
        const recorded = await benchmarks.create(key, JSON.stringify(report)).then(
          () => true,
          async (err: unknown) => {
            if ((await benchmarks.get(key))?.operation === 'PUT') return false;
            throw err;
          },
        );
        // Only a canary's report reaches the workflow: any other device's would only grow its
        // history (a device cannot make itself count by reporting unasked).
        if (recorded && (await askedToBenchmark(deviceId, req.rolloutId))) {
          options.rolloutSignals.benchmarkReported(device, request);
        }
        ctx.metrics.recordBenchmark(registry.get(deviceId)?.hardwareClass, request, recorded);
        log.info(
          { rolloutId: req.rolloutId, variant: req.variant, recorded },
          'benchmark reported',
        );
        return { recorded };
      },
    ),

    reportStatus: unary(ctx, service, 'ReportStatus', 'device', async (request, caller, log) => {
      const deviceId = deviceOf(caller);
      const req = validateReportStatus(request);
      const at = new Date().toISOString();
      await registry.update(deviceId, (current) => ({
        ...requireRecord(deviceId, current),
        lastSeenAt: at,
        ...(req.activeModel ? { activeModel: req.activeModel } : {}),
        lastStatus: {
          event: StatusEvent[req.event] ?? String(req.event),
          rolloutId: req.rolloutId,
          variant: req.variant,
          detail: req.detail,
          at,
        },
      }));
      ctx.metrics.recordModelEvent(registry.get(deviceId)?.hardwareClass, req.event);
      // No signal: the rollout reads the outcome counts the census keeps from the registry.
      log.info(
        { event: StatusEvent[req.event], rolloutId: req.rolloutId, variant: req.variant },
        'device status',
      );
      return {};
    }),
  };
}
