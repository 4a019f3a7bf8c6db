import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { enrollProofMessage, keyFingerprint, verifyEnrollProof } from './device-key.js';

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return { privateKey, raw };
}

const FIELDS = {
  deviceName: 'pi-kitchen',
  signedAtUnixMs: 1_767_225_600_000,
  enrollmentToken: 'fleet-secret',
};

describe('enrolment proof', () => {
  it('is the proof string of fleet.proto, byte for byte', () => {
    // The same bytes agent/identity/device-key.test.ts pins for what the agent signs.
    expect(enrollProofMessage(FIELDS).toString('utf8')).toBe(
      'edgeforge-enroll-v1\npi-kitchen\n1767225600000\n' +
        '4df36724a45ffea37ced74da0d12809c12f178df16c08c4cb7867c3c8a7739b4\n',
    );
  });

  it('verifies the signature of the key over this name, time and token only', () => {
    const { privateKey, raw } = keyPair();
    const signature = sign(null, enrollProofMessage(FIELDS), privateKey);
    expect(verifyEnrollProof(raw, signature, FIELDS)).toBe(true);
    expect(verifyEnrollProof(raw, signature, { ...FIELDS, deviceName: 'pi-garage' })).toBe(false);
    expect(verifyEnrollProof(raw, signature, { ...FIELDS, signedAtUnixMs: 1 })).toBe(false);
    expect(verifyEnrollProof(raw, signature, { ...FIELDS, enrollmentToken: 'other' })).toBe(false);
    expect(verifyEnrollProof(keyPair().raw, signature, FIELDS)).toBe(false);
    const flipped = Buffer.from(signature);
    flipped[10]! ^= 1;
    expect(verifyEnrollProof(raw, flipped, FIELDS)).toBe(false);
  });

  it('answers false, never throws, for bytes that are no key or no signature', () => {
    const { privateKey, raw } = keyPair();
    const signature = sign(null, enrollProofMessage(FIELDS), privateKey);
    expect(verifyEnrollProof(raw.subarray(0, 31), signature, FIELDS)).toBe(false);
    expect(verifyEnrollProof(raw, signature.subarray(0, 63), FIELDS)).toBe(false);
    expect(verifyEnrollProof(Buffer.alloc(32, 0xff), signature, FIELDS)).toBe(false);
    expect(verifyEnrollProof(Buffer.alloc(32), Buffer.alloc(64), FIELDS)).toBe(false);
  });

  it('fingerprints the raw key, from bytes or base64 alike', () => {
    const { raw } = keyPair();
    expect(keyFingerprint(raw)).toMatch(/^[0-9a-f]{64}$/);
    expect(keyFingerprint(raw.toString('base64'))).toBe(keyFingerprint(raw));
  });
});
