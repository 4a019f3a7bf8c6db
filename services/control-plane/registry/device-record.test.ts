import { describe, expect, it } from 'vitest';
import { EDGE_LATENCY_BUCKETS } from '../../../common/latency-histogram.js';
import {
  connectivityOf,
  connectivityThresholds,
  nextServing,
  revoked,
  revokedCallRefusal,
  revokedEnrollRefusal,
  type DeviceRecord,
} from './device-record.js';
import { REVOKED_PHRASE } from '../../../common/fleet-api.js';

describe('connectivityOf', () => {
  const thresholds = connectivityThresholds(10_000);
  const now = Date.parse('2026-01-01T00:10:00Z');
  const at = (secondsAgo: number) => new Date(now - secondsAgo * 1000).toISOString();

  it.each([
    [0, 'online'],
    [30, 'online'],
    [31, 'stale'],
    [100, 'stale'],
    [101, 'offline'],
  ])('a heartbeat %d s ago is %s', (secondsAgo, expected) => {
    const record = { lastSeenAt: at(secondsAgo) };
    expect(connectivityOf(record, now, thresholds)).toBe(expected);
  });

  it('is revoked for a revoked device, however fresh its last heartbeat', () => {
    const record = { lastSeenAt: at(0), revokedAt: at(5) };
    expect(connectivityOf(record, now, thresholds)).toBe('revoked');
  });
});

describe('revocation', () => {
  const record = {
    deviceId: 'd-1',
    deviceName: 'kiosk-3',
    lastSeenAt: '2026-01-01T00:00:00.000Z',
  } as DeviceRecord;

  it('revokes once: a second revocation keeps the first time and reason', () => {
    const first = revoked(record, 'stolen', '2026-01-01T00:01:00.000Z');
    expect(first).toMatchObject({ revokedAt: '2026-01-01T00:01:00.000Z', revokedReason: 'stolen' });
    expect(revoked(first, 'other', '2026-01-01T00:02:00.000Z')).toBe(first);
    expect(record.revokedAt).toBeUndefined();
  });

  it('explains the refusals of a revoked device, and none for another', () => {
    expect(revokedCallRefusal(record)).toBeUndefined();
    expect(revokedEnrollRefusal(record)).toBeUndefined();
    const r = revoked(record, 'stolen', '2026-01-01T00:01:00.000Z');
    expect(revokedCallRefusal(r)).toBe(
      'device d-1 was revoked by an operator at 2026-01-01T00:01:00.000Z: stolen; nothing this ' +
        'device can do lifts it (an operator must delete the device, then it can enrol again)',
    );
    expect(revokedEnrollRefusal(revoked(record, '', r.revokedAt!))).toBe(
      'device d-1 (kiosk-3) was revoked by an operator at 2026-01-01T00:01:00.000Z: ' +
        '(no reason given); an operator must delete it before it can enrol again',
    );
    // What agents look for.
    expect(revokedCallRefusal(r)).toContain(REVOKED_PHRASE);
    expect(revokedEnrollRefusal(r)).toContain(REVOKED_PHRASE);
  });
});

describe('nextServing', () => {
  const model = { sha256: 'a'.repeat(64) };
  const delta = (counts: Record<number, number>, sumSeconds: number) => {
    const bucketCounts = new Array<number>(EDGE_LATENCY_BUCKETS.length + 1).fill(0);
    for (const [i, c] of Object.entries(counts)) bucketCounts[Number(i)] = c;
    const count = bucketCounts.reduce((n, c) => n + c, 0);
    return { bucketUpperBounds: [...EDGE_LATENCY_BUCKETS], bucketCounts, sumSeconds, count };
  };

  it('starts when a model becomes active and adds every beat to it', () => {
    const first = nextServing(undefined, model, delta({ 2: 3 }, 0.006), 't1')!;
    expect(first).toMatchObject({ modelSha256: model.sha256, count: 3, since: 't1' });
    const second = nextServing(first, model, delta({ 2: 1, 4: 2 }, 0.02), 't2')!;
    expect(second.since).toBe('t1');
    expect(second.count).toBe(6);
    expect(second.sumSeconds).toBeCloseTo(0.026, 12);
    expect(second.bucketCounts.slice(0, 5)).toEqual([0, 0, 4, 0, 2]);
    // Pure: the registry may apply a change twice after a lost compare-and-swap.
    expect(first.count).toBe(3);
  });

  it('keeps counting across beats without latencies, and resets when the model changes', () => {
    const first = nextServing(undefined, model, delta({ 0: 5 }, 0.001), 't1')!;
    expect(nextServing(first, model, null, 't2')).toBe(first);
    const other = nextServing(first, { sha256: 'b'.repeat(64) }, null, 't3')!;
    expect(other).toMatchObject({ modelSha256: 'b'.repeat(64), count: 0, since: 't3' });
    expect(other.bucketCounts.every((c) => c === 0)).toBe(true);
  });

  it('is null without an active model', () => {
    expect(nextServing(undefined, null, delta({ 0: 1 }, 0.0001), 't1')).toBeNull();
  });
});
