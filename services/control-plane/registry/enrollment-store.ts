import { createHash, randomBytes } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import { bucketOptions, isRevisionConflict, type NatsConnection } from '../../../common/nats.js';
import { KV_BUCKETS } from '../../../common/names.js';

/**
 * The enrollments bucket: enrolments waiting for an operator (`pending.<deviceId>`) and one-time
 * enrollment tokens (`token.<sha256 of the token>`). Not the devices bucket: the orchestrator
 * reads every entry there as a device record (workflows/activities/fleet.ts).
 */

/** A pending enrolment is void after this long; the device asks again (a new pending id). */
export const PENDING_TTL_MS = 7 * 24 * 3600 * 1000;
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;
export const MAX_TOKEN_TTL_SECONDS = 7 * 24 * 3600;
/**
 * NATS itself drops entries older than this (a day more than anything stays valid), so neither
 * expired requests nor unused tokens pile up.
 */
const BUCKET_MAX_AGE_MS = PENDING_TTL_MS + 24 * 3600 * 1000;
const PENDING_PREFIX = 'pending.';
const TOKEN_PREFIX = 'token.';
/** One-time tokens start so, to tell them from the fleet token in logs and support requests. */
export const ONE_TIME_TOKEN_PREFIX = 'efo1.';
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_CAS_ATTEMPTS = 5;

/** A device's request to enrol its name with another key than the registry's. */
export interface PendingEnrollment {
  /** `<deviceId>.<16 hex>`: names the request, not only the device (a newer one gets a new id). */
  pendingId: string;
  deviceId: string;
  deviceName: string;
  /** Raw ed25519 public key, base64. */
  publicKey: string;
  signedAtUnixMs: number;
  hardwareClass: string;
  agentVersion: string;
  requestedAt: string;
  expiresAt: string;
}

export type PendingRequest = Omit<PendingEnrollment, 'pendingId' | 'requestedAt' | 'expiresAt'>;

/** A one-time token as stored (the token itself is not: only its sha256, in the key). */
export interface EnrollmentTokenEntry {
  deviceName: string;
  deviceId: string;
  createdAt: string;
  expiresAt: string;
  /** Set by the one enrolment that used it. */
  usedAt?: string;
}

/** What presenting a token found. Only `consumed` lets the enrolment go on. */
export type TokenUse =
  | { kind: 'consumed'; entry: EnrollmentTokenEntry }
  | { kind: 'unknown' }
  | { kind: 'used'; usedAt: string }
  | { kind: 'expired'; expiresAt: string }
  | { kind: 'other_name' };

/** Whether the stored token may enrol `deviceName` at `nowMs`. Pure. */
export function tokenUse(
  entry: EnrollmentTokenEntry | undefined,
  deviceName: string,
  nowMs: number,
): TokenUse {
  if (!entry) return { kind: 'unknown' };
  if (entry.usedAt !== undefined) return { kind: 'used', usedAt: entry.usedAt };
  if (Date.parse(entry.expiresAt) <= nowMs) return { kind: 'expired', expiresAt: entry.expiresAt };
  if (entry.deviceName !== deviceName) return { kind: 'other_name' };
  return { kind: 'consumed', entry };
}

/** Whether a pending enrolment still stands at `nowMs`. */
export function pendingIsLive(
  pending: Pick<PendingEnrollment, 'expiresAt'>,
  nowMs: number,
): boolean {
  return Date.parse(pending.expiresAt) > nowMs;
}

/** The device id inside a pending id; undefined when it is not one. */
export function deviceIdOfPending(pendingId: string): string | undefined {
  const dot = pendingId.lastIndexOf('.');
  const deviceId = pendingId.slice(0, dot);
  return dot > 0 && DEVICE_ID.test(deviceId) && /^[0-9a-f]{16}$/.test(pendingId.slice(dot + 1))
    ? deviceId
    : undefined;
}

function tokenKey(token: string): string {
  return `${TOKEN_PREFIX}${createHash('sha256').update(token).digest('hex')}`;
}

function pendingKey(deviceId: string): string {
  if (!DEVICE_ID.test(deviceId)) throw new RangeError(`${deviceId} is not a device id`);
  return `${PENDING_PREFIX}${deviceId}`;
}

/**
 * Pending enrolments and one-time tokens in NATS KV, so they survive a restart and are shared by
 * every control-plane replica. Writes are compare-and-swap on the entry's revision. Reads go to
 * NATS (no cache): these are rare calls (an enrolment that needs an operator, an admin command).
 */
export class EnrollmentStore {
  private constructor(private readonly kv: KV) {}

  static async open(nats: NatsConnection): Promise<EnrollmentStore> {
    const kv = await new Kvm(nats).create(
      KV_BUCKETS.enrollments,
      bucketOptions({ history: 1, ttl: BUCKET_MAX_AGE_MS }),
    );
    return new EnrollmentStore(kv);
  }

