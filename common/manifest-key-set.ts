import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { EdgeforgeError } from './errors.js';
import { generateManifestKeyPair, loadManifestKeyPair, type ManifestKeyPair } from './manifest.js';
import {
  parseManifestKeyRotation,
  signManifestKeyRotation,
  verifyManifestKeyRotation,
  type SignedManifestKeyRotation,
} from './manifest-key-rotation.js';
import { loadOrCreateManifestKey, writeSecretFileAtomic } from './secrets.js';

/**
 * The fleet's versioned manifest signing keys, in the control plane's data dir:
 * - `manifest-keys.json` (mode 0600): the current version and its private key, and every rotation
 *   statement so far (oldest first). Written atomically: it is the commit point of a rotation.
 *   Retired private keys are not kept: nothing signs with them again.
 * - `manifest-signing.pem`: the current private key alone, as before key rotation existed. Key
 *   version 1 is this file when there is no key set yet (nothing is migrated until the first
 *   rotation, so a read-only data dir keeps working). Rewritten after each rotation for whoever
 *   reads the pem alone (EDGEFORGE_MANIFEST_KEY_FILE pointing at a copy, test helpers).
 */

export const MANIFEST_KEY_PEM_FILE = 'manifest-signing.pem';
export const MANIFEST_KEY_SET_FILE = 'manifest-keys.json';
const SCHEMA = 'edgeforge.manifest-keys/v1';

/**
 * How long devices keep accepting the previous key after a rotation, unless the operator says
 * otherwise: the default manifest lifetime (ROLLOUT_DEFAULTS.manifestTtlHours), so a manifest
 * signed just before the rotation stays good for as long as it would have anyway.
 */
export const DEFAULT_MANIFEST_KEY_GRACE_HOURS = 24 * 30;

export interface ManifestKeySet {
  /** The current key's version; 1 until the first rotation. */
  version: number;
  key: ManifestKeyPair;
  /** Oldest first: rotations[i] brought version i + 2. */
  rotations: SignedManifestKeyRotation[];
}

export class ManifestKeySetError extends EdgeforgeError {
  override name = 'ManifestKeySetError';
}

const FileSchema = z.object({
  schema: z.literal(SCHEMA),
  version: z.number().int().positive(),
  privateKeyPem: z.string().min(1),
  rotations: z.array(
    z.object({
      statementJson: z.string(),
      previousKeySignature: z.base64(),
      newKeySignature: z.base64(),
    }),
  ),
});

