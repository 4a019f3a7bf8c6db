import { describe, expect, it } from 'vitest';
import type { DeviceRecord } from '../registry/device-record.js';
import { mustDisconnect } from './disconnect.js';

const record = (changes: Partial<DeviceRecord> = {}) =>
  ({ deviceId: 'd-1', hardwareClass: 'x86_64-avx2-nofp16-cpu-8g', ...changes }) as DeviceRecord;

describe("which registry changes close a device's NATS connections", () => {
  it('revocation, deletion, a replaced device key and a class change do', () => {
    expect(mustDisconnect(record(), record({ revokedAt: '2026-12-04T00:00:00Z' }))).toBe(true);
    expect(mustDisconnect(record(), undefined)).toBe(true);
    expect(mustDisconnect(record(), record({ credentialsValidAfter: 1_800_000_000 }))).toBe(true);
    expect(mustDisconnect(record(), record({ hardwareClass: 'x86_64-avx2-nofp16-cpu-16g' }))).toBe(
      true,
    );
  });

  it('a heartbeat, a first enrolment or a revoked device changing again do not', () => {
    expect(mustDisconnect(record(), record({ heartbeatCount: 5 }))).toBe(false);
    expect(mustDisconnect(undefined, record())).toBe(false);
    const revoked = record({ revokedAt: '2026-12-04T00:00:00Z' });
    expect(mustDisconnect(revoked, { ...revoked, lastSeenAt: 'later' })).toBe(false);
  });
});
