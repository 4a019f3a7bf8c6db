import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeforgeError } from '../../common/errors.js';
import {
  HardwareProfileError,
  validateHardwareProfile,
  type HardwareProfile,
} from '../../common/hardware/index.js';
import { writeFileAtomic } from '../storage/atomic-file.js';

/** What enrollment gave this device, kept across restarts so it never enrolls twice. */
export interface DeviceIdentity {
  deviceId: string;
  /** The name it enrolled under; enrolling again with it returns the same deviceId. */
  deviceName: string;
  /** Bearer credential for every FleetService call but Enroll. */
  credential: string;
  /** ISO 8601; absent when the control plane gave no expiry. */
  credentialExpiresAt?: string;
  hardwareClass: string;
  /**
   * Raw ed25519 key that signs model manifests, base64; pinned at enrollment, then replaced by
   * each verified key rotation (agent/heartbeat/manifest-key-pins.ts).
   */
  manifestPublicKey: string;
  /** Its version in the fleet's key chain; absent in files from before key rotation (1). */
  manifestKeyVersion?: number;
  /**
   * Keys pinned before the current one, still accepted for manifests signed before their
   * rotation until `validUntil` (at most MAX_PREVIOUS_MANIFEST_KEYS, newest first).
   */
  previousManifestKeys?: PreviousManifestKey[];
  natsUrl: string;
  /** The control plane (host:port) that issued the credential. */
  controlPlane: string;
  /** The profile the control plane last accepted; heartbeats resend the profile when it differs. */
  profile: HardwareProfile;
}

export interface PreviousManifestKey {
  version: number;
  /** Raw ed25519 public key, base64. */
  publicKey: string;
  /** ISO 8601: manifests it signed are refused after this. */
  validUntil: string;
}

export const IDENTITY_FILE = 'identity.json';

const IdentitySchema = z.object({
  deviceId: z.string().min(1),
  deviceName: z.string().min(1),
  credential: z.string().min(1),
  credentialExpiresAt: z.iso.datetime().optional(),
  hardwareClass: z.string().min(1),
  manifestPublicKey: z.base64(),
  manifestKeyVersion: z.number().int().positive().optional(),
  previousManifestKeys: z
    .array(
      z.object({
        version: z.number().int().positive(),
        publicKey: z.base64(),
        validUntil: z.iso.datetime(),
      }),
    )
    .optional(),
  natsUrl: z.string(),
  controlPlane: z.string().min(1),
  profile: z.unknown(),
});

export class IdentityFileError extends EdgeforgeError {
  override name = 'IdentityFileError';
}

/**
 * `identity.json` in the agent's data directory. Written atomically with mode 0600 (it holds the
 * credential); a file that does not parse is an error for a person to look at, never replaced.
 */
export class IdentityStore {
  readonly file: string;

  constructor(readonly dataDir: string) {
    this.file = join(dataDir, IDENTITY_FILE);
  }

  /** The stored identity, or undefined when this device has not enrolled yet. */
  async load(): Promise<DeviceIdentity | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new IdentityFileError(`cannot read ${this.file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw this.corrupt(`it is not valid JSON (${(err as Error).message})`, err);
    }
    const parsed = IdentitySchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw this.corrupt(`field "${issue?.path.join('.')}": ${issue?.message}`, parsed.error);
    }
    try {
      return { ...parsed.data, profile: validateHardwareProfile(parsed.data.profile) };
    } catch (err) {
      if (!(err instanceof HardwareProfileError)) throw err;
      throw this.corrupt(`field "profile.${err.field}": ${err.message}`, err);
    }
  }

  /** Replaces the stored identity atomically; mode 0600, since it holds the credential. */
  async save(identity: DeviceIdentity): Promise<void> {
    try {
      await writeFileAtomic(this.file, `${JSON.stringify(identity, null, 2)}\n`, 0o600);
    } catch (err) {
      throw new IdentityFileError(`cannot write ${this.file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  private corrupt(problem: string, cause: unknown): IdentityFileError {
    return new IdentityFileError(
      `${this.file} is corrupt: ${problem}. The agent will not overwrite it. Move it away or ` +
        'delete it to enroll this device again (the same device name gets the same device id)',
      { cause },
    );
  }
}