function toFile(set: ManifestKeySet): string {
  const file: z.infer<typeof FileSchema> = {
    schema: SCHEMA,
    version: set.version,
    privateKeyPem: pemOf(set.key),
    rotations: set.rotations.map((r) => ({
      statementJson: r.statementJson,
      previousKeySignature: Buffer.from(r.previousKeySignature).toString('base64'),
      newKeySignature: Buffer.from(r.newKeySignature).toString('base64'),
    })),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function pemOf(key: ManifestKeyPair): string {
  return key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/**
 * Parses and checks a key set: each statement follows from the one before (the chain an agent
 * walks), and the last one announces the current key. A set that fails is an error for a person:
 * handing agents a broken chain would strand them on their old key.
 */
function parseKeySet(text: string, file: string): ManifestKeySet {
  const corrupt = (problem: string, cause?: unknown) =>
    new ManifestKeySetError(
      `${file} is corrupt: ${problem}. Restore it from backup; the control plane will not ` +
        'start without it (agents pin the keys it holds)',
      { cause },
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw corrupt('it is not JSON', err);
  }
  const parsed = FileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw corrupt(`field "${issue?.path.join('.')}": ${issue?.message}`, parsed.error);
  }
  const { version, privateKeyPem } = parsed.data;
  const rotations: SignedManifestKeyRotation[] = parsed.data.rotations.map((r) => ({
    statementJson: r.statementJson,
    previousKeySignature: Buffer.from(r.previousKeySignature, 'base64'),
    newKeySignature: Buffer.from(r.newKeySignature, 'base64'),
  }));
  if (rotations.length !== version - 1) {
    throw corrupt(
      `version ${version} needs ${version - 1} rotation statements, not ${rotations.length}`,
    );
  }
  let key: ManifestKeyPair;
  try {
    key = loadManifestKeyPair(privateKeyPem);
  } catch (err) {
    throw corrupt(`the private key does not load (${(err as Error).message})`, err);
  }
  let pinned: { version: number; publicKey: Uint8Array } | undefined;
  try {
    for (const rotation of rotations) {
      const first = pinned ?? {
        version: 1,
        publicKey: Buffer.from(parseManifestKeyRotation(rotation).previousPublicKey, 'base64'),
      };
      const statement = verifyManifestKeyRotation(rotation, first);
      pinned = {
        version: statement.version,
        publicKey: Buffer.from(statement.publicKey, 'base64'),
      };
    }
  } catch (err) {
    throw corrupt(`the rotation chain does not verify (${(err as Error).message})`, err);
  }
  if (pinned && !Buffer.from(pinned.publicKey).equals(key.publicKeyRaw)) {
    throw corrupt(`the last rotation statement announces another key than the current one`);
  }
  return { version, key, rotations };
}

/** The key set in `dataDir`, or undefined when none was written yet (no rotation so far). */
export async function readManifestKeySet(dataDir: string): Promise<ManifestKeySet | undefined> {
  const file = join(dataDir, MANIFEST_KEY_SET_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseKeySet(text, file);
}

/**
 * The key set in `dataDir`; without one, the single key of `manifest-signing.pem` (created on a
 * first start) as version 1. Writes nothing else: a read-only data dir works until a rotation.
 */
export async function loadManifestKeySet(dataDir: string): Promise<ManifestKeySet> {
  const stored = await readManifestKeySet(dataDir);
  if (stored) return stored;
  const key = await loadOrCreateManifestKey(join(dataDir, MANIFEST_KEY_PEM_FILE));
  return { version: 1, key, rotations: [] };
}

export interface RotateOptions {
  now?: Date;
  /** Until when devices accept the previous key; `now` to retire it at once. */
  previousKeyValidUntil: Date;
}

/**
 * Makes a new key the current one: a statement signed by the current key and the new one, the key
 * set written atomically (from then on the rotation has happened), then `manifest-signing.pem`.
 */
export async function rotateManifestKeySet(
  dataDir: string,
  current: ManifestKeySet,
  options: RotateOptions,
): Promise<{ set: ManifestKeySet; rotation: SignedManifestKeyRotation; pemSynced: boolean }> {
  const now = options.now ?? new Date();
  const key = loadManifestKeyPair(generateManifestKeyPair().privateKeyPem);
  const rotation = signManifestKeyRotation(
    {
      version: current.version + 1,
      publicKey: key.publicKeyRaw.toString('base64'),
      previousVersion: current.version,
      previousPublicKey: current.key.publicKeyRaw.toString('base64'),
      issuedAt: now.toISOString(),
      previousKeyValidUntil: new Date(
        Math.max(now.getTime(), options.previousKeyValidUntil.getTime()),
      ).toISOString(),
    },
    current.key.privateKey,
    key.privateKey,
  );
  const set: ManifestKeySet = {
    version: current.version + 1,
    key,
    rotations: [...current.rotations, rotation],
  };
  await writeSecretFileAtomic(join(dataDir, MANIFEST_KEY_SET_FILE), toFile(set));
  // The rotation has happened; the pem is a copy for those who read it alone, brought up to date
  // again at the control plane's next start if this write fails.
  const pemSynced = await syncManifestKeyPem(dataDir, set).then(
    () => true,
    () => false,
  );
  return { set, rotation, pemSynced };
}

/**
 * Rewrites `manifest-signing.pem` when it does not hold the key set's current key (a crash
 * between the two writes of a rotation). True when it did.
 */
export async function syncManifestKeyPem(dataDir: string, set: ManifestKeySet): Promise<boolean> {
  const file = join(dataDir, MANIFEST_KEY_PEM_FILE);
  const pem = await readFile(file, 'utf8').catch(() => undefined);
  try {
    if (pem !== undefined && loadManifestKeyPair(pem).publicKeyRaw.equals(set.key.publicKeyRaw)) {
      return false;
    }
  } catch {
    // Not a key: replaced below.
  }
  await writeSecretFileAtomic(file, pemOf(set.key));
  return true;
}

/**
 * For the orchestrator: the current signing key, given the pem file it was configured with
 * (EDGEFORGE_MANIFEST_KEY_FILE). The key set beside it wins when there is one; either file is
 * read again only when it changed (inode, mtime or size), so a worker that started before a
 * rotation signs with the new key from its next signing on, without a restart.
 */
export function currentManifestSigningKey(pemFile: string): () => Promise<ManifestKeyPair> {
  const dataDir = dirname(pemFile);
  const setFile = join(dataDir, MANIFEST_KEY_SET_FILE);
  let cached: { stamp: string; key: ManifestKeyPair } | undefined;
  return async () => {
    const setStamp = await stampOf(setFile);
    const stamp = setStamp ? `set:${setStamp}` : `pem:${await stampOf(pemFile)}`;
    if (cached?.stamp === stamp) return cached.key;
    const set = setStamp ? await readManifestKeySet(dataDir) : undefined;
    const key = set?.key ?? loadManifestKeyPair(await readFile(pemFile, 'utf8'));
    cached = { stamp, key };
    return key;
  };
}

async function stampOf(file: string): Promise<string | undefined> {
  try {
    const s = await stat(file);
    return `${s.ino}:${s.mtimeMs}:${s.size}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** What signs manifests: a fixed key (tests), or the current key of a rotating key set. */
export type ManifestSigningKey = ManifestKeyPair | (() => Promise<ManifestKeyPair>);

/** The key to sign with now. */
export function signingKeyNow(key: ManifestSigningKey): Promise<ManifestKeyPair> {
  return typeof key === 'function' ? key() : Promise.resolve(key);
}
