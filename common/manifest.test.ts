import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  generateManifestKeyPair,
  loadManifestKeyPair,
  MANIFEST_SCHEMA,
  signManifest,
  verifySignedManifest,
  type ModelManifest,
} from './manifest.js';

const keys = loadManifestKeyPair(generateManifestKeyPair().privateKeyPem);
const now = Date.parse('2026-06-01T00:00:00Z');

function manifest(overrides: Partial<ModelManifest> = {}): ModelManifest {
  return {
    schema: MANIFEST_SCHEMA,
    modelId: 'fashion-student',
    rolloutId: 'r-1',
    variant: 'int8_static_minmax',
    format: { name: 'int8_static', options: { calibration: 'minmax', perChannel: true } },
    version: 3,
    hardwareClasses: ['aarch64-dotprod-fp16-cpu-8g'],
    model: {
      bucket: 'edgeforge_release_aarch64-dotprod-fp16-cpu-8g',
      name: 'r-1/variants/int8.onnx',
      sha256: 'a'.repeat(64),
      size: 1234,
    },
    opset: 17,
    inputs: [{ name: 'input', elemType: 'float32', shape: ['batch', 1, 28, 28] }],
    outputs: [{ name: 'logits', elemType: 'float32', shape: ['batch', 10] }],
    centralAccuracy: 0.9,
    holdout: null,
    createdAt: '2026-05-31T00:00:00Z',
    expiresAt: '2026-06-30T00:00:00Z',
    ...overrides,
  };
}

const options = { publicKey: keys.publicKeyRaw, hardwareClass: 'aarch64-dotprod-fp16-cpu-8g', now };

describe('canonicalJson', () => {
  it('sorts keys at every level and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: null }], c: 'x' }, u: undefined })).toBe(
      '{"a":{"c":"x","d":[2,{"y":null,"z":1}]},"b":1}',
    );
  });
});

describe('signed manifests', () => {
  it('verify when untouched, whatever the key order', () => {
    const signed = signManifest(manifest(), keys.privateKey);
    const reordered = {
      ...signed,
      manifest: Object.fromEntries(
        Object.entries(signed.manifest).reverse(),
      ) as unknown as ModelManifest,
    };
    expect(verifySignedManifest(reordered, options).variant).toBe('int8_static_minmax');
  });

  it.each([
    [
      'a changed digest',
      (s: ReturnType<typeof signManifest>) => ({
        ...s,
        manifest: { ...s.manifest, model: { ...s.manifest.model, sha256: 'b'.repeat(64) } },
      }),
      /bad_signature/,
    ],
    [
      'another key',
      () =>
        signManifest(
          manifest(),
          loadManifestKeyPair(generateManifestKeyPair().privateKeyPem).privateKey,
        ),
      /bad_signature/,
    ],
    [
      'an expired manifest',
      () => signManifest(manifest({ expiresAt: '2026-05-31T12:00:00Z' }), keys.privateKey),
      /expired: the manifest expired at 2026-05-31T12:00:00Z/,
    ],
    [
      'another class',
      () =>
        signManifest(manifest({ hardwareClasses: ['x86_64-vnni-nofp16-cpu-8g'] }), keys.privateKey),
      /wrong_class: built for x86_64-vnni/,
    ],
    [
      'not a manifest',
      () => ({ manifest: { hello: 1 } as unknown as ModelManifest, signature: '' }),
      /malformed/,
    ],
  ])('refuse %s', (_what, make, reason) => {
    const signed = make(signManifest(manifest(), keys.privateKey));
    expect(() => verifySignedManifest(signed, options)).toThrow(reason);
  });

  it('refuse a version older than the one running (rollback attack)', () => {
    const signed = signManifest(manifest({ version: 2 }), keys.privateKey);
    expect(() => verifySignedManifest(signed, { ...options, currentVersion: 3 })).toThrow(
      /older_version: version 2 is older than the running version 3/,
    );
    expect(verifySignedManifest(signed, { ...options, currentVersion: 2 }).version).toBe(2);
  });
});
