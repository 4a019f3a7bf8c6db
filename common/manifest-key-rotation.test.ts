import { describe, expect, it } from 'vitest';
import {
  generateManifestKeyPair,
  loadManifestKeyPair,
  MANIFEST_SCHEMA,
  signManifest,
  verifySignedManifest,
  type ManifestKeyPair,
  type ModelManifest,
} from './manifest.js';
import {
  followManifestKeyChain,
  KeyRotationRefusedError,
  predecessorOf,
  signManifestKeyRotation,
  verifyManifestKeyRotation,
  type SignedManifestKeyRotation,
} from './manifest-key-rotation.js';

const newKey = () => loadManifestKeyPair(generateManifestKeyPair().privateKeyPem);
const ISSUED = '2026-03-01T00:00:00.000Z';
const GRACE_END = '2026-03-31T00:00:00.000Z';

/** The statement for `version` (from `previous`), signed by `signer` (the previous key unless forged). */
function rotation(
  version: number,
  previous: ManifestKeyPair,
  next: ManifestKeyPair,
  signer: ManifestKeyPair = previous,
): SignedManifestKeyRotation {
  return signManifestKeyRotation(
    {
      version,
      publicKey: next.publicKeyRaw.toString('base64'),
      previousVersion: version - 1,
      previousPublicKey: previous.publicKeyRaw.toString('base64'),
      issuedAt: ISSUED,
      previousKeyValidUntil: GRACE_END,
    },
    signer.privateKey,
    next.privateKey,
  );
}

function testManifestFields(): ModelManifest {
  return {
    schema: MANIFEST_SCHEMA,
    modelId: 'fashion-student',
    rolloutId: 'r-1',
    variant: 'fp32',
    format: { name: 'fp32', options: {} },
    version: 3,
    hardwareClasses: ['arm64-neon'],
    model: {
      bucket: 'edgeforge_release_arm64-neon',
      name: 'r-1/fp32.onnx',
      sha256: 'a'.repeat(64),
      size: 1,
    },
    opset: 17,
    inputs: [{ name: 'input', elemType: 'float32', shape: ['batch', 4] }],
    outputs: [{ name: 'logits', elemType: 'float32', shape: ['batch', 2] }],
    centralAccuracy: null,
    holdout: null,
    createdAt: '2026-03-01T00:00:00Z',
    expiresAt: '2026-03-31T00:00:00Z',
  };
}

const pin = (version: number, key: ManifestKeyPair) => ({ version, publicKey: key.publicKeyRaw });

