import type { DeviceRecord } from './device-record.js';
import { keyFingerprint } from './device-key.js';

/**
 * What Enroll does with the device key a request presents, given the name's registry record:
 *
 * - `new`: no record; the name enrols for the first time with the key (or with none, from an
 *   agent older than device keys).
 * - `same`: the record's key; enrolling again after a lost or expired credential.
 * - `adopt`: a record from before device keys; the first key presented is taken (trust on first
 *   use). Credentials issued before are cut off, so a device whose record someone else adopted
 *   finds out (its next Enroll is then a pending one) rather than running beside a twin.
 * - `keyless`: neither the record nor the request has a key: an old agent, enrolling as before.
 * - `replace`: another key, with a one-time token an operator created for this name (their
 *   approval given up front).
 * - `pending`: another key, with the fleet token: not applied; an operator must approve it.
 * - `missing`: the record has a key and the request none: refused.
 */
export type KeyDecision = 'new' | 'same' | 'adopt' | 'keyless' | 'replace' | 'pending' | 'missing';

export function keyDecision(
  current: Pick<DeviceRecord, 'publicKey'> | undefined,
  presented: string | undefined,
  oneTimeToken: boolean,
): KeyDecision {
  if (!current) return 'new';
  if (current.publicKey === undefined) return presented === undefined ? 'keyless' : 'adopt';
  if (presented === undefined) return 'missing';
  if (presented === current.publicKey) return 'same';
  return oneTimeToken ? 'replace' : 'pending';
}

/** Whether the decision gives the record another key than it had (cuts old credentials off). */
export function changesKey(decision: KeyDecision): boolean {
  return decision === 'adopt' || decision === 'replace';
}

/**
 * `credentialsValidAfter` for a key change at `nowMs`: the next whole second, so that every
 * credential issued up to the change (issuedAt is in whole seconds) is refused. A credential for
 * the new key is issued from that second on (Enroll waits for it, under a second).
 */
export function credentialsValidAfterChange(nowMs: number): number {
  return Math.floor(nowMs / 1000) + 1;
}

/** Why a credential issued at `issuedAt` (seconds) no longer opens the record; else undefined. */
export function staleCredentialRefusal(
  record: Pick<DeviceRecord, 'deviceId' | 'credentialsValidAfter' | 'keyChangedAt'>,
  issuedAt: number,
): string | undefined {
  if (record.credentialsValidAfter === undefined || issuedAt >= record.credentialsValidAfter) {
    return undefined;
  }
  return (
    `device ${record.deviceId} got another device key at ${record.keyChangedAt ?? '(unknown)'}: ` +
    'credentials issued before then are void; enroll again with the device key'
  );
}

/**
 * Why a request signed at `signedAtUnixMs` with the record's own key is refused as a replay (not
 * later than the last enrolment accepted with that key); else undefined.
 */
export function replayRefusal(
  record: Pick<DeviceRecord, 'keySignedAtUnixMs'>,
  signedAtUnixMs: number,
): string | undefined {
  const last = record.keySignedAtUnixMs;
  if (last === undefined || signedAtUnixMs > last) return undefined;
  return (
    `is ${signedAtUnixMs}, not later than the last enrolment accepted with this device key ` +
    `(${last}): a replayed request, or a device clock that went back; sign a new request`
  );
}

/** Why an Enroll without a key is refused for a record that has one. */
export function missingKeyRefusal(
  record: Pick<DeviceRecord, 'deviceId' | 'deviceName'> & {
    publicKey: string;
  },
): string {
  return (
    `device ${record.deviceId} (${record.deviceName}) enrols with a device key ` +
    `(sha256 ${keyFingerprint(record.publicKey)}) and this request has none ` +
    '(device_public_key): upgrade its agent; an agent from before device keys cannot enrol it'
  );
}

/** An Enroll request as the registry sees it, after validation and the token check. */
export interface EnrollInput {
  deviceId: string;
  deviceName: string;
  hardwareClass: string;
  profile: DeviceRecord['profile'];
  agentVersion: string;
  /** The state a new record starts in. */
  initialState: string;
  /** The verified key and proof time; null from an agent older than device keys. */
  deviceKey: { publicKey: string; signedAtUnixMs: number } | null;
  /** The request came with a one-time token for this name (not the fleet token). */
  oneTimeToken: boolean;
}

