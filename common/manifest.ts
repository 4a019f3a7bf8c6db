import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { EdgeforgeError } from './errors.js';
import { releaseBucket } from './names.js';

/**
 * Model manifests: what a device must know to trust a model file before loading it. The control
 * plane signs the canonical JSON of a manifest with the fleet's ed25519 key; agents verify it with
 * the public key they pinned at enrollment, then check the downloaded file against `object`.
 */

export const MANIFEST_SCHEMA = 'edgeforge.manifest/v1';

/** A file in the NATS Object Store, identified by content. */
export interface ObjectRef {
  bucket: string;
  name: string;
  sha256: string;
  size: number;
}

export interface TensorSpec {
  name: string;
  /** ONNX element type, e.g. "float32". */
  elemType: string;
  /** Dimensions; a string is a symbolic dimension such as "batch". */
  shape: (number | string)[];
}

export interface ModelManifest {
  schema: typeof MANIFEST_SCHEMA;
  modelId: string;
  rolloutId: string;
  /** Variant name, e.g. "int8_static_minmax". */
  variant: string;
  /** Quantization format and the options it was built with. */
  format: { name: string; options: Record<string, string | number | boolean> };
  /** Monotonic per hardware class: a device never accepts a version older than what it runs. */
  version: number;
  /** The hardware classes this build is for. */
  hardwareClasses: string[];
  model: ObjectRef;
  opset: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Accuracy measured centrally on the test split; null when there were no labels. */
  centralAccuracy: number | null;
  /** Small labelled sample (npz) for on-device accuracy checks. */
  holdout: ObjectRef | null;
  createdAt: string;
  /** After this a device refuses the manifest (freeze attack: replaying a stale one). */
  expiresAt: string;
}

export interface SignedManifest {
  manifest: ModelManifest;
  /** base64 ed25519 signature over canonicalJson(manifest). */
  signature: string;
}

/** Why a device refused a model; reported to the control plane as is. */
export type RefusalReason =
  | 'malformed'
  | 'bad_signature'
  | 'expired'
  | 'older_version'
  | 'wrong_class'
  | 'digest_mismatch'
  | 'size_mismatch'
  | 'not_onnx'
  /** The ONNX file keeps tensors in external files (paths on the device): never loaded. */
  | 'external_data'
  /** The model or its holdout bundle does not fit the device's memory or free disk. */
  | 'too_large'
  | 'health_check_failed';

export class ManifestRefusedError extends EdgeforgeError {
  override name = 'ManifestRefusedError';
  constructor(
    readonly reason: RefusalReason,
    message: string,
    context: { rolloutId?: string; variant?: string; deviceId?: string } = {},
  ) {
    super(`${reason}: ${message}`, { context });
  }
}

/** JSON with object keys sorted at every level and no whitespace: one byte string per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new RangeError(`canonical JSON cannot hold ${value}`);
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export interface ManifestKeyPair {
  privateKey: KeyObject;
  /** Raw 32-byte ed25519 public key, as handed to agents at enrollment. */
  publicKeyRaw: Buffer;
}

export function generateManifestKeyPair(): { privateKeyPem: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

export function loadManifestKeyPair(privateKeyPem: string): ManifestKeyPair {
  const privateKey = createPrivateKey(privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new EdgeforgeError(
      `the manifest signing key must be ed25519, not ${privateKey.asymmetricKeyType}`,
    );
  }
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  return { privateKey, publicKeyRaw: Buffer.from(jwk.x ?? '', 'base64url') };
}

export function signManifest(manifest: ModelManifest, privateKey: KeyObject): SignedManifest {
  const signature = sign(null, Buffer.from(canonicalJson(manifest)), privateKey).toString('base64');
  return { manifest, signature };
}

function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) {
    throw new ManifestRefusedError(
      'bad_signature',
      `pinned public key has ${raw.length} bytes, expected 32: enroll again`,
    );
  }
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

export interface VerifyOptions {
  /** The fleet key pinned at enrollment, or the newest one a key rotation brought since. */
  publicKey: Uint8Array;
  /**
   * Keys the device pinned before the current one, still in their grace period after a rotation:
   * a manifest signed with one of them (before the rotation) is accepted too.
   */
  previousPublicKeys?: readonly Uint8Array[];
  /** The device's hardware class: the manifest must list it. */
  hardwareClass: string;
  /** The version the device runs now (any model); an older manifest is a rollback attack. */
  currentVersion?: number;
  now?: number;
}

/**
 * Checks a signed manifest before anything is downloaded: shape, signature, expiry, version and
 * hardware class. Throws ManifestRefusedError with the reason; returns the manifest otherwise.
 */
export function verifySignedManifest(
  signed: SignedManifest,
  options: VerifyOptions,
): ModelManifest {
  const m = signed.manifest;
  const ids = { rolloutId: m?.rolloutId, variant: m?.variant };
  if (!m || m.schema !== MANIFEST_SCHEMA || typeof signed.signature !== 'string') {
    throw new ManifestRefusedError('malformed', `not an ${MANIFEST_SCHEMA} manifest`, ids);
  }
  const body = Buffer.from(canonicalJson(m));
  const signature = Buffer.from(signed.signature, 'base64');
  const ok = [options.publicKey, ...(options.previousPublicKeys ?? [])].some((key) =>
    verify(null, body, publicKeyFromRaw(key), signature),
  );
  if (!ok) {
    throw new ManifestRefusedError(
      'bad_signature',
      'the signature does not match the fleet key pinned at enrollment',
      ids,
    );
  }
  const now = options.now ?? Date.now();
  if (!(Date.parse(m.expiresAt) > now)) {
    throw new ManifestRefusedError('expired', `the manifest expired at ${m.expiresAt}`, ids);
  }
  if (options.currentVersion !== undefined && m.version < options.currentVersion) {
    throw new ManifestRefusedError(
      'older_version',
      `version ${m.version} is older than the running version ${options.currentVersion}: ` +
        'an earlier release written back is never run (rollbacks are signed again with a newer version)',
      ids,
    );
  }
  if (!m.hardwareClasses.includes(options.hardwareClass)) {
    throw new ManifestRefusedError(
      'wrong_class',
      `built for ${m.hardwareClasses.join(', ')}, not for this device's class ${options.hardwareClass}`,
      ids,
    );
  }
  // Its files must be where this device may read them: its class's release bucket.
  const readable = releaseBucket(options.hardwareClass);
  for (const ref of [m.model, ...(m.holdout ? [m.holdout] : [])]) {
    if (ref.bucket !== readable) {
      throw new ManifestRefusedError(
        'wrong_class',
        `${ref.name} is in bucket ${ref.bucket}, not in this device's release bucket ${readable}`,
        ids,
      );
    }
  }
  return m;
}
