import { z } from 'zod';
import { MANIFEST_SCHEMA } from '../../common/manifest.js';
import { releaseBucket } from '../../common/names.js';

/**
 * The shape of a signed manifest as the agent relies on it. Used to check, never to transform:
 * the signature covers the exact object, so callers keep the value they validated.
 */

/** What the control plane accepts as rollout id, variant and model id in reports. */
const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const SHA256 = /^[0-9a-f]{64}$/;

const ObjectRefSchema = z.looseObject({
  // A class's release bucket: the only kind a device may read (its own class's, by its NATS
  // permissions; which class the manifest is for is checked against the device's).
  bucket: z
    .string()
    .regex(
      new RegExp(`^${releaseBucket('CLASS').replace('CLASS', '[A-Za-z0-9_-]+')}$`),
      'must be a release bucket (edgeforge_release_<class>)',
    ),
  name: z.string().min(1),
  sha256: z.string().regex(SHA256, 'must be 64 lower-case hex digits'),
  size: z.number().int().nonnegative(),
});

const TensorSpecSchema = z.looseObject({
  name: z.string().min(1),
  elemType: z.string().min(1),
  shape: z.array(z.union([z.number().int().nonnegative(), z.string().min(1)])).min(1),
});

export const ModelManifestSchema = z.looseObject({
  schema: z.literal(MANIFEST_SCHEMA),
  modelId: z.string().regex(ID),
  rolloutId: z.string().regex(ID),
  variant: z.string().regex(ID),
  format: z.looseObject({ name: z.string(), options: z.record(z.string(), z.unknown()) }),
  version: z.number().int().nonnegative(),
  hardwareClasses: z.array(z.string()),
  model: ObjectRefSchema,
  opset: z.number().int(),
  inputs: z.array(TensorSpecSchema).min(1),
  outputs: z.array(TensorSpecSchema).min(1),
  centralAccuracy: z.number().min(0).max(1).nullable(),
  holdout: ObjectRefSchema.nullable(),
  createdAt: z.string(),
  expiresAt: z.string(),
});

export const SignedManifestSchema = z.object({
  manifest: ModelManifestSchema,
  signature: z.string().min(1),
});

/** "field.path: problem" of the first issue, for error messages. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
}
