import { setTimeout as sleep } from 'node:timers/promises';
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
import type { FleetKeys } from '../auth/fleet-keys.js';
import { toRotationMessage } from './key-rotation-admin.js';
import { deviceIdFor } from '../registry/device-id.js';
import type { DeviceRegistry } from '../registry/device-registry.js';
import type { RolloutSignals } from '../rollouts/rollout-signals.js';
import {
  nextServing,
  revokedCallRefusal,
  revokedEnrollRefusal,
  type DeviceRecord,
} from '../registry/device-record.js';
import { AWAITING_APPROVAL_PHRASE, keyFingerprint } from '../registry/device-key.js';
import {
  enrollOutcome,
  staleCredentialRefusal,
  type KeyDecision,
} from '../registry/key-decision.js';
import { FailedPreconditionError, InvalidArgumentError } from './errors.js';
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
  /**
   * The manifest signing key (raw ed25519 public key and version, pinned by agents at
   * enrollment) and its rotation chain (handed to agents in every heartbeat); read per call, so
   * a rotation shows at once.
   */
  manifestKeys: Pick<FleetKeys, 'manifestKey' | 'manifestKeyRotations'>;
  /** Forwards reports to the rollout workflows; never fails the device's call. */
  rolloutSignals: RolloutSignals;
}

export { deviceIdFor };

function deviceOf(caller: Caller): string {
  if (caller.role !== 'device') throw new Error('unreachable: FleetService call without a device');
  return caller.claims.deviceId;
}

/**
 * A credential whose device is gone from the registry (registry reset, or deleted by an operator)
 * must enroll again, as must one issued before the device got another key; a revoked device's is
 * refused outright. Checked inside each write's
 * compare-and-swap, so a call racing a revocation cannot slip through.
 */