  /**
   * Records the request as the device's one pending enrolment. The same key asking again keeps
   * its entry (and id) as it is, so a device retrying while it waits changes nothing; another key
   * replaces it, so a token holder cannot grow the bucket beyond one entry per device.
   */
  async recordPending(request: PendingRequest, nowMs: number): Promise<PendingEnrollment> {
    const key = pendingKey(request.deviceId);
    for (let attempt = 1; ; attempt++) {
      const entry = await this.kv.get(key);
      const existing = entry?.operation === 'PUT' ? entry.json<PendingEnrollment>() : undefined;
      if (existing && existing.publicKey === request.publicKey && pendingIsLive(existing, nowMs)) {
        return existing;
      }
      const pending: PendingEnrollment = {
        ...request,
        pendingId: `${request.deviceId}.${randomBytes(8).toString('hex')}`,
        requestedAt: new Date(nowMs).toISOString(),
        expiresAt: new Date(nowMs + PENDING_TTL_MS).toISOString(),
      };
      try {
        const data = JSON.stringify(pending);
        if (entry) await this.kv.update(key, data, entry.revision);
        else await this.kv.create(key, data);
        return pending;
      } catch (err) {
        if (!isRevisionConflict(err) || attempt >= MAX_CAS_ATTEMPTS) throw err;
      }
    }
  }

  /** The pending enrolment with this id, while it stands; undefined otherwise. */
  async findPending(pendingId: string, nowMs: number): Promise<PendingEnrollment | undefined> {
    const deviceId = deviceIdOfPending(pendingId);
    if (!deviceId) return undefined;
    const entry = await this.kv.get(pendingKey(deviceId));
    if (entry?.operation !== 'PUT') return undefined;
    const pending = entry.json<PendingEnrollment>();
    return pending.pendingId === pendingId && pendingIsLive(pending, nowMs) ? pending : undefined;
  }

  /**
   * Deletes the pending enrolment if it is still this id (compare-and-swap: a newer request that
   * replaced it in the meantime stays). Returns whether this id was there.
   */
  async removePending(pendingId: string): Promise<boolean> {
    const deviceId = deviceIdOfPending(pendingId);
    if (!deviceId) return false;
    const key = pendingKey(deviceId);
    for (let attempt = 1; ; attempt++) {
      const entry = await this.kv.get(key);
      if (entry?.operation !== 'PUT' || entry.json<PendingEnrollment>().pendingId !== pendingId) {
        return false;
      }
      try {
        await this.kv.delete(key, { previousSeq: entry.revision });
        return true;
      } catch (err) {
        if (!isRevisionConflict(err) || attempt >= MAX_CAS_ATTEMPTS) throw err;
      }
    }
  }

  /** Every pending enrolment that stands at `nowMs`, oldest first. */
  async listPending(nowMs: number): Promise<PendingEnrollment[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys(`${PENDING_PREFIX}*`)) keys.push(key);
    const found: PendingEnrollment[] = [];
    for (const key of keys) {
      const entry = await this.kv.get(key);
      if (entry?.operation !== 'PUT') continue;
      const pending = entry.json<PendingEnrollment>();
      if (pendingIsLive(pending, nowMs)) found.push(pending);
    }
    return found.sort((a, b) =>
      a.requestedAt < b.requestedAt ? -1 : a.requestedAt > b.requestedAt ? 1 : 0,
    );
  }

  /** A new one-time token for `deviceName`; only its sha256 is stored. */
  async createToken(
    deviceName: string,
    deviceId: string,
    ttlSeconds: number,
    nowMs: number,
  ): Promise<{ token: string; expiresAt: Date }> {
    const token = `${ONE_TIME_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(nowMs + ttlSeconds * 1000);
    const entry: EnrollmentTokenEntry = {
      deviceName,
      deviceId,
      createdAt: new Date(nowMs).toISOString(),
      expiresAt: expiresAt.toISOString(),
    };
    await this.kv.create(tokenKey(token), JSON.stringify(entry));
    return { token, expiresAt };
  }

  /**
   * Uses the token up for `deviceName` if it may enrol it: marks it used with compare-and-swap, so
   * of two enrolments racing with one token exactly one gets `consumed`.
   */
  async consumeToken(token: string, deviceName: string, nowMs: number): Promise<TokenUse> {
    const key = tokenKey(token);
    for (let attempt = 1; ; attempt++) {
      const entry = await this.kv.get(key);
      const stored = entry?.operation === 'PUT' ? entry.json<EnrollmentTokenEntry>() : undefined;
      const use = tokenUse(stored, deviceName, nowMs);
      if (use.kind !== 'consumed' || !entry) return use;
      try {
        const used = { ...use.entry, usedAt: new Date(nowMs).toISOString() };
        await this.kv.update(key, JSON.stringify(used), entry.revision);
        return use;
      } catch (err) {
        // The other writer used it: the next read says so.
        if (!isRevisionConflict(err) || attempt >= MAX_CAS_ATTEMPTS) throw err;
      }
    }
  }
}
