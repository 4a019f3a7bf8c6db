import { describe, expect, it } from 'vitest';
import type { DeviceRecord } from './device-record.js';
import { revokedEnrollRefusal } from './device-record.js';
import {
  credentialsValidAfterChange,
  enrollOutcome,
  keyDecision,
  staleCredentialRefusal,
  withApprovedKey,
  type EnrollInput,
} from './key-decision.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');
const NOW = Date.parse('2026-01-01T00:00:00.250Z');

const RECORD: DeviceRecord = {
  deviceId: 'd-1',
  deviceName: 'pi-kitchen',
  hardwareClass: 'aarch64-neon-nofp16-cpu-4g',
  profile: {} as DeviceRecord['profile'],
  agentVersion: '0.1.0',
  state: 'DEVICE_STATE_SERVING',
  enrolledAt: '2025-12-01T00:00:00.000Z',
  lastSeenAt: '2025-12-31T00:00:00.000Z',
  heartbeatCount: 42,
  activeModel: { modelId: 'digits', variant: 'int8', version: 3, sha256: 'a'.repeat(64) },
  lastStatus: null,
  serving: null,
  publicKey: KEY_A,
  keySignedAtUnixMs: NOW - 60_000,
};

function input(more: Partial<EnrollInput> = {}): EnrollInput {
  return {
    deviceId: 'd-1',
    deviceName: 'pi-kitchen',
    hardwareClass: 'aarch64-neon-nofp16-cpu-4g',
    profile: RECORD.profile,
    agentVersion: '0.2.0',
    initialState: 'DEVICE_STATE_IDLE',
    deviceKey: { publicKey: KEY_A, signedAtUnixMs: NOW },
    oneTimeToken: false,
    ...more,
  };
}

const outcome = (current: DeviceRecord | undefined, more: Partial<EnrollInput> = {}) =>
  enrollOutcome(current, input(more), NOW, revokedEnrollRefusal);

describe('keyDecision', () => {
  it.each([
    ['no record', undefined, KEY_A, false, 'new'],
    ['no record, no key', undefined, undefined, false, 'new'],
    ['the same key', { publicKey: KEY_A }, KEY_A, false, 'same'],
    ['a keyless record, a key', {}, KEY_A, false, 'adopt'],
    ['a keyless record, no key', {}, undefined, false, 'keyless'],
    ['another key, the fleet token', { publicKey: KEY_A }, KEY_B, false, 'pending'],
    ['another key, a one-time token', { publicKey: KEY_A }, KEY_B, true, 'replace'],
    ['no key for a keyed record', { publicKey: KEY_A }, undefined, false, 'missing'],
    [
      'no key for a keyed record, a one-time token',
      { publicKey: KEY_A },
      undefined,
      true,
      'missing',
    ],
  ] as const)('%s: %s', (_what, current, presented, oneTime, expected) => {
    expect(keyDecision(current, presented, oneTime)).toBe(expected);
  });
});

