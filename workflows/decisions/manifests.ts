import { MANIFEST_SCHEMA, type ModelManifest } from '../../common/manifest.js';
import { releaseBucket } from '../../common/names.js';
import type { StoredObject, UnsignedManifest } from '../../common/gpu-contracts.js';

/**
 * Turns the gpu worker's unsigned manifest (snake_case, Python's shape) into the manifest that is
 * signed and shipped (common/manifest.ts). Pure: the publishing activity and the tests use it.
 */
export interface ManifestParts {
  rolloutId: string;
  /** The variant name devices report back, e.g. "int8_static_minmax" or "teacher_fp32". */
  variant: string;
  unsigned: UnsignedManifest;
  /** The holdout bundle as stored (the unsigned manifest names it without its size). */
  holdout: StoredObject | null;
  /** The one class it is released to: its files are in that class's release bucket. */
  hardwareClasses: [string];
  version: number;
  /** ISO time after which devices refuse it. */
  expiresAt: string;
}

export function toModelManifest(parts: ManifestParts): ModelManifest {
  const u = parts.unsigned;
  const bucket = releaseBucket(parts.hardwareClasses[0]);
  if (parts.holdout && parts.holdout.sha256 !== u.holdout.sha256) {
    throw new Error(
      `holdout ${parts.holdout.name} has sha256 ${parts.holdout.sha256}, the manifest of ` +
        `${parts.variant} names ${u.holdout.sha256}: the variants were built from another student`,
    );
  }
  return {
    schema: MANIFEST_SCHEMA,
    modelId: u.model_id,
    rolloutId: parts.rolloutId,
    variant: parts.variant,
    format: { name: u.variant.format, options: formatOptions(u.variant.options) },
    version: parts.version,
    hardwareClasses: parts.hardwareClasses,
    model: { bucket, name: u.object_name, sha256: u.sha256, size: u.size_bytes },
    opset: u.opset,
    inputs: u.inputs.map((t) => ({ name: t.name, elemType: t.dtype, shape: t.shape })),
    outputs: u.outputs.map((t) => ({ name: t.name, elemType: t.dtype, shape: t.shape })),
    centralAccuracy: u.central_accuracy,
    holdout: parts.holdout
      ? {
          bucket,
          name: parts.holdout.name,
          sha256: parts.holdout.sha256,
          size: parts.holdout.size_bytes,
        }
      : null,
    createdAt: u.created_at,
    expiresAt: parts.expiresAt,
  };
}

/** Manifest options are flat scalars: lists become comma-separated, nulls are left out. */
function formatOptions(options: object): Record<string, string | number | boolean> {
  const flat: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) {
      if (value.length > 0) flat[key] = value.join(',');
    } else if (['string', 'number', 'boolean'].includes(typeof value)) {
      flat[key] = value as string | number | boolean;
    }
  }
  return flat;
}