/** What an Enroll does to the name's record; only `write` changes it. */
export type EnrollOutcome =
  | { kind: 'write'; record: DeviceRecord; decision: KeyDecision }
  /** A revoked device: refused (PERMISSION_DENIED) whatever the key. */
  | { kind: 'revoked'; refusal: string }
  /** Another key with the fleet token: recorded as pending, nothing written here. */
  | { kind: 'pending'; current: DeviceRecord & { publicKey: string } }
  | { kind: 'missing_key'; refusal: string }
  /** The record's own key, signed no later than its last accepted enrolment. */
  | { kind: 'replay'; refusal: string };

/**
 * The record after an Enroll of `input` at `nowMs`, or why there is none. Pure: the registry may
 * apply it more than once. Enrolling again changes nothing about what the device serves.
 */
export function enrollOutcome(
  current: DeviceRecord | undefined,
  input: EnrollInput,
  nowMs: number,
  revokedRefusal: (record: DeviceRecord) => string | undefined,
): EnrollOutcome {
  // Its name does not buy a revoked device back in, nor does a key: only deleting it does.
  const refusal = current && revokedRefusal(current);
  if (refusal) return { kind: 'revoked', refusal };
  const key = input.deviceKey;
  const decision = keyDecision(current, key?.publicKey, input.oneTimeToken);
  if (decision === 'pending') {
    return { kind: 'pending', current: current as DeviceRecord & { publicKey: string } };
  }
  if (decision === 'missing') {
    return {
      kind: 'missing_key',
      refusal: missingKeyRefusal(current as DeviceRecord & { publicKey: string }),
    };
  }
  if (decision === 'same' && key) {
    const replay = replayRefusal(current!, key.signedAtUnixMs);
    if (replay) return { kind: 'replay', refusal: replay };
  }
  const now = new Date(nowMs).toISOString();
  const keyFields: Partial<DeviceRecord> = key
    ? {
        publicKey: key.publicKey,
        keySignedAtUnixMs: key.signedAtUnixMs,
        ...(changesKey(decision)
          ? { credentialsValidAfter: credentialsValidAfterChange(nowMs), keyChangedAt: now }
          : pick(current)),
      }
    : pick(current);
  const record: DeviceRecord = {
    deviceId: input.deviceId,
    deviceName: input.deviceName,
    hardwareClass: input.hardwareClass,
    profile: input.profile,
    agentVersion: input.agentVersion,
    state: current?.state ?? input.initialState,
    enrolledAt: current?.enrolledAt ?? now,
    lastSeenAt: now,
    heartbeatCount: current?.heartbeatCount ?? 0,
    activeModel: current?.activeModel ?? null,
    lastStatus: current?.lastStatus ?? null,
    serving: current?.serving ?? null,
    ...keyFields,
  };
  return { kind: 'write', record, decision };
}

/** The key-change fields a record keeps when its key stays. */
function pick(current: DeviceRecord | undefined): Partial<DeviceRecord> {
  if (!current) return {};
  const kept: Partial<DeviceRecord> = {};
  if (current.credentialsValidAfter !== undefined) {
    kept.credentialsValidAfter = current.credentialsValidAfter;
  }
  if (current.keyChangedAt !== undefined) kept.keyChangedAt = current.keyChangedAt;
  return kept;
}

/**
 * The record with a pending enrolment's key, approved by an operator at `nowMs`: credentials
 * issued until then are void, and the pending request itself cannot be replayed (the device signs
 * a new one). Unchanged when the record has that key already. Pure.
 */
export function withApprovedKey(
  record: DeviceRecord,
  pending: { publicKey: string; signedAtUnixMs: number },
  nowMs: number,
): DeviceRecord {
  if (record.publicKey === pending.publicKey) return record;
  return {
    ...record,
    publicKey: pending.publicKey,
    keySignedAtUnixMs: pending.signedAtUnixMs,
    credentialsValidAfter: credentialsValidAfterChange(nowMs),
    keyChangedAt: new Date(nowMs).toISOString(),
  };
}
