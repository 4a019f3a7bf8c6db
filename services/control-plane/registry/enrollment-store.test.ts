import { describe, expect, it } from 'vitest';
import { deviceIdOfPending, pendingIsLive, tokenUse } from './enrollment-store.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const TOKEN = {
  deviceName: 'pi-kitchen',
  deviceId: 'd-1',
  createdAt: '2025-12-31T23:00:00.000Z',
  expiresAt: '2026-01-01T01:00:00.000Z',
};

describe('one-time tokens', () => {
  it('enrol their own name once, until they expire', () => {
    expect(tokenUse(TOKEN, 'pi-kitchen', NOW)).toEqual({ kind: 'consumed', entry: TOKEN });
    expect(tokenUse(TOKEN, 'pi-garage', NOW)).toEqual({ kind: 'other_name' });
    expect(tokenUse({ ...TOKEN, usedAt: 'T' }, 'pi-kitchen', NOW)).toEqual({
      kind: 'used',
      usedAt: 'T',
    });
    expect(tokenUse(TOKEN, 'pi-kitchen', Date.parse(TOKEN.expiresAt))).toEqual({
      kind: 'expired',
      expiresAt: TOKEN.expiresAt,
    });
    expect(tokenUse(undefined, 'pi-kitchen', NOW)).toEqual({ kind: 'unknown' });
  });
});

describe('pending enrolments', () => {
  it('stand until they expire', () => {
    expect(pendingIsLive({ expiresAt: '2026-01-01T00:00:01.000Z' }, NOW)).toBe(true);
    expect(pendingIsLive({ expiresAt: '2026-01-01T00:00:00.000Z' }, NOW)).toBe(false);
  });

  it('carry their device id in their id', () => {
    expect(deviceIdOfPending('d-0123456789abcdef0123.0011223344556677')).toBe(
      'd-0123456789abcdef0123',
    );
    for (const bad of ['', 'd-1', 'd-1.', '.0011223344556677', 'd-1.xyz', 'a b.0011223344556677']) {
      expect(deviceIdOfPending(bad), bad).toBeUndefined();
    }
  });
});
