import { describe, expect, it } from 'vitest';
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
