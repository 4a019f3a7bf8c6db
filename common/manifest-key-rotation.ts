import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { EdgeforgeError } from './errors.js';
import { canonicalJson } from './manifest.js';

/**
 * Rotating the fleet's manifest signing key without enrolling devices again, in the manner of
 * TUF's root rotation: each new key version N+1 is announced by a statement that key N signs
 * (a device pinning N can check it) and key N+1 signs (the control plane holds that key). A device
 * walks the chain one step at a time from the version it pins; a statement its pinned key did not
 * sign is refused, and the pin stays.
 */

export const KEY_ROTATION_SCHEMA = 'edgeforge.manifest-key-rotation/v1';

export interface ManifestKeyRotationStatement {
  schema: typeof KEY_ROTATION_SCHEMA;
  /** The new key's version: previousVersion + 1. */
  version: number;
  /** The new key: raw 32-byte ed25519 public key, base64. */
  publicKey: string;
  previousVersion: number;
  previousPublicKey: string;
  issuedAt: string;
  /**
   * Until when devices accept manifests signed by the previous key (signed before the rotation,
   * still in flight or on release tracks); equal to issuedAt when the previous key leaked.
   */
  previousKeyValidUntil: string;
}

/** A statement as it travels (HeartbeatResponse.manifest_key_rotations) and is stored. */
export interface SignedManifestKeyRotation {
  /** canonicalJson(statement): the exact bytes both keys signed. */
  statementJson: string;
  previousKeySignature: Uint8Array;
  newKeySignature: Uint8Array;
}

/** The key a device trusts for manifests, and its place in the chain. */
export interface PinnedManifestKey {
  version: number;
  /** Raw 32-byte ed25519 public key. */
  publicKey: Uint8Array;
}

export type KeyRotationRefusal =
  /** Not a statement of this schema, or a field is wrong. */
  | 'malformed'
  /** It does not follow from the pinned key: another previous key, or not signed by it. */
  | 'not_signed_by_pinned_key'
  /** The new key's own signature is missing or wrong. */
  | 'bad_new_key_signature'
  /** The chain skips a version after the pinned one. */
  | 'gap';

export class KeyRotationRefusedError extends EdgeforgeError {
  override name = 'KeyRotationRefusedError';
  constructor(
    readonly reason: KeyRotationRefusal,
    message: string,
    readonly version?: number,
  ) {
    super(
      `${reason}: ${message}`,
      version === undefined ? {} : { context: { keyVersion: version } },
    );
  }
}

const base64Key = z
  .base64()
  .refine((b) => Buffer.from(b, 'base64').length === 32, 'is not a 32-byte ed25519 key');
const version = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const StatementSchema = z
  .object({
    schema: z.literal(KEY_ROTATION_SCHEMA),
    version,
    publicKey: base64Key,
    previousVersion: version,
    previousPublicKey: base64Key,
    issuedAt: z.iso.datetime(),
    previousKeyValidUntil: z.iso.datetime(),
  })
  .strict()
  .refine((s) => s.version === s.previousVersion + 1, 'version must be previousVersion + 1');

/** Raw 32-byte ed25519 public key → KeyObject. */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

/** The statement for key `version` replacing `version - 1`, signed by both. */
export function signManifestKeyRotation(
  statement: Omit<ManifestKeyRotationStatement, 'schema'>,
  previousKey: KeyObject,
  newKey: KeyObject,
): SignedManifestKeyRotation {
  const statementJson = canonicalJson({ schema: KEY_ROTATION_SCHEMA, ...statement });
  const bytes = Buffer.from(statementJson);
  return {
    statementJson,
    previousKeySignature: sign(null, bytes, previousKey),
    newKeySignature: sign(null, bytes, newKey),
  };
}

/** The statement's fields, checked for shape only (no signature): KeyRotationRefusedError. */
export function parseManifestKeyRotation(
  signed: SignedManifestKeyRotation,
): ManifestKeyRotationStatement {
  let json: unknown;
  try {
    json = JSON.parse(signed.statementJson);
  } catch {
    throw new KeyRotationRefusedError('malformed', 'statement_json is not JSON');
  }
  const parsed = StatementSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeyRotationRefusedError(
      'malformed',
      `not an ${KEY_ROTATION_SCHEMA} statement: ${issue?.path.join('.') || 'statement'}: ${issue?.message}`,
    );
  }
  return parsed.data;
}

function signedBy(signed: SignedManifestKeyRotation, signature: Uint8Array, key: Uint8Array) {
  try {
    return verify(null, Buffer.from(signed.statementJson), ed25519PublicKey(key), signature);
  } catch {
    return false;
  }
}

