/**
 * Outcomes as counts. While a rollout owns a hardware class (its lease), the control plane keeps
 * a census of that class per cohort, computed from the device registry: how many devices are
 * online, how many serve the rollout's model, how many last reported each event for the rollout,
 * and the pooled serving latency of the rollout's model. The rollout workflow reads the census,
 * never device lists, so nothing it holds grows with the fleet. Pure module (workflow code reads
 * the types, the control plane computes with computeCensus).
 */
import { COHORTS, cohortOf, type CohortRange } from './cohorts.js';
import { EDGE_LATENCY_BUCKETS, histogramQuantile, rebucket } from './latency-histogram.js';
import type { DeviceEvent } from './rollout.js';

/** The rollout that may change a class's tracks; the control plane keeps its census. */
export interface ClassLease {
  rolloutId: string;
  hardwareClass: string;
  acquiredAt: string;
  /** sha256 of the model the rollout rolls out, once chosen; the census counts who serves it. */
  targetSha256: string | null;
}

export interface CohortCensus {
  /** Devices of the class in this cohort heard from recently. */
  online: number;
  /** Online devices serving the target model. */
  servingTarget: number;
  /** Devices whose last status report for this rollout was this event. */
  events: Partial<Record<DeviceEvent, number>>;
  /** Serving latency of the target model on this cohort's devices, pooled (EDGE_LATENCY_BUCKETS). */
  latencyCounts: number[] | null;
}

export interface DeviceFailure {
  deviceId: string;
  cohort: number;
  event: DeviceEvent;
  detail: string;
}

export interface ClassCensus {
  rolloutId: string;
  hardwareClass: string;
  targetSha256: string | null;
  takenAt: string;
  /** COHORTS entries, by cohort. */
  cohorts: CohortCensus[];
  /** A bounded sample of the devices whose last report for the rollout was a failure. */
  failures: DeviceFailure[];
  failuresTotal: number;
}

/** Devices named in a census at most, whatever the fleet's size. */
const FAILURE_SAMPLE = 20;

/** Events that end a device's part in a wave badly. */
export const FAILURE_EVENTS: ReadonlySet<DeviceEvent> = new Set([
  'health_check_failed',
  'rolled_back',
  'refused',
]);

/** The fields of a device record (services/control-plane/registry) a census reads. */
export interface CensusDevice {
  deviceId: string;
  hardwareClass: string;
  lastSeenAt: string;
  activeModel: { sha256: string } | null;
  lastStatus: { event: string; rolloutId: string; detail: string } | null;
  serving?: { modelSha256: string; bucketUpperBounds: number[]; bucketCounts: number[] } | null;
}

/**
 * A status event as the registry stores it ("STATUS_EVENT_ACTIVATED", the proto's name) in the
 * rollout contract's words ("activated").
 */
export function deviceEventOf(stored: string): string {
  return stored.replace(/^STATUS_EVENT_/, '').toLowerCase();
}

/** The census of one leased class from the registry's records (any order, any classes). */
export function computeCensus(
  lease: ClassLease,
  devices: Iterable<CensusDevice>,
  isOnline: (device: CensusDevice) => boolean,
  now: Date,
): ClassCensus {
  const cohorts: CohortCensus[] = Array.from({ length: COHORTS }, () => ({
    online: 0,
    servingTarget: 0,
    events: {},
    latencyCounts: null,
  }));
  const failures: DeviceFailure[] = [];
  let failuresTotal = 0;
  for (const d of devices) {
    if (d.hardwareClass !== lease.hardwareClass) continue;
    const cohort = cohortOf(d.deviceId);
    const c = cohorts[cohort]!;
    const online = isOnline(d);
    if (online) c.online += 1;
    const target = lease.targetSha256;
    if (target && d.activeModel?.sha256 === target) {
      if (online) c.servingTarget += 1;
      if (d.serving?.modelSha256 === target) {
        const counts = rebucket(d.serving.bucketUpperBounds, d.serving.bucketCounts, [
          ...EDGE_LATENCY_BUCKETS,
        ]);
        c.latencyCounts = c.latencyCounts ? c.latencyCounts.map((n, i) => n + counts[i]!) : counts;
      }
    }
    const status = d.lastStatus;
    if (status?.rolloutId !== lease.rolloutId) continue;
    const event = deviceEventOf(status.event) as DeviceEvent;
    // Only what still answers counts as activated: a device that reported the activation and
    // has since gone offline, or serves another model now, is not known to run the release (it
    // counts as unresponsive to the wave, not as a success).
    const servesTarget = !target || d.activeModel?.sha256 === target;
    if (event === 'activated' && !(online && servesTarget)) continue;
    c.events[event] = (c.events[event] ?? 0) + 1;
    if (FAILURE_EVENTS.has(event)) {
      failuresTotal += 1;
      failures.push({ deviceId: d.deviceId, cohort, event, detail: status.detail.slice(0, 200) });
      // Keep the sample bounded while counting a fleet where most devices failed.
      if (failures.length >= 4 * FAILURE_SAMPLE) keepFirst(failures, FAILURE_SAMPLE);
    }
  }
  keepFirst(failures, FAILURE_SAMPLE);
  return {
    rolloutId: lease.rolloutId,
    hardwareClass: lease.hardwareClass,
    targetSha256: lease.targetSha256,
    takenAt: now.toISOString(),
    cohorts,
    failures,
    failuresTotal,
  };
}

/** Sorts failures by device id and keeps the first `count`, in place. */
function keepFirst(failures: DeviceFailure[], count: number): void {
  failures.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  failures.length = Math.min(failures.length, count);
}

/** A census summed over a range of cohorts: what one wave's judgement needs. */
export interface WaveCounts {
  online: number;
  servingTarget: number;
  activated: number;
  failed: number;
  /** Pooled serving p95 of the target model, ms; null below `minSamples` requests. */
  servingP95Ms: number | null;
  servingSamples: number;
  failures: DeviceFailure[];
}

export function waveCounts(
  census: ClassCensus,
  range: CohortRange,
  minSamples: number,
): WaveCounts {
  const inRange = census.cohorts.slice(range.from, range.to);
  const sum = (f: (c: CohortCensus) => number) => inRange.reduce((n, c) => n + f(c), 0);
  let pooled: number[] | null = null;
  for (const c of inRange) {
    if (!c.latencyCounts) continue;
    pooled = pooled ? pooled.map((n, i) => n + c.latencyCounts![i]!) : [...c.latencyCounts];
  }
  const samples = pooled ? pooled.reduce((a, b) => a + b, 0) : 0;
  const p95 =
    pooled && samples >= minSamples
      ? histogramQuantile(EDGE_LATENCY_BUCKETS, pooled, 0.95) * 1000
      : null;
  return {
    online: sum((c) => c.online),
    servingTarget: sum((c) => c.servingTarget),
    activated: sum((c) => c.events.activated ?? 0),
    failed: sum((c) => [...FAILURE_EVENTS].reduce((n, e) => n + (c.events[e] ?? 0), 0)),
    servingP95Ms: p95 !== null && Number.isFinite(p95) ? p95 : null,
    servingSamples: samples,
    failures: census.failures.filter((f) => f.cohort >= range.from && f.cohort < range.to),
  };
}