function requireRecord(
  deviceId: string,
  record: DeviceRecord | undefined,
  caller: Caller,
): DeviceRecord {
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
  // The device got another key (an operator approved it): the old key's credentials are void.
  const stale =
    caller.role === 'device' ? staleCredentialRefusal(record, caller.claims.issuedAt) : undefined;
  if (stale) throw new UnauthenticatedError(stale, { context: { deviceId } });
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
      const deviceId = deviceIdFor(req.deviceName);
      const nowMs = Date.now();
      const oneTimeToken = !secretMatches(req.enrollmentToken, options.enrollmentToken);
      if (oneTimeToken) {
        if (!req.deviceKey) {
          throw new UnauthenticatedError(
            "enrollment_token is not this fleet's enrollment token: ask the operator for the current one",
          );
        }
        // Used up before the registry write (with compare-and-swap: one enrolment per token). A
        // revoked name is refused after that, so that the refusal tells only a token holder.
        const use = await registry.enrollments.consumeToken(
          req.enrollmentToken,
          req.deviceName,
          nowMs,
        );
        if (use.kind !== 'consumed') {
          const fix = `ask the operator for a new one (edgeforge fleet token ${req.deviceName})`;
          throw new UnauthenticatedError(
            use.kind === 'used'
              ? `enrollment_token is a one-time token that was used at ${use.usedAt}: ${fix}`
              : use.kind === 'expired'
                ? `enrollment_token is a one-time token that expired at ${use.expiresAt}: ${fix}`
                : use.kind === 'other_name'
                  ? `enrollment_token is a one-time token for another device name than ${req.deviceName}`
                  : "enrollment_token is neither this fleet's enrollment token nor a one-time " +
                    'token an operator created: ask the operator for the current one',
            { context: { deviceId } },
          );
        }
      }
      const hardwareClass = deriveHardwareClass(req.profile).key;
      let known = false;
      let decision: KeyDecision = 'new';
      let pendingOn: (DeviceRecord & { publicKey: string }) | undefined;
      const notApplied = new Error('not applied: the key needs an operator');
      let record: DeviceRecord;
      try {
        record = await registry.update(deviceId, (current) => {
          known = current !== undefined;
          const outcome = enrollOutcome(
            current,
            {
              deviceId,
              deviceName: req.deviceName,
              hardwareClass,
              profile: req.profile,
              agentVersion: req.agentVersion,
              initialState: DeviceState[DeviceState.DEVICE_STATE_IDLE],
              deviceKey: req.deviceKey,
              oneTimeToken,
            },
            nowMs,
            revokedEnrollRefusal,
          );
          switch (outcome.kind) {
            case 'write':
              decision = outcome.decision;
              return outcome.record;
            case 'revoked':
              throw new PermissionDeniedError(outcome.refusal, { context: { deviceId } });
            case 'missing_key':
              throw new FailedPreconditionError(outcome.refusal, { context: { deviceId } });
            case 'replay':
              throw new InvalidArgumentError('signed_at_unix_ms', outcome.refusal);
            case 'pending':
              pendingOn = outcome.current;
              throw notApplied;
          }
        });
      } catch (err) {
        if (err !== notApplied || !pendingOn || !req.deviceKey) throw err;
        // Another key under an existing name with the fleet token: a stolen token, or a device
        // that lost its key. Nothing changes until an operator looks at it.
        const pending = await registry.enrollments.recordPending(
          {
            deviceId,
            deviceName: req.deviceName,
            publicKey: req.deviceKey.publicKey,
            signedAtUnixMs: req.deviceKey.signedAtUnixMs,
            hardwareClass,
            agentVersion: req.agentVersion,
          },
          nowMs,
        );
        const fingerprint = keyFingerprint(pending.publicKey);
        log.warn(
          {
            deviceId,
            deviceName: req.deviceName,
            pendingId: pending.pendingId,
            keyFingerprint: fingerprint,
            currentKeyFingerprint: keyFingerprint(pendingOn.publicKey),
          },
          'enrolment with another device key waits for an operator',
        );
        throw new FailedPreconditionError(
          `device ${deviceId} (${req.deviceName}) is enrolled with another device key ` +
            `(sha256 ${keyFingerprint(pendingOn.publicKey)}); ${AWAITING_APPROVAL_PHRASE} ` +
            `(sha256 ${fingerprint}) before it enrols: edgeforge fleet approve ` +
            `${pending.pendingId} (pending until ${pending.expiresAt})`,
          { context: { deviceId } },
        );
      }
      // A new key voids the credentials issued up to this second; this one is issued after it
      // (under a second's wait; a timer may fire a little early, hence the loop).
      const validFrom = (record.credentialsValidAfter ?? 0) * 1000;
      while (Date.now() < validFrom) await sleep(validFrom - Date.now() + 1);
      ctx.metrics.enrollments.inc({ kind: known ? 'again' : 'new' });
      const { credential, claims } = ctx.authority.issue(deviceId);
      log.info(
        {
          deviceId,
          deviceName: req.deviceName,
          hardwareClass,
          again: known,
          deviceKey: decision,
          ...(oneTimeToken ? { oneTimeToken: true } : {}),
        },
        'device enrolled',
      );
      return {
        deviceId,
        deviceCredential: credential,
        credentialExpiresAt: new Date(claims.expiresAt * 1000),
        hardwareClass,
        manifestPublicKey: Buffer.from(options.manifestKeys.manifestKey.publicKey),
        natsUrl: options.advertisedNatsUrl,
        manifestKeyVersion: options.manifestKeys.manifestKey.version,
      };
    }),

    heartbeat: unary(ctx, service, 'Heartbeat', 'device', async (request, caller) => {
      const deviceId = deviceOf(caller);
      const req = validateHeartbeat(request);
      const now = new Date().toISOString();
      const updated = await registry.update(deviceId, (current) => {
        const record = requireRecord(deviceId, current, caller);
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
        // The whole chain (one entry per rotation, rare): the agent takes what follows its pin.
        manifestKeyRotations: options.manifestKeys.manifestKeyRotations.map(toRotationMessage),
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
        const device = requireRecord(deviceId, registry.get(deviceId), caller);
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
        ...requireRecord(deviceId, current, caller),
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
