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
}

const PREFIX = 'efd1';
const MAX_CREDENTIAL_LENGTH = 1024;

/**
 * Device credentials: `efd1.<claims, base64url JSON>.<HMAC-SHA256, base64url>`, signed with the
 * control plane's secret key. HMAC rather than a public-key signature because only the control
 * plane issues and checks them, and a heartbeat must cost microseconds, not a signature check.
 */
export class CredentialAuthority {
  constructor(
    private readonly key: Buffer,
    private readonly ttlSeconds: number,
    private readonly now: () => number = () => Date.now(),
  ) {
    if (key.length < 32) throw new RangeError('the credential key must have at least 32 bytes');
  }

  static generateKey(): Buffer {
    return randomBytes(32);
  }

  issue(deviceId: string): { credential: string; claims: DeviceCredentialClaims } {
    const issuedAt = Math.floor(this.now() / 1000);
    const claims = { deviceId, issuedAt, expiresAt: issuedAt + this.ttlSeconds };
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { credential: `${PREFIX}.${body}.${this.sign(body)}`, claims };
  }

  /** The claims of a valid, unexpired credential; UnauthenticatedError otherwise. */
  verify(credential: string): DeviceCredentialClaims {
    const parts = credential.length <= MAX_CREDENTIAL_LENGTH ? credential.split('.') : [];
    const [prefix, body, signature] = parts;
    if (parts.length !== 3 || prefix !== PREFIX || !body || !signature) {
      throw new UnauthenticatedError('malformed device credential: enroll again to get a new one');
    }
    const expected = Buffer.from(this.sign(body));
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
    return claims;
  }

  /** True when less than half of the credential's lifetime is left: time to hand out a new one. */
  shouldRenew(claims: DeviceCredentialClaims): boolean {
    const half = (claims.expiresAt - claims.issuedAt) / 2;
    return claims.expiresAt - this.now() / 1000 < half;
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(`${PREFIX}.${body}`).digest('base64url');
  }
}

/** Constant-time comparison of a presented secret (enrollment or admin token) with the real one. */
export function secretMatches(presented: string, secret: string): boolean {
  const a = createHmac('sha256', 'compare').update(presented).digest();
  const b = createHmac('sha256', 'compare').update(secret).digest();
  return timingSafeEqual(a, b);
}
