import type { Logger } from 'pino';
import {
  DEFAULT_MANIFEST_KEY_GRACE_HOURS,
  loadManifestKeySet,
  rotateManifestKeySet,
  syncManifestKeyPem,
  type ManifestKeySet,
} from '../../../common/manifest-key-set.js';
import type { SignedManifestKeyRotation } from '../../../common/manifest-key-rotation.js';
import { isReadOnlyError } from '../../../common/secrets.js';
import {
  loadCredentialKeys,
  rotatedCredentialKeys,
  saveCredentialKeys,
} from './credential-keys.js';
import { CredentialAuthority, type CredentialKey } from './credentials.js';

export interface ManifestKeyRotationOptions {
  /** How long devices accept the previous key; DEFAULT_MANIFEST_KEY_GRACE_HOURS when absent. */
  graceHours?: number;
  /** The previous key leaked: no grace at all. */
  retirePreviousKey?: boolean;
}

/**
 * The control plane's keys: the credential authority (HMAC key set) and the manifest signing key
 * chain, loaded from the data dir and rotated there. Rotations of one kind run one at a time.
 */
export class FleetKeys {
  #manifest: ManifestKeySet;
  #rotating: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly dataDir: string,
    readonly authority: CredentialAuthority,
    manifest: ManifestKeySet,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.#manifest = manifest;
  }

  static async open(options: {
    dataDir: string;
    credentialTtlSeconds: number;
    log: Logger;
    now?: () => number;
  }): Promise<FleetKeys> {
    const { dataDir, log } = options;
    const now = options.now ?? (() => Date.now());
    const authority = new CredentialAuthority(
      await loadCredentialKeys(dataDir),
      options.credentialTtlSeconds,
      now,
    );
    const manifest = await loadManifestKeySet(dataDir);
    if (manifest.rotations.length > 0) {
      // A crash between the two writes of a rotation leaves the pem behind: bring it up to date.
      await syncManifestKeyPem(dataDir, manifest).then(
        (rewritten) => {
          if (rewritten) log.warn({ version: manifest.version }, 'rewrote manifest-signing.pem');
        },
        (err: unknown) => {
          if (!isReadOnlyError(err)) throw err;
        },
      );
    }
    return new FleetKeys(dataDir, authority, manifest, log, now);
  }

  /** The current manifest signing key: version and raw public key. */
  get manifestKey(): { version: number; publicKey: Buffer } {
    return { version: this.#manifest.version, publicKey: this.#manifest.key.publicKeyRaw };
  }

  /** Every rotation statement so far, oldest first. */
  get manifestKeyRotations(): readonly SignedManifestKeyRotation[] {
    return this.#manifest.rotations;
  }

  /** Makes a new manifest signing key current; see rotateManifestKeySet. */
  rotateManifestKey(options: ManifestKeyRotationOptions = {}): Promise<{
    version: number;
    publicKey: Buffer;
    rotation: SignedManifestKeyRotation;
    previousKeyValidUntil: Date;
  }> {
    return this.#serially(async () => {
      const now = new Date(this.now());
      const graceMs = options.retirePreviousKey
        ? 0
        : (options.graceHours ?? DEFAULT_MANIFEST_KEY_GRACE_HOURS) * 3600_000;
      const previousKeyValidUntil = new Date(now.getTime() + graceMs);
      const { set, rotation, pemSynced } = await rotateManifestKeySet(
        this.dataDir,
        this.#manifest,
        { now, previousKeyValidUntil },
      );
      this.#manifest = set;
      if (!pemSynced) {
        this.log.warn(
          { version: set.version },
          'could not rewrite manifest-signing.pem with the new key (manifest-keys.json has it); ' +
            'an orchestrator reading the pem alone signs with the previous key until it is copied',
        );
      }
      this.log.info(
        {
          version: set.version,
          previousKeyValidUntil: previousKeyValidUntil.toISOString(),
          retiredAtOnce: Boolean(options.retirePreviousKey),
        },
        'rotated the manifest signing key',
      );
      return {
        version: set.version,
        publicKey: set.key.publicKeyRaw,
        rotation,
        previousKeyValidUntil,
      };
    });
  }

  /** Adds a new credential key that signs from now on; the older ones stay accepted for a TTL. */
  rotateCredentialKey(): Promise<readonly CredentialKey[]> {
    return this.#serially(async () => {
      const keys = rotatedCredentialKeys(
        this.authority.keys,
        this.now() / 1000,
        this.authority.credentialTtlSeconds,
      );
      await saveCredentialKeys(this.dataDir, keys);
      this.authority.useKeys(keys);
      this.log.info(
        { keyId: keys.at(-1)?.id, accepted: keys.map((k) => k.id) },
        'rotated the credential key',
      );
      return this.authority.keys;
    });
  }

  #serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#rotating.then(fn, fn);
    this.#rotating = run.catch(() => {});
    return run;
  }
}
