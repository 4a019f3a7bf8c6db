import { createHash, createPublicKey, verify } from 'node:crypto';

/**
 * Device keys as the control plane sees them: the proof of possession a device signs at Enroll
 * (EnrollRequest.key_signature) and the fingerprints operators compare. The agent builds the same
 * proof string (agent/identity/device-key.ts); test/fleet/device-keys.test.ts signs with the
 * agent's code against this one, and both unit tests pin the same bytes.
 */

export const ENROLL_PROOF_CONTEXT = 'edgeforge-enroll-v1';

/**
 * In the details of the FAILED_PRECONDITION that an Enroll with another key than the registry's
 * gets: agents recognise it (agent/fleet/fleet-client.ts) and wait, asking again now and then.
 */
export const AWAITING_APPROVAL_PHRASE = 'an operator must approve this device key';

export interface EnrollProofFields {
  deviceName: string;
  signedAtUnixMs: number;
  enrollmentToken: string;
}

/**
 * The bytes a device signs to enrol: the name (so a proof cannot be moved to another device),
 * the time (so it is good for minutes, and a replay is caught by the registry's last accepted
 * time for the key) and the token's sha256 (so it is good with this fleet's token, or this one
 * one-time token, only). Device names are single tokens without newlines (validation.ts).
 */
export function enrollProofMessage(fields: EnrollProofFields): Buffer {
  const tokenHash = createHash('sha256').update(fields.enrollmentToken).digest('hex');
  return Buffer.from(
    `${ENROLL_PROOF_CONTEXT}\n${fields.deviceName}\n${fields.signedAtUnixMs}\n${tokenHash}\n`,
    'utf8',
  );
}

/** Whether `signature` is the raw ed25519 key's signature of the proof; never throws. */
export function verifyEnrollProof(
  publicKeyRaw: Uint8Array,
  signature: Uint8Array,
  fields: EnrollProofFields,
): boolean {
  if (publicKeyRaw.length !== 32 || signature.length !== 64) return false;
  try {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyRaw).toString('base64url') },
      format: 'jwk',
    });
    return verify(null, enrollProofMessage(fields), key, signature);
  } catch {
    // Bytes that are no point on the curve: no signature verifies under them.
    return false;
  }
}

/** hex(sha256(raw key)): what operators compare with the fingerprint the agent logs. */
export function keyFingerprint(publicKey: Uint8Array | string): string {
  const raw = typeof publicKey === 'string' ? Buffer.from(publicKey, 'base64') : publicKey;
  return createHash('sha256').update(raw).digest('hex');
}
