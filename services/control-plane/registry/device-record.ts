import type { HardwareProfile } from '../../../common/hardware/index.js';
import { EDGE_LATENCY_BUCKETS, rebucket } from '../../../common/latency-histogram.js';

/** What the registry stores per device (JSON in the devices KV bucket, key = device id). */
export interface DeviceRecord {
  deviceId: string;
  deviceName: string;
  hardwareClass: string;
  profile: HardwareProfile;
  agentVersion: string;
  /** DeviceState name from the proto, e.g. "DEVICE_STATE_SERVING". */
  state: string;
  enrolledAt: string;
  /** Last heartbeat, or the enrollment when none came since. */
  lastSeenAt: string;
  /** Heartbeats accepted since enrollment; every accepted beat counts, none is lost. */
  heartbeatCount: number;
  activeModel: { modelId: string; variant: string; version: number; sha256: string } | null;
  lastStatus: {
    event: string;
    rolloutId: string;
    variant: string;
    detail: string;
    at: string;
  } | null;
  /**
   * Serving latency of the current active model, summed over every heartbeat since it became
   * active (reset when the active model's sha256 changes). Absent in records written before it
   * existed, and after a re-enrollment until the next heartbeat.
   */
  serving?: ServingHistogram | null;
  /**
   * When an operator revoked the device (RevokeDevice); absent while it is not. A revoked device's
   * credential is refused on every call, and its name cannot enrol again until it is deleted.
   */
  revokedAt?: string;
  /** The operator's reason, shown to the device in its refusals; may be empty. */
  revokedReason?: string;
  /**
   * The device's ed25519 public key (raw 32 bytes, base64), from EnrollRequest.device_public_key.
   * Absent in records written before device keys and for agents that send none: the first
   * enrolment of the name that presents a key adopts it (trust on first use). Another key takes
   * an operator: an approved pending enrolment, or a one-time token for the name.
   */
  publicKey?: string;
  /**
   * signed_at_unix_ms of the last enrolment accepted with `publicKey`: the next one must be signed
   * later, so a recorded request cannot be replayed for a new credential.
   */
  keySignedAtUnixMs?: number;
  /**
   * Seconds since the epoch: a credential issued before it is refused on every call. Set when the
   * key changes, so the holder of the replaced key is cut off.
   */
  credentialsValidAfter?: number;
  /** When the key last changed to another one (adopted, approved, or by a one-time token). */
  keyChangedAt?: string;
}

/**
 * The record revoked at `now` with `reason`; unchanged when it is revoked already (the first
 * revocation's time and reason are kept). Pure: the registry may apply it more than once.
 */
export function revoked(record: DeviceRecord, reason: string, now: string): DeviceRecord {
  if (record.revokedAt) return record;
  return { ...record, revokedAt: now, revokedReason: reason };
}

function revocation(record: Pick<DeviceRecord, 'revokedAt' | 'revokedReason'>): string {
  return `was revoked by an operator at ${record.revokedAt}: ${record.revokedReason || '(no reason given)'}`;
}

/**
 * Why a revoked device's FleetService call is refused (PERMISSION_DENIED); undefined when the
 * device is not revoked. The phrase "was revoked by an operator" is what agents recognise
 * (REVOKED_PHRASE in common/fleet-api.ts).
 */
export function revokedCallRefusal(
  record: Pick<DeviceRecord, 'deviceId' | 'revokedAt' | 'revokedReason'>,
): string | undefined {
  if (!record.revokedAt) return undefined;
  return (
    `device ${record.deviceId} ${revocation(record)}; nothing this device can do lifts it ` +
    '(an operator must delete the device, then it can enrol again)'
  );
}

/** Why enrolling a revoked device's name again is refused; undefined when it is not revoked. */
export function revokedEnrollRefusal(
  record: Pick<DeviceRecord, 'deviceId' | 'deviceName' | 'revokedAt' | 'revokedReason'>,
): string | undefined {
  if (!record.revokedAt) return undefined;
  return (
    `device ${record.deviceId} (${record.deviceName}) ${revocation(record)}; ` +
    'an operator must delete it before it can enrol again'
  );
}

/** Cumulative latency histogram of one model on one device (see common/latency-histogram.ts). */
export interface ServingHistogram {
  /** The active model these counts belong to. */
  modelSha256: string;
  /** Upper bounds in seconds; the last bucket is implicit +Inf. */
  bucketUpperBounds: number[];
  /** One count per bound, then +Inf; per bucket, not cumulative. */
  bucketCounts: number[];
  sumSeconds: number;
  count: number;
  /** When the control plane first saw this model active on the device: the counts start here. */
  since: string;
}

/** What a heartbeat carries: latencies counted since the beat before. */
export interface LatencyDelta {
  bucketUpperBounds: number[];
  bucketCounts: number[];
  sumSeconds: number;
  count: number;
}

/**
 * The device's serving histogram after a heartbeat: the previous one plus the beat's latencies,
 * or a fresh one when the active model changed; null without an active model. Pure (the registry
 * may apply it more than once). Latencies in a beat are the active model's: a beat that spans a
 * model switch counts its few earlier requests for the new model.
 */
export function nextServing(
  previous: ServingHistogram | null | undefined,
  activeModel: { sha256: string } | null,
  delta: LatencyDelta | null,
  now: string,
): ServingHistogram | null {
  if (!activeModel) return null;
  const base: ServingHistogram =
    previous && previous.modelSha256 === activeModel.sha256
      ? previous
      : {
          modelSha256: activeModel.sha256,
          bucketUpperBounds: [...EDGE_LATENCY_BUCKETS],
          bucketCounts: new Array<number>(EDGE_LATENCY_BUCKETS.length + 1).fill(0),
          sumSeconds: 0,
          count: 0,
          since: now,
        };
  if (!delta || delta.count === 0) return base;
  const added = rebucket(delta.bucketUpperBounds, delta.bucketCounts, base.bucketUpperBounds);
  return {
    ...base,
    bucketCounts: base.bucketCounts.map((c, i) => c + added[i]!),
    sumSeconds: base.sumSeconds + delta.sumSeconds,
    count: base.count + delta.count,
  };
}

/** `revoked` whatever the last heartbeat: a revoked device never counts as online. */
export type Connectivity = 'online' | 'stale' | 'offline' | 'revoked';

export interface ConnectivityThresholds {
  /** A device is stale after this long without a heartbeat... */
  staleAfterMs: number;
  /** ...and offline after this long. */
  offlineAfterMs: number;
}

/** Thresholds for an expected heartbeat interval: stale after 3 missed beats, offline after 10. */
export function connectivityThresholds(heartbeatIntervalMs: number): ConnectivityThresholds {
  return { staleAfterMs: 3 * heartbeatIntervalMs, offlineAfterMs: 10 * heartbeatIntervalMs };
}

/** Online / stale / offline from the time since the device was last heard from; or revoked. */
export function connectivityOf(
  record: Pick<DeviceRecord, 'lastSeenAt' | 'revokedAt'>,
  now: number,
  thresholds: ConnectivityThresholds,
): Connectivity {
  if (record.revokedAt) return 'revoked';
  const age = now - Date.parse(record.lastSeenAt);
  if (age <= thresholds.staleAfterMs) return 'online';
  if (age <= thresholds.offlineAfterMs) return 'stale';
  return 'offline';
}
