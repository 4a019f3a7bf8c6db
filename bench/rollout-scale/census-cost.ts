/**
 * `npm run bench -- rollout-scale --census-cost 10000,100000,1000000`: what one census round
 * costs the control plane at fleet sizes the 2-core machine cannot simulate. The census publisher
 * (services/control-plane/rollouts/census-publisher.ts) copies the registry's records into an
 * array and runs computeCensus (common/census.ts) over all of them once per leased class, every
 * second, on every replica; this times exactly that, on records of the registry's shape (two
 * classes, every device serving the target with a latency histogram, every device's last status
 * an activation for the rollout), with nothing else running. No NATS write: the census entry it
 * would write is bounded (100 cohorts), whatever the fleet's size.
 */
import { computeCensus, type CensusDevice, type ClassLease } from '../../common/census.js';
import { EDGE_LATENCY_BUCKETS } from '../../common/latency-histogram.js';

export interface CensusCost {
  devices: number;
  leasedClasses: number;
  /** Median of the rounds: copy the records, one computeCensus per leased class, stringify. */
  roundMs: number;
  microsPerDevice: number;
  censusBytes: number;
}

const CLASSES = ['aarch64-neon-nofp16-cpu-4g', 'x86_64-vnni-nofp16-cpu-4g'];

function records(n: number, rolloutId: string, sha256: string): Map<string, CensusDevice> {
  const now = new Date().toISOString();
  const map = new Map<string, CensusDevice>();
  for (let i = 0; i < n; i++) {
    const deviceId = `d-${i.toString(16).padStart(20, '0')}`;
    map.set(deviceId, {
      deviceId,
      hardwareClass: CLASSES[i % CLASSES.length]!,
      lastSeenAt: now,
      activeModel: { sha256 },
      lastStatus: { event: 'STATUS_EVENT_ACTIVATED', rolloutId, detail: 'serving' },
      serving: {
        modelSha256: sha256,
        bucketUpperBounds: [...EDGE_LATENCY_BUCKETS],
        bucketCounts: EDGE_LATENCY_BUCKETS.map((_, b) => (b === 4 ? 90 : b === 5 ? 10 : 0)).concat(
          0,
        ),
      },
    });
  }
  return map;
}

export function censusCost(n: number, rounds = 7): CensusCost {
  const rolloutId = 'census-cost';
  const sha256 = 'e'.repeat(64);
  const registry = records(n, rolloutId, sha256);
  const leases: ClassLease[] = CLASSES.map((hardwareClass) => ({
    rolloutId,
    hardwareClass,
    acquiredAt: new Date().toISOString(),
    targetSha256: sha256,
  }));
  const thresholdMs = 30_000;
  const times: number[] = [];
  let bytes = 0;
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    const now = new Date();
    // As the publisher: a copy of the registry's records, then each lease's census.
    const copy = [...registry.values()];
    const online = (d: { lastSeenAt: string }) =>
      now.getTime() - Date.parse(d.lastSeenAt) <= thresholdMs;
    for (const lease of leases) {
      bytes = JSON.stringify(computeCensus(lease, copy, online, now)).length;
    }
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const roundMs = times[Math.floor(times.length / 2)]!;
  return {
    devices: n,
    leasedClasses: leases.length,
    roundMs: Math.round(roundMs * 100) / 100,
    microsPerDevice: Math.round(((1000 * roundMs) / n) * 1000) / 1000,
    censusBytes: bytes,
  };
}
