import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { EdgeforgeError } from '../../../common/errors.js';

/** The caller presented no credential, or one that is not valid (bad signature, expired). */
export class UnauthenticatedError extends EdgeforgeError {
  override name = 'UnauthenticatedError';
}

/** The credential is valid but not for this call (a device calling an admin method). */
export class PermissionDeniedError extends EdgeforgeError {
  override name = 'PermissionDeniedError';
}

export interface DeviceCredentialClaims {
  deviceId: string;
  /** Seconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
  /** The key that signed it (from the credential's envelope, not its claims); 0 for efd1. */
  keyId?: number;
}

/** One HMAC key of the control plane's credential key set. */
export interface CredentialKey {
  /** 0 for the key of the single-key `credential.key` file (efd1 credentials); then 1, 2, ... */
  id: number;
  key: Buffer;
  /** Seconds since the epoch. */
  createdAt: number;
  /**
   * Seconds since the epoch; set once a newer key replaced this one: the expiry of the last
   * credential it signed. Past it the key verifies nothing and is dropped at the next rotation.
   */
  acceptedUntil?: number;
}

const LEGACY_PREFIX = 'efd1';
const PREFIX = 'efd2';
const KEY_ID = /^(0|[1-9][0-9]{0,8})$/;
const MAX_CREDENTIAL_LENGTH = 1024;

/**
 * Device credentials: `efd2.<key id>.<claims, base64url JSON>.<HMAC-SHA256, base64url>`, signed
 * with the newest key of the control plane's credential key set and verified with any key still
 * accepted (a rotation leaves the older key accepted until the credentials it signed expire).
 * `efd1.<claims>.<HMAC>` is the format from before key rotation: key 0, the key of the old
 * single-key file, which also signs in that format for as long as it is the newest.
 * HMAC rather than a public-key signature because only the control plane issues and checks
 * them, and a heartbeat must cost microseconds, not a signature check.
 */
export class CredentialAuthority {
  #keys: readonly CredentialKey[] = [];

  constructor(
    keys: Buffer | readonly CredentialKey[],
    private readonly ttlSeconds: number,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.useKeys(Buffer.isBuffer(keys) ? [{ id: 0, key: keys, createdAt: 0 }] : keys);
  }

  static generateKey(): Buffer {
    return randomBytes(32);
  }

  /** The credential lifetime: how long a replaced key must stay accepted. */
  get credentialTtlSeconds(): number {
    return this.ttlSeconds;
  }

  /** Every key, oldest first; the last one signs. */
  get keys(): readonly CredentialKey[] {
    return this.#keys;
  }

  /** Replaces the key set (after a rotation); the newest (highest id) signs from now on. */
  useKeys(keys: readonly CredentialKey[]): void {
    if (keys.length === 0) throw new RangeError('the credential key set is empty');
    for (const k of keys) {
      if (k.key.length < 32) throw new RangeError('the credential key must have at least 32 bytes');
    }
    const sorted = [...keys].sort((a, b) => a.id - b.id);
    if (new Set(sorted.map((k) => k.id)).size !== sorted.length) {
      throw new RangeError('two credential keys have the same id');
    }
    this.#keys = sorted;
  }

  #newest(): CredentialKey {
    return this.#keys[this.#keys.length - 1]!;
  }

  issue(deviceId: string): { credential: string; claims: DeviceCredentialClaims } {
    const key = this.#newest();
    const issuedAt = Math.floor(this.now() / 1000);
    const claims = { deviceId, issuedAt, expiresAt: issuedAt + this.ttlSeconds };
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const envelope = key.id === 0 ? `${LEGACY_PREFIX}.${body}` : `${PREFIX}.${key.id}.${body}`;
    return {
      credential: `${envelope}.${mac(key, envelope)}`,
      claims: { ...claims, keyId: key.id },
    };
  }

  /** The claims of a valid, unexpired credential; UnauthenticatedError otherwise. */
  verify(credential: string): DeviceCredentialClaims {
    const parts = credential.length <= MAX_CREDENTIAL_LENGTH ? credential.split('.') : [];
    let keyId: number | undefined;
    let body: string | undefined;
    let signature: string | undefined;
    if (parts.length === 3 && parts[0] === LEGACY_PREFIX) {
      [, body, signature] = parts;
      keyId = 0;
    } else if (parts.length === 4 && parts[0] === PREFIX && KEY_ID.test(parts[1] ?? '')) {
      keyId = Number(parts[1]);
      [, , body, signature] = parts;
    }
    if (keyId === undefined || !body || !signature) {
      throw new UnauthenticatedError('malformed device credential: enroll again to get a new one');
    }
    const key = this.#keys.find((k) => k.id === keyId);
    const nowSeconds = this.now() / 1000;
    if (!key || (key.acceptedUntil !== undefined && key.acceptedUntil <= nowSeconds)) {
      throw new UnauthenticatedError(
        `device credential is signed by credential key ${keyId}, which this control plane does ` +
          'not accept (another control plane issued it, or its key was retired): enroll again',
      );
    }
    const envelope = credential.slice(0, credential.length - signature.length - 1);
    const expected = Buffer.from(mac(key, envelope));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new UnauthenticatedError(
        'device credential signature is invalid (issued by another control plane, or altered): enroll again',
      );
    }
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as DeviceCredentialClaims;
    if (claims.expiresAt * 1000 <= this.now()) {
      throw new UnauthenticatedError(
        `device credential expired at ${new Date(claims.expiresAt * 1000).toISOString()}: enroll again`,
        { context: { deviceId: claims.deviceId } },
      );
    }
    return {
      deviceId: claims.deviceId,
      issuedAt: claims.issuedAt,
      expiresAt: claims.expiresAt,
      keyId,
    };
  }

  /**
   * True when less than half of the credential's lifetime is left, or when a key other than the
   * newest signed it (after a rotation): time to hand out a new one.
   */
  shouldRenew(claims: DeviceCredentialClaims): boolean {
    if (claims.keyId !== undefined && claims.keyId !== this.#newest().id) return true;
    const half = (claims.expiresAt - claims.issuedAt) / 2;
    return claims.expiresAt - this.now() / 1000 < half;
  }
}

function mac(key: CredentialKey, envelope: string): string {
  return createHmac('sha256', key.key).update(envelope).digest('base64url');
}

/** Constant-time comparison of a presented secret (enrollment or admin token) with the real one. */
export function secretMatches(presented: string, secret: string): boolean {
  const a = createHmac('sha256', 'compare').update(presented).digest();
  const b = createHmac('sha256', 'compare').update(secret).digest();
  return timingSafeEqual(a, b);
}
