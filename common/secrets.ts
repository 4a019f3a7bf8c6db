import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { generateManifestKeyPair, loadManifestKeyPair, type ManifestKeyPair } from './manifest.js';

/**
 * Reads a secret file, or creates it with `bytes` random bytes (mode 0600, written atomically)
 * the first time. Keeping it across restarts is what lets agents keep their credentials.
 */
export async function loadOrCreateSecret(path: string, bytes: number): Promise<Buffer> {
  return loadOrCreate(path, bytes, () => randomBytes(bytes));
}

/** Like loadOrCreateSecret, for a printable token (enrollment and admin tokens). */
export async function loadOrCreateToken(path: string): Promise<string> {
  const token = await loadOrCreate(path, 16, () =>
    Buffer.from(randomBytes(24).toString('base64url')),
  );
  return token.toString('utf8').trim();
}

/** The fleet's ed25519 manifest signing key (PKCS#8 PEM), created on first start. */
export async function loadOrCreateManifestKey(path: string): Promise<ManifestKeyPair> {
  const pem = await loadOrCreate(path, 1, () =>
    Buffer.from(generateManifestKeyPair().privateKeyPem),
  );
  return loadManifestKeyPair(pem.toString('utf8'));
}

async function loadOrCreate(path: string, bytes: number, generate: () => Buffer): Promise<Buffer> {
  try {
    const secret = await readFile(path);
    if (secret.length < bytes) {
      throw new Error(
        `${path} holds ${secret.length} bytes, expected ${bytes}: restore it from backup, or delete it to start over (every device must then enroll again)`,
      );
    }
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const secret = generate();
  const partial = `${path}.${process.pid}.partial`;
  const file = await open(partial, 'wx', 0o600);
  try {
    await file.writeFile(secret);
    await file.sync();
  } finally {
    await file.close();
  }
  // link() fails when another process created the file first; then theirs wins and we read it.
  try {
    await link(partial, path);
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readFile(path);
  } finally {
    await unlink(partial);
  }
}

/**
 * Replaces a secret file so that a crash leaves the old or the new content, never a mix: a temp
 * file in the same folder (mode 0600), fsync, rename, fsync of the folder. Used for the versioned
 * key sets, which change on a rotation.
 */
export async function writeSecretFileAtomic(
  path: string,
  data: string | Uint8Array,
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const file = await open(temp, 'wx', 0o600);
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
  const folder = await open(dir, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/** True for the errors a read-only data dir gives (a Kubernetes Secret mount). */
export function isReadOnlyError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EROFS' || code === 'EACCES' || code === 'EPERM';
}
