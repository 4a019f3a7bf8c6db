import type { HardwareProfile } from '../../../common/hardware/index.js';

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
