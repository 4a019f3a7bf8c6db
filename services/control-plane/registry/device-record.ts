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

export type Connectivity = 'online' | 'stale' | 'offline';

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

/** Online / stale / offline from the time since the device was last heard from. */
export function connectivityOf(
  record: Pick<DeviceRecord, 'lastSeenAt'>,
  now: number,
  thresholds: ConnectivityThresholds,
): Connectivity {
  const age = now - Date.parse(record.lastSeenAt);
  if (age <= thresholds.staleAfterMs) return 'online';
  if (age <= thresholds.offlineAfterMs) return 'stale';
  return 'offline';
}
