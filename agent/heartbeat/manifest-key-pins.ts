import { isDeepStrictEqual } from 'node:util';
import {
  followManifestKeyChain,
  predecessorOf,
  type KeyRotationRefusedError,
  type ManifestKeyRotationStatement,
  type SignedManifestKeyRotation,
} from '../../common/manifest-key-rotation.js';
import type { DeviceIdentity, PreviousManifestKey } from '../identity/identity-store.js';

/**
 * How many keys the agent keeps besides the current one after rotations. Each is accepted until
 * the `previousKeyValidUntil` of the rotation that replaced it (chosen by the operator: 30 days
 * by default, the default manifest lifetime; none when the key leaked), so manifests signed just
 * before a rotation, in flight or on a release track that no rollout has signed again yet, still
 * verify. Two covers a second rotation within the grace of the first.
 */
export const MAX_PREVIOUS_MANIFEST_KEYS = 2;

export interface PinUpdate {
  /** The identity with the new pins; the one given when nothing changed. */
  identity: DeviceIdentity;
  changed: boolean;
  /** The rotations taken, in order. */
  accepted: ManifestKeyRotationStatement[];
  /** Why a rotation was not taken (the pin stays where the last good step left it). */
  refused?: KeyRotationRefusedError;
}

/**
 * Follows the rotation chain a heartbeat carried from the key this device pins: each step must be
 * signed by the key pinned at that step (common/manifest-key-rotation.ts). The replaced keys are
 * kept as previous keys until their grace ends. A device whose pinned key is itself the product
 * of a rotation (it enrolled after it) learns the previous key from that rotation's statement.
 */
export function applyManifestKeyRotations(
  identity: DeviceIdentity,
  rotations: readonly SignedManifestKeyRotation[],
  now: number = Date.now(),
): PinUpdate {
  const pinned = {
    version: identity.manifestKeyVersion ?? 1,
    publicKey: Buffer.from(identity.manifestPublicKey, 'base64'),
  };
  const walk = followManifestKeyChain(pinned, rotations);
  const previous: PreviousManifestKey[] = [...(identity.previousManifestKeys ?? [])];
  const retire = (s: ManifestKeyRotationStatement) => ({
    version: s.previousVersion,
    publicKey: s.previousPublicKey,
    validUntil: s.previousKeyValidUntil,
  });
  for (const step of walk.accepted) previous.push(retire(step));
  if (walk.accepted.length === 0 && !previous.some((k) => k.version === pinned.version - 1)) {
    const predecessor = predecessorOf(pinned, rotations);
    if (predecessor) previous.push(retire(predecessor));
  }
  const kept = previous
    .filter((k) => Date.parse(k.validUntil) > now)
    .filter((k, i, all) => all.findIndex((o) => o.version === k.version) === i)
    .sort((a, b) => b.version - a.version)
    .slice(0, MAX_PREVIOUS_MANIFEST_KEYS);
  const updated: DeviceIdentity = {
    ...identity,
    manifestPublicKey: Buffer.from(walk.pinned.publicKey).toString('base64'),
    manifestKeyVersion: walk.pinned.version,
    previousManifestKeys: kept,
  };
  const changed =
    updated.manifestKeyVersion !== pinned.version ||
    !isDeepStrictEqual(kept, identity.previousManifestKeys ?? []);
  return {
    identity: changed ? updated : identity,
    changed,
    accepted: walk.accepted,
    ...(walk.refused ? { refused: walk.refused } : {}),
  };
}

/**
 * The keys a manifest may be signed with now: the pinned one, and the previous ones whose grace
 * has not ended (common/manifest.ts VerifyOptions).
 */
export function manifestVerificationKeys(
  identity: DeviceIdentity,
  now: number = Date.now(),
): { publicKey: Buffer; previousPublicKeys: Buffer[] } {
  return {
    publicKey: Buffer.from(identity.manifestPublicKey, 'base64'),
    previousPublicKeys: (identity.previousManifestKeys ?? [])
      .filter((k) => Date.parse(k.validUntil) > now)
      .map((k) => Buffer.from(k.publicKey, 'base64')),
  };
}
