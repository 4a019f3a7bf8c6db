import { describe, expect, it } from 'vitest';
import { rotatedCredentialKeys } from './credential-keys.js';
import { CredentialAuthority, UnauthenticatedError, secretMatches } from './credentials.js';

describe('CredentialAuthority', () => {
  const key = CredentialAuthority.generateKey();
  let now = Date.parse('2026-01-01T00:00:00Z');
  const authority = new CredentialAuthority(key, 3600, () => now);

  it('verifies what it issued', () => {
    const { credential } = authority.issue('d-123');
    expect(authority.verify(credential).deviceId).toBe('d-123');
  });

  it('rejects an altered credential', () => {
    const { credential } = authority.issue('d-123');
    const [prefix, , signature] = credential.split('.');
    const forged = Buffer.from(JSON.stringify({ deviceId: 'd-999', issuedAt: 0, expiresAt: 9e9 }));
    expect(() =>
      authority.verify(`${prefix}.${forged.toString('base64url')}.${signature}`),
    ).toThrow(/signature is invalid/);
  });

  it('rejects a credential from another control plane', () => {
    const other = new CredentialAuthority(CredentialAuthority.generateKey(), 3600, () => now);
    expect(() => authority.verify(other.issue('d-1').credential)).toThrow(UnauthenticatedError);
  });

  it.each(['', 'garbage', 'efd1..', 'efd1.a.b.c', 'x'.repeat(5000)])(
    'rejects malformed %j',
    (c) => {
      expect(() => authority.verify(c)).toThrow(/malformed/);
    },
  );

  it('rejects an expired credential and renews after half its lifetime', () => {
    const { credential } = authority.issue('d-1');
    const claims = authority.verify(credential);
    expect(authority.shouldRenew(claims)).toBe(false);
    now += 1801_000;
    expect(authority.shouldRenew(authority.verify(credential))).toBe(true);
    now += 1800_000;
    expect(() => authority.verify(credential)).toThrow(/expired at 2026-01-01T01:00:00.000Z/);
  });
});

describe('secretMatches', () => {
  it('compares exactly', () => {
    expect(secretMatches('s3cret', 's3cret')).toBe(true);
    expect(secretMatches('s3cre', 's3cret')).toBe(false);
    expect(secretMatches('', 's3cret')).toBe(false);
  });
});

describe('CredentialAuthority with a rotated key set', () => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = () => now;
  const legacyKey = CredentialAuthority.generateKey();
  const nowSeconds = () => Math.floor(now / 1000);

  it('signs with the newest key, verifies old (efd1 = key 0) and new, refuses an unknown key id', () => {
    const authority = new CredentialAuthority(legacyKey, 3600, clock);
    const legacy = authority.issue('d-1').credential;
    expect(legacy).toMatch(/^efd1\.[^.]+\.[^.]+$/);
    expect(authority.verify(legacy)).toMatchObject({ deviceId: 'd-1', keyId: 0 });

    const keys = rotatedCredentialKeys(authority.keys, nowSeconds(), 3600);
    authority.useKeys(keys);
    const fresh = authority.issue('d-1').credential;
    expect(fresh).toMatch(/^efd2\.1\.[^.]+\.[^.]+$/);
    expect(authority.verify(fresh)).toMatchObject({ deviceId: 'd-1', keyId: 1 });
    // The old credential still works until it expires; a heartbeat renews it at once.
    const old = authority.verify(legacy);
    expect(old.keyId).toBe(0);
    expect(authority.shouldRenew(old)).toBe(true);
    expect(authority.shouldRenew(authority.verify(fresh))).toBe(false);

    // Key 7 does not exist here: refused whatever its MAC.
    const [, , body, mac] = fresh.split('.');
    expect(() => authority.verify(`efd2.7.${body}.${mac}`)).toThrow(
      /signed by credential key 7, which this control plane does not accept/,
    );
    // The key id is part of what the MAC covers: moving a credential to another id fails.
    expect(() => authority.verify(`efd2.0.${body}.${mac}`)).toThrow(/signature is invalid/);
    expect(() => authority.verify(`efd1.${body}.${mac}`)).toThrow(/signature is invalid/);
  });

  it('keeps the replaced key for one credential lifetime, then drops it', () => {
    const authority = new CredentialAuthority(legacyKey, 3600, clock);
    const legacy = authority.issue('d-2').credential;
    authority.useKeys(rotatedCredentialKeys(authority.keys, nowSeconds(), 3600));
    expect(authority.keys.map((k) => [k.id, k.acceptedUntil])).toEqual([
      [0, nowSeconds() + 3600],
      [1, undefined],
    ]);
    now += 3599_000;
    expect(authority.verify(legacy).deviceId).toBe('d-2');
    now += 1_000;
    // Expired with its key's retirement: the credential's own expiry says so first.
    expect(() => authority.verify(legacy)).toThrow(UnauthenticatedError);
    // The next rotation drops key 0 altogether and retires key 1.
    const next = rotatedCredentialKeys(authority.keys, nowSeconds(), 3600);
    expect(next.map((k) => k.id)).toEqual([1, 2]);
    expect(next[0]!.acceptedUntil).toBe(nowSeconds() + 3600);
  });

  it('refuses a retired key past its time even for a credential that claims a later expiry', () => {
    const key = CredentialAuthority.generateKey();
    // A long-lived credential from before a TTL was shortened: its key's retirement wins.
    const longLived = new CredentialAuthority(
      [{ id: 3, key, createdAt: 0 }],
      10 * 3600,
      clock,
    ).issue('d-3').credential;
    const authority = new CredentialAuthority(
      [
        { id: 3, key, createdAt: 0, acceptedUntil: nowSeconds() + 60 },
        { id: 4, key: CredentialAuthority.generateKey(), createdAt: nowSeconds() },
      ],
      3600,
      clock,
    );
    expect(authority.verify(longLived).keyId).toBe(3);
    now += 61_000;
    expect(() => authority.verify(longLived)).toThrow(/credential key 3, which this control plane/);
  });
});
