import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeforgeError } from '../../../common/errors.js';
import { loadOrCreateSecret, writeSecretFileAtomic } from '../../../common/secrets.js';
import { CredentialAuthority, type CredentialKey } from './credentials.js';

/**
 * The credential HMAC keys in the control plane's data dir:
 * - `credential.key`: 32 random bytes, the only key before key rotation existed; key 0 (efd1
 *   credentials). Created on a first start as before.
 * - `credential-keys.json` (mode 0600): the versioned set, written by the first rotation (which
 *   takes `credential.key` in as key 0) and by each one after; from then on it is the one read.
 * Nothing is written until a rotation, so a read-only data dir (a Kubernetes Secret) keeps working.
 */

export const CREDENTIAL_KEY_FILE = 'credential.key';
export const CREDENTIAL_KEY_SET_FILE = 'credential-keys.json';
const SCHEMA = 'edgeforge.credential-keys/v1';

const FileSchema = z.object({
  schema: z.literal(SCHEMA),
  keys: z
    .array(
      z.object({
        id: z.number().int().nonnegative(),
        key: z.base64(),
        createdAt: z.number().int().nonnegative(),
        acceptedUntil: z.number().int().nonnegative().optional(),
      }),
    )
    .min(1),
});

export class CredentialKeySetError extends EdgeforgeError {
  override name = 'CredentialKeySetError';
}

/** The key set in `dataDir`: the versioned file, or else `credential.key` as key 0. */
export async function loadCredentialKeys(dataDir: string): Promise<CredentialKey[]> {
  const file = join(dataDir, CREDENTIAL_KEY_SET_FILE);
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === undefined) {
    const key = await loadOrCreateSecret(join(dataDir, CREDENTIAL_KEY_FILE), 32);
    return [{ id: 0, key, createdAt: 0 }];
  }
  const corrupt = (problem: string, cause?: unknown) =>
    new CredentialKeySetError(
      `${file} is corrupt: ${problem}. Restore it from backup, or delete it and credential.key ` +
        'to start over (every device must then enroll again)',
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
  const keys = parsed.data.keys.map((k) => ({ ...k, key: Buffer.from(k.key, 'base64') }));
  try {
    // Checks what the authority checks (sizes, unique ids) before anything runs on it.
    new CredentialAuthority(keys, 1);
  } catch (err) {
    throw corrupt((err as Error).message, err);
  }
  return keys;
}

/**
 * The set after a rotation at `nowSeconds`: a new key (the next id) signs from now on; the one
 * that signed until now stays accepted for one credential lifetime (the last credential it
 * signed expires then); keys past their time are dropped.
 */
export function rotatedCredentialKeys(
  keys: readonly CredentialKey[],
  nowSeconds: number,
  ttlSeconds: number,
): CredentialKey[] {
  const now = Math.floor(nowSeconds);
  const newestId = Math.max(...keys.map((k) => k.id));
  const kept = keys
    .filter((k) => k.acceptedUntil === undefined || k.acceptedUntil > now)
    .map((k) => (k.acceptedUntil === undefined ? { ...k, acceptedUntil: now + ttlSeconds } : k));
  return [...kept, { id: newestId + 1, key: CredentialAuthority.generateKey(), createdAt: now }];
}

/** Writes the versioned set atomically (mode 0600). */
export async function saveCredentialKeys(
  dataDir: string,
  keys: readonly CredentialKey[],
): Promise<void> {
  const file = {
    schema: SCHEMA,
    keys: keys.map((k) => ({ ...k, key: k.key.toString('base64') })),
  };
  await writeSecretFileAtomic(
    join(dataDir, CREDENTIAL_KEY_SET_FILE),
    `${JSON.stringify(file, null, 2)}\n`,
  );
}
