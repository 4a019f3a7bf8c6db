import { describe, expect, it } from 'vitest';
import { connectivityOf, connectivityThresholds } from './device-record.js';

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
});
