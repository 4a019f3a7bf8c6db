import { describe, expect, it } from 'vitest';
import { computeCensus, waveCounts, type CensusDevice, type ClassLease } from './census.js';
import { COHORTS, cohortOf } from './cohorts.js';
import { EDGE_LATENCY_BUCKETS } from './latency-histogram.js';

const lease: ClassLease = {
  rolloutId: 'r1',
  hardwareClass: 'cls',
  acquiredAt: '',
  targetSha256: 'new',
};

/** Counts with `n` requests in the bucket bounded by `bound` seconds. */
const latency = (bound: number, n: number) => {
  const counts = new Array<number>(EDGE_LATENCY_BUCKETS.length + 1).fill(0);
  counts[EDGE_LATENCY_BUCKETS.indexOf(bound)] = n;
  return { modelSha256: 'new', bucketUpperBounds: [...EDGE_LATENCY_BUCKETS], bucketCounts: counts };
};

const device = (id: string, fields: Partial<CensusDevice> = {}): CensusDevice => ({
  deviceId: id,
  hardwareClass: 'cls',
  lastSeenAt: 'online',
  activeModel: null,
  lastStatus: null,
  ...fields,
});

describe('computeCensus', () => {
  const activated = { event: 'STATUS_EVENT_ACTIVATED', rolloutId: 'r1', detail: 'ok' };
  const devices: CensusDevice[] = [
    device('a', {
      activeModel: { sha256: 'new' },
      lastStatus: activated,
      serving: latency(0.005, 30),
    }),
    device('b', {
      activeModel: { sha256: 'new' },
      lastStatus: activated,
      serving: latency(0.01, 10),
    }),
    device('c', {
      activeModel: { sha256: 'old' },
      lastStatus: { event: 'STATUS_EVENT_REFUSED', rolloutId: 'r1', detail: 'bad signature' },
    }),
    device('d', { lastStatus: { event: 'STATUS_EVENT_ACTIVATED', rolloutId: 'r0', detail: '' } }),
    device('offline', {
      lastSeenAt: 'offline',
      activeModel: { sha256: 'new' },
      lastStatus: activated,
    }),
    device('other-class', { hardwareClass: 'x', lastStatus: activated }),
    // Activated, then went back to another model (a local rollback not reported yet).
    device('moved-on', { activeModel: { sha256: 'old' }, lastStatus: activated }),
  ];
  const census = computeCensus(lease, devices, (d) => d.lastSeenAt === 'online', new Date(0));

  it('counts each device of the class in its own cohort, by its last report for the rollout', () => {
    expect(census.cohorts).toHaveLength(COHORTS);
    const all = waveCounts(census, { from: 0, to: COHORTS }, 20);
    // The offline device reported its activation, but no longer answers: not counted.
    expect(all).toMatchObject({ online: 5, servingTarget: 2, activated: 2, failed: 1 });
    expect(census.cohorts[cohortOf('c')]!.events.refused).toBe(1);
    expect(all.failures).toEqual([
      { deviceId: 'c', cohort: cohortOf('c'), event: 'refused', detail: 'bad signature' },
    ]);
  });

  it('pools the serving latency of the target model over a range of cohorts', () => {
    const all = waveCounts(census, { from: 0, to: COHORTS }, 20);
    expect(all.servingSamples).toBe(40);
    // 30 requests ≤ 5 ms and 10 ≤ 10 ms: the 95th percentile falls in the 5-10 ms bucket.
    expect(all.servingP95Ms).toBeGreaterThan(5);
    expect(all.servingP95Ms).toBeLessThanOrEqual(10);
    expect(waveCounts(census, { from: 0, to: COHORTS }, 41).servingP95Ms).toBeNull();
  });

  it('keeps the named failures bounded whatever the fleet size', () => {
    const many = Array.from({ length: 500 }, (_, i) =>
      device(`f${i}`, {
        lastStatus: { event: 'STATUS_EVENT_HEALTH_CHECK_FAILED', rolloutId: 'r1', detail: 'x' },
      }),
    );
    const big = computeCensus(lease, many, () => true, new Date(0));
    expect(big.failures).toHaveLength(20);
    expect(big.failuresTotal).toBe(500);
    expect(JSON.stringify(big).length).toBeLessThan(20_000);
  });
});
