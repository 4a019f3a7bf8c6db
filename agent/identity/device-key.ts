import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { EdgeforgeError } from '../../common/errors.js';
import { fsyncDir } from '../storage/atomic-file.js';

/**
 * The device's own ed25519 key pair: made on the agent's first start, kept in the data dir next
 * to identity.json, never sent anywhere but its public half. Enroll carries a signature with it
 * (proof of possession), so the fleet enrollment token alone cannot take over a device's name.
 */
export const DEVICE_KEY_FILE = 'device-key.pem';

/** The proof string's first line; the control plane builds the same (registry/device-key.ts). */
export const ENROLL_PROOF_CONTEXT = 'edgeforge-enroll-v1';

export class DeviceKeyFileError extends EdgeforgeError {
  override name = 'DeviceKeyFileError';
}

export interface EnrollProofFields {
  deviceName: string;
  signedAtUnixMs: number;
  enrollmentToken: string;
}

/**
 * What the device signs to enrol (fleet.proto, EnrollRequest.key_signature): its name, the time,
 * and the sha256 of the token it enrols with, one per line after the context line.
 */
export function enrollProofMessage(fields: EnrollProofFields): Buffer {
  const tokenHash = createHash('sha256').update(fields.enrollmentToken).digest('hex');
  return Buffer.from(
    `${ENROLL_PROOF_CONTEXT}\n${fields.deviceName}\n${fields.signedAtUnixMs}\n${tokenHash}\n`,
    'utf8',
  );
}

/** The EnrollRequest fields 5 to 7. */
export interface EnrollProof {
  devicePublicKey: Buffer;
  keySignature: Buffer;
  signedAtUnixMs: number;
}

export class DeviceKey {
  /** Raw 32-byte ed25519 public key, as EnrollRequest.device_public_key carries it. */
  readonly publicKeyRaw: Buffer;
  /** hex(sha256(raw public key)): what an operator compares before approving a new key. */
  readonly fingerprint: string;
  readonly #privateKey: KeyObject;

  private constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
    this.publicKeyRaw = Buffer.from(jwk.x ?? '', 'base64url');
    this.fingerprint = createHash('sha256').update(this.publicKeyRaw).digest('hex');
  }

  static generate(): DeviceKey {
    return new DeviceKey(generateKeyPairSync('ed25519').privateKey);
  }

  /** The key in a PKCS#8 PEM; throws a plain Error when it is not an ed25519 private key. */
  static fromPem(pem: string | Buffer): DeviceKey {
    const privateKey = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== 'ed25519') {
      throw new Error(`it holds an ${privateKey.asymmetricKeyType} key, not an ed25519 one`);
    }
    return new DeviceKey(privateKey);
  }

  toPem(): string {
    return this.#privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  }

  /** Signs an enrolment: a fresh time each call, so no two requests carry the same proof. */
  enrollProof(
    fields: Omit<EnrollProofFields, 'signedAtUnixMs'>,
    nowMs: number = Date.now(),
  ): EnrollProof {
    const message = enrollProofMessage({ ...fields, signedAtUnixMs: nowMs });
    return {
      devicePublicKey: Buffer.from(this.publicKeyRaw),
      keySignature: sign(null, message, this.#privateKey),
      signedAtUnixMs: nowMs,
    };
  }
}

/**
 * The device key in `dataDir`, made on first use. Created atomically and never overwritten: the
 * PEM goes to a temporary file (mode 0600, fsync) that is then hard-linked into place, which
 * fails if another process got there first (its key wins). A file that is not an ed25519 private
 * key is an error for a person, never replaced: the control plane knows the device by that key.
 */
export async function loadOrCreateDeviceKey(
  dataDir: string,
): Promise<{ key: DeviceKey; created: boolean; file: string }> {
  const file = join(dataDir, DEVICE_KEY_FILE);
  const existing = await readKey(file);
  if (existing) return { key: existing, created: false, file };
  const key = DeviceKey.generate();
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const temp = join(dataDir, `.${DEVICE_KEY_FILE}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temp, 'wx', 0o600);
    try {
      try {
        // The umask may have taken bits off, never added: set the mode outright.
        await handle.chmod(0o600);
        await handle.writeFile(key.toPem());
        await handle.sync();
      } finally {
        await handle.close();
      }
      await link(temp, file);
    } finally {
      await unlink(temp).catch(() => {});
    }
    await fsyncDir(dataDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const theirs = await readKey(file);
      if (theirs) return { key: theirs, created: false, file };
    }
    throw new DeviceKeyFileError(`cannot create ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { key, created: true, file };
}

/** The key in `file`; undefined when there is no such file. */
async function readKey(file: string): Promise<DeviceKey | undefined> {
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DeviceKeyFileError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return DeviceKey.fromPem(pem);
  } catch (err) {
    throw new DeviceKeyFileError(
      `${file} is corrupt: it is not an ed25519 private key in PEM (${(err as Error).message}). ` +
        'The agent will not replace it: the control plane knows this device by that key. ' +
        'Restore it from a backup; or move it away, and the agent makes a new key that an ' +
        'operator must approve (edgeforge fleet pending, then approve) or let in with a ' +
        'one-time token (edgeforge fleet token DEVICE_NAME)',
      { cause: err },
    );
  }
}