describe('manifest key rotation statements', () => {
  const k1 = newKey();
  const k2 = newKey();
  const k3 = newKey();
  const attacker = newKey();
  const chain = [rotation(2, k1, k2), rotation(3, k2, k3)];

  it('verifies a step signed by the pinned key and the new one', () => {
    const statement = verifyManifestKeyRotation(chain[0]!, pin(1, k1));
    expect(statement).toMatchObject({
      version: 2,
      previousVersion: 1,
      publicKey: k2.publicKeyRaw.toString('base64'),
      previousKeyValidUntil: GRACE_END,
    });
  });

  it('walks the chain one step at a time from the pinned version', () => {
    const walk = followManifestKeyChain(pin(1, k1), chain);
    expect(walk.refused).toBeUndefined();
    expect(walk.accepted.map((s) => s.version)).toEqual([2, 3]);
    expect(Buffer.from(walk.pinned.publicKey).equals(k3.publicKeyRaw)).toBe(true);
    // A device at version 2 takes only the last step; one at 3 has nothing to do.
    expect(followManifestKeyChain(pin(2, k2), chain).accepted.map((s) => s.version)).toEqual([3]);
    expect(followManifestKeyChain(pin(3, k3), chain)).toEqual({
      pinned: pin(3, k3),
      accepted: [],
    });
  });

  it('refuses a statement the pinned key did not sign, and keeps the pin', () => {
    // The attacker names the real previous key but cannot sign with it.
    const forged = rotation(2, k1, attacker, attacker);
    const walk = followManifestKeyChain(pin(1, k1), [forged]);
    expect(walk.accepted).toEqual([]);
    expect(walk.pinned).toEqual(pin(1, k1));
    expect(walk.refused).toBeInstanceOf(KeyRotationRefusedError);
    expect(walk.refused?.reason).toBe('not_signed_by_pinned_key');
    expect(walk.refused?.message).toMatch(
      /key version 2 is not signed by the pinned key version 1/,
    );
  });

  it('refuses a statement from another chain (another previous key)', () => {
    const other = rotation(2, attacker, newKey());
    expect(() => verifyManifestKeyRotation(other, pin(1, k1))).toThrow(/not_signed_by_pinned_key/);
  });

  it('refuses a statement whose new key did not sign it', () => {
    const good = rotation(2, k1, k2);
    const noProof = { ...good, newKeySignature: Buffer.alloc(64) };
    expect(() => verifyManifestKeyRotation(noProof, pin(1, k1))).toThrow(/bad_new_key_signature/);
  });

  it('refuses an altered statement', () => {
    const good = rotation(2, k1, k2);
    const altered = {
      ...good,
      statementJson: good.statementJson.replace(GRACE_END, '2099-01-01T00:00:00.000Z'),
    };
    expect(() => verifyManifestKeyRotation(altered, pin(1, k1))).toThrow(
      /not_signed_by_pinned_key/,
    );
  });

  it('stops at a gap: version 3 cannot be checked without the statement for 2', () => {
    const walk = followManifestKeyChain(pin(1, k1), [chain[1]!]);
    expect(walk.accepted).toEqual([]);
    expect(walk.refused?.reason).toBe('gap');
    expect(walk.refused?.message).toMatch(/up to key version 3 but has no statement for version 2/);
  });

  it('takes the real step when a forged statement for the same version is injected beside it', () => {
    const forged = rotation(2, k1, attacker, attacker);
    const walk = followManifestKeyChain(pin(1, k1), [forged, ...chain]);
    expect(walk.accepted.map((s) => s.version)).toEqual([2, 3]);
    expect(Buffer.from(walk.pinned.publicKey).equals(k3.publicKeyRaw)).toBe(true);
  });

  it('takes the verified steps up to a forged one, then stops', () => {
    const forged3 = rotation(3, k2, attacker, attacker);
    const walk = followManifestKeyChain(pin(1, k1), [chain[0]!, forged3]);
    expect(walk.accepted.map((s) => s.version)).toEqual([2]);
    expect(walk.pinned).toEqual(pin(2, k2));
    expect(walk.refused?.reason).toBe('not_signed_by_pinned_key');
  });

  it.each([
    ['not JSON', '{'],
    ['another schema', JSON.stringify({ schema: 'edgeforge.manifest/v1', version: 2 })],
    [
      'a version that does not follow',
      JSON.stringify({
        schema: 'edgeforge.manifest-key-rotation/v1',
        version: 5,
        publicKey: Buffer.alloc(32).toString('base64'),
        previousVersion: 1,
        previousPublicKey: Buffer.alloc(32).toString('base64'),
        issuedAt: ISSUED,
        previousKeyValidUntil: GRACE_END,
      }),
    ],
  ])('refuses a malformed statement (%s)', (_what, statementJson) => {
    const walk = followManifestKeyChain(pin(1, k1), [
      { statementJson, previousKeySignature: Buffer.alloc(64), newKeySignature: Buffer.alloc(64) },
    ]);
    expect(walk.accepted).toEqual([]);
    expect(walk.refused?.reason).toBe('malformed');
  });

  it('a signed manifest is never a rotation statement, nor the reverse', () => {
    const signed = signManifest(testManifestFields(), k1.privateKey);
    const asRotation = {
      statementJson: JSON.stringify(signed.manifest),
      previousKeySignature: Buffer.from(signed.signature, 'base64'),
      newKeySignature: Buffer.from(signed.signature, 'base64'),
    };
    expect(() => verifyManifestKeyRotation(asRotation, pin(1, k1))).toThrow(/malformed/);
  });

  it('names the predecessor of a key that a rotation brought (for devices enrolled after it)', () => {
    expect(predecessorOf(pin(2, k2), chain)).toMatchObject({
      previousPublicKey: k1.publicKeyRaw.toString('base64'),
      previousKeyValidUntil: GRACE_END,
    });
    expect(predecessorOf(pin(1, k1), chain)).toBeUndefined();
    // A statement naming the pinned key but not signed by it names no predecessor.
    const forged = rotation(2, attacker, k2, attacker);
    expect(predecessorOf(pin(2, k2), [{ ...forged, newKeySignature: Buffer.alloc(64) }])).toBe(
      undefined,
    );
  });
});

describe('verifySignedManifest with previous keys', () => {
  const k1 = newKey();
  const k2 = newKey();
  const manifest = testManifestFields();
  const options = { hardwareClass: 'arm64-neon', now: Date.parse('2026-03-02T00:00:00Z') };

  it('accepts a manifest signed by a previous key still in its grace period', () => {
    const old = signManifest(manifest, k1.privateKey);
    expect(() => verifySignedManifest(old, { ...options, publicKey: k2.publicKeyRaw })).toThrow(
      /bad_signature/,
    );
    expect(
      verifySignedManifest(old, {
        ...options,
        publicKey: k2.publicKeyRaw,
        previousPublicKeys: [k1.publicKeyRaw],
      }).modelId,
    ).toBe(manifest.modelId);
    const current = signManifest(manifest, k2.privateKey);
    expect(
      verifySignedManifest(current, {
        ...options,
        publicKey: k2.publicKeyRaw,
        previousPublicKeys: [k1.publicKeyRaw],
      }).modelId,
    ).toBe(manifest.modelId);
  });
});