/**
 * Checks one step: the statement names the pinned key as its previous one, the pinned key signed
 * it, and so did the new key. Returns the statement; throws KeyRotationRefusedError otherwise.
 */
export function verifyManifestKeyRotation(
  signed: SignedManifestKeyRotation,
  pinned: PinnedManifestKey,
): ManifestKeyRotationStatement {
  const statement = parseManifestKeyRotation(signed);
  const { version: v } = statement;
  const pinnedKey = Buffer.from(pinned.publicKey);
  if (
    statement.previousVersion !== pinned.version ||
    !Buffer.from(statement.previousPublicKey, 'base64').equals(pinnedKey) ||
    !signedBy(signed, signed.previousKeySignature, pinnedKey)
  ) {
    throw new KeyRotationRefusedError(
      'not_signed_by_pinned_key',
      `the statement for key version ${v} is not signed by the pinned key version ${pinned.version}`,
      v,
    );
  }
  if (!signedBy(signed, signed.newKeySignature, Buffer.from(statement.publicKey, 'base64'))) {
    throw new KeyRotationRefusedError(
      'bad_new_key_signature',
      `the statement for key version ${v} is not signed by the key it announces`,
      v,
    );
  }
  return statement;
}

export interface ChainWalk {
  /** The pin after every step that verified (the one given when none did). */
  pinned: PinnedManifestKey;
  /** The steps taken, in order. */
  accepted: ManifestKeyRotationStatement[];
  /** Why the walk stopped before the end of the chain, if it did. */
  refused?: KeyRotationRefusedError;
}

/**
 * Walks the chain from `pinned`, one version at a time: statements at or below the pinned version
 * are skipped, each next version must be signed by the key pinned at that step. Several
 * statements for one version (a forged one injected beside the real one) do not block the real
 * one: the first that verifies is taken. Stops at the first version none verifies for, or a gap.
 */
export function followManifestKeyChain(
  pinned: PinnedManifestKey,
  rotations: readonly SignedManifestKeyRotation[],
): ChainWalk {
  const byVersion = new Map<number, SignedManifestKeyRotation[]>();
  let malformed: KeyRotationRefusedError | undefined;
  let newest = pinned.version;
  for (const signed of rotations) {
    let statement: ManifestKeyRotationStatement;
    try {
      statement = parseManifestKeyRotation(signed);
    } catch (err) {
      malformed ??= err as KeyRotationRefusedError;
      continue;
    }
    if (statement.version <= pinned.version) continue;
    newest = Math.max(newest, statement.version);
    byVersion.set(statement.version, [...(byVersion.get(statement.version) ?? []), signed]);
  }
  let pin = pinned;
  const accepted: ManifestKeyRotationStatement[] = [];
  while (pin.version < newest) {
    const next = pin.version + 1;
    const candidates = byVersion.get(next);
    if (!candidates) {
      return {
        pinned: pin,
        accepted,
        refused: new KeyRotationRefusedError(
          'gap',
          `the chain goes up to key version ${newest} but has no statement for version ${next}`,
          next,
        ),
      };
    }
    let refusal: KeyRotationRefusedError | undefined;
    let step: ManifestKeyRotationStatement | undefined;
    for (const signed of candidates) {
      try {
        step = verifyManifestKeyRotation(signed, pin);
        break;
      } catch (err) {
        refusal ??= err as KeyRotationRefusedError;
      }
    }
    if (!step) return { pinned: pin, accepted, refused: refusal };
    accepted.push(step);
    pin = { version: step.version, publicKey: Buffer.from(step.publicKey, 'base64') };
  }
  // A statement that does not even parse is reported, though the walk went past it.
  return { pinned: pin, accepted, ...(malformed ? { refused: malformed } : {}) };
}

/**
 * The statement that made `pinned` the current key, when the chain holds one that both keys
 * signed: it names the previous key and until when manifests it signed are accepted. A device
 * that enrolled after the rotation learns its predecessor so.
 */
export function predecessorOf(
  pinned: PinnedManifestKey,
  rotations: readonly SignedManifestKeyRotation[],
): ManifestKeyRotationStatement | undefined {
  for (const signed of rotations) {
    let statement: ManifestKeyRotationStatement;
    try {
      statement = parseManifestKeyRotation(signed);
    } catch {
      continue;
    }
    if (
      statement.version === pinned.version &&
      Buffer.from(statement.publicKey, 'base64').equals(Buffer.from(pinned.publicKey)) &&
      signedBy(signed, signed.newKeySignature, pinned.publicKey) &&
      signedBy(
        signed,
        signed.previousKeySignature,
        Buffer.from(statement.previousPublicKey, 'base64'),
      )
    ) {
      return statement;
    }
  }
  return undefined;
}
