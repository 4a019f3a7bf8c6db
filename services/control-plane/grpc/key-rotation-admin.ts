import type { SignedManifestKeyRotation } from '../../../common/manifest-key-rotation.js';
import { isReadOnlyError } from '../../../common/secrets.js';
import type {
  AdminServiceServer,
  CredentialKey as CredentialKeyMessage,
} from '../../../proto/gen/edgeforge/v1/admin.pb.js';
import type { ManifestKeyRotation } from '../../../proto/gen/edgeforge/v1/fleet.pb.js';
import type { CredentialKey } from '../auth/credentials.js';
import type { FleetKeys } from '../auth/fleet-keys.js';
import { FailedPreconditionError, InvalidArgumentError } from './errors.js';
import { unary, type UnaryContext } from './unary.js';

/** The longest grace RotateManifestKey takes: a year. */
export const MAX_MANIFEST_KEY_GRACE_HOURS = 24 * 365;

/** A stored rotation statement as HeartbeatResponse and RotateManifestKeyResponse carry it. */
export function toRotationMessage(rotation: SignedManifestKeyRotation): ManifestKeyRotation {
  return {
    statementJson: rotation.statementJson,
    previousKeySignature: Buffer.from(rotation.previousKeySignature),
    newKeySignature: Buffer.from(rotation.newKeySignature),
  };
}

function toCredentialKeyMessage(key: CredentialKey): CredentialKeyMessage {
  return {
    keyId: key.id,
    createdAt: new Date(key.createdAt * 1000),
    acceptedUntil: key.acceptedUntil === undefined ? undefined : new Date(key.acceptedUntil * 1000),
  };
}

/** A rotation that could not write the data dir: the operator has to make it writable. */
function readOnly(err: unknown, what: string): unknown {
  if (!isReadOnlyError(err)) return err;
  return new FailedPreconditionError(
    `cannot write the ${what} key set into the control plane's data dir ` +
      `(${(err as Error).message}): rotation needs a writable data dir; with keys mounted from a ` +
      'Kubernetes Secret, rotate on a writable copy and update the Secret (docs/security.md)',
    { cause: err },
  );
}

/** AdminService.RotateManifestKey and RotateCredentialKey: admin credential only. */
export function createKeyRotationAdmin(
  ctx: UnaryContext,
  keys: FleetKeys,
): Pick<AdminServiceServer, 'rotateManifestKey' | 'rotateCredentialKey'> {
  const service = 'edgeforge.v1.AdminService';
  return {
    rotateManifestKey: unary(ctx, service, 'RotateManifestKey', 'admin', async (request) => {
      if (request.graceHours > MAX_MANIFEST_KEY_GRACE_HOURS) {
        throw new InvalidArgumentError(
          'grace_hours',
          `is above ${MAX_MANIFEST_KEY_GRACE_HOURS} (a year)`,
        );
      }
      if (request.retirePreviousKey && request.graceHours > 0) {
        throw new InvalidArgumentError(
          'grace_hours',
          'must be 0 with retire_previous_key (a leaked key gets no grace)',
        );
      }
      const rotated = await keys
        .rotateManifestKey({
          graceHours: request.graceHours || undefined,
          retirePreviousKey: request.retirePreviousKey,
        })
        .catch((err: unknown) => {
          throw readOnly(err, 'manifest');
        });
      return {
        version: rotated.version,
        publicKey: rotated.publicKey,
        rotation: toRotationMessage(rotated.rotation),
        previousKeyValidUntil: rotated.previousKeyValidUntil,
      };
    }),

    rotateCredentialKey: unary(ctx, service, 'RotateCredentialKey', 'admin', async () => {
      const accepted = await keys.rotateCredentialKey().catch((err: unknown) => {
        throw readOnly(err, 'credential');
      });
      const newest = accepted[accepted.length - 1]!;
      return {
        keyId: newest.id,
        keys: [...accepted].reverse().map(toCredentialKeyMessage),
      };
    }),
  };
}