describe('enrollOutcome', () => {
  it('enrols the same key again, keeping what the device serves, and records the time', () => {
    const o = outcome(RECORD);
    expect(o.kind).toBe('write');
    if (o.kind !== 'write') return;
    expect(o.decision).toBe('same');
    expect(o.record).toMatchObject({
      publicKey: KEY_A,
      keySignedAtUnixMs: NOW,
      enrolledAt: RECORD.enrolledAt,
      heartbeatCount: 42,
      activeModel: RECORD.activeModel,
      state: 'DEVICE_STATE_SERVING',
      agentVersion: '0.2.0',
    });
    // Its old credentials stay good: nothing changed hands.
    expect(o.record.credentialsValidAfter).toBeUndefined();
  });

  it('refuses a request with the same key signed no later than the last one (a replay)', () => {
    const replay = outcome(RECORD, {
      deviceKey: { publicKey: KEY_A, signedAtUnixMs: RECORD.keySignedAtUnixMs! },
    });
    expect(replay).toMatchObject({ kind: 'replay' });
    if (replay.kind === 'replay') expect(replay.refusal).toMatch(/not later than the last/);
  });

  it('does not apply another key with the fleet token: pending, for an operator', () => {
    expect(outcome(RECORD, { deviceKey: { publicKey: KEY_B, signedAtUnixMs: NOW } })).toEqual({
      kind: 'pending',
      current: RECORD,
    });
  });

  it('replaces the key with a one-time token and voids the credentials issued until now', () => {
    const o = outcome(RECORD, {
      deviceKey: { publicKey: KEY_B, signedAtUnixMs: NOW },
      oneTimeToken: true,
    });
    expect(o).toMatchObject({
      kind: 'write',
      decision: 'replace',
      record: {
        publicKey: KEY_B,
        credentialsValidAfter: Math.floor(NOW / 1000) + 1,
        keyChangedAt: new Date(NOW).toISOString(),
      },
    });
  });

  it('adopts the first key a record from before device keys sees (trust on first use)', () => {
    const legacy = { ...RECORD };
    delete legacy.publicKey;
    delete legacy.keySignedAtUnixMs;
    expect(outcome(legacy)).toMatchObject({
      kind: 'write',
      decision: 'adopt',
      record: { publicKey: KEY_A, credentialsValidAfter: Math.floor(NOW / 1000) + 1 },
    });
    // An old agent keeps enrolling it as before...
    const keyless = outcome(legacy, { deviceKey: null });
    expect(keyless).toMatchObject({ kind: 'write', decision: 'keyless' });
    if (keyless.kind === 'write') expect(keyless.record.publicKey).toBeUndefined();
    // ...but not once it has a key.
    expect(outcome(RECORD, { deviceKey: null })).toMatchObject({
      kind: 'missing_key',
      refusal: expect.stringMatching(/enrols with a device key .*device_public_key/) as string,
    });
  });

  it('refuses a revoked device whatever its key or token', () => {
    const revoked = { ...RECORD, revokedAt: '2025-12-30T00:00:00.000Z', revokedReason: 'stolen' };
    for (const more of [
      {},
      { deviceKey: { publicKey: KEY_B, signedAtUnixMs: NOW }, oneTimeToken: true },
    ]) {
      expect(outcome(revoked, more)).toMatchObject({
        kind: 'revoked',
        refusal: expect.stringMatching(/was revoked by an operator/) as string,
      });
    }
  });

  it('enrols a new name with its key', () => {
    expect(outcome(undefined)).toMatchObject({
      kind: 'write',
      decision: 'new',
      record: {
        publicKey: KEY_A,
        keySignedAtUnixMs: NOW,
        state: 'DEVICE_STATE_IDLE',
        heartbeatCount: 0,
        enrolledAt: new Date(NOW).toISOString(),
      },
    });
  });
});

describe('credentials after a key change', () => {
  it('refuses every credential issued up to the change, none issued from the next second', () => {
    const validAfter = credentialsValidAfterChange(NOW);
    const record = { ...RECORD, credentialsValidAfter: validAfter, keyChangedAt: 'T' };
    expect(staleCredentialRefusal(record, Math.floor(NOW / 1000))).toMatch(
      /device d-1 got another device key at T: credentials issued before then are void/,
    );
    expect(staleCredentialRefusal(record, validAfter)).toBeUndefined();
    expect(staleCredentialRefusal(RECORD, 0)).toBeUndefined();
  });

  it('approving puts the pending key in, once', () => {
    const approved = withApprovedKey(RECORD, { publicKey: KEY_B, signedAtUnixMs: NOW - 5 }, NOW);
    expect(approved).toMatchObject({
      publicKey: KEY_B,
      keySignedAtUnixMs: NOW - 5,
      credentialsValidAfter: Math.floor(NOW / 1000) + 1,
    });
    expect(withApprovedKey(approved, { publicKey: KEY_B, signedAtUnixMs: 0 }, NOW + 9_000)).toBe(
      approved,
    );
  });
});
