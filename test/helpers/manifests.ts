import { createHash } from 'node:crypto';
import { releaseBucket } from '../../common/names.js';
import { MANIFEST_SCHEMA, type ModelManifest, type ObjectRef } from '../../common/manifest.js';
import { INPUT_NAME, OUTPUT_NAME } from './onnx-models.js';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Where `bytes` would be, under `name`, in the release bucket of the class devices read. */
function objectRef(
  bytes: Uint8Array,
  hardwareClass: string,
  name = `test/${sha256(bytes)}`,
): ObjectRef {
  const bucket = releaseBucket(hardwareClass);
  return { bucket, name, sha256: sha256(bytes), size: bytes.length };
}

export interface TestManifestParts {
  /** The model file's bytes; the manifest carries their digest and size. */
  model: Uint8Array;
  /** The holdout bundle's bytes, when it ships one. */
  holdout?: Uint8Array;
  hardwareClasses: string[];
  version?: number;
  variant?: string;
  modelId?: string;
  rolloutId?: string;
  centralAccuracy?: number | null;
  /** One sample's shape (C, H, W); the batch dimension is symbolic. */
  sampleShape?: number[];
  classes?: number;
  expiresAt?: string;
}

/**
 * A manifest for a test classifier (test/helpers/onnx-models.ts): input x [N, ...sampleShape],
 * output probs [N, classes], valid for an hour unless told otherwise.
 */
export function testManifest(parts: TestManifestParts): ModelManifest {
  const sampleShape = parts.sampleShape ?? [1, 4, 4];
  return {
    schema: MANIFEST_SCHEMA,
    modelId: parts.modelId ?? 'hot-feature',
    rolloutId: parts.rolloutId ?? 'r-test',
    variant: parts.variant ?? 'fp32',
    format: { name: parts.variant ?? 'fp32', options: {} },
    version: parts.version ?? 1,
    hardwareClasses: parts.hardwareClasses,
    model: objectRef(parts.model, releaseClass(parts)),
    opset: 17,
    inputs: [{ name: INPUT_NAME, elemType: 'float32', shape: ['N', ...sampleShape] }],
    outputs: [{ name: OUTPUT_NAME, elemType: 'float32', shape: ['N', parts.classes ?? 10] }],
    centralAccuracy: parts.centralAccuracy === undefined ? 1 : parts.centralAccuracy,
    holdout: parts.holdout ? objectRef(parts.holdout, releaseClass(parts)) : null,
    createdAt: new Date().toISOString(),
    expiresAt: parts.expiresAt ?? new Date(Date.now() + 3_600_000).toISOString(),
  };
}

/** The class whose release bucket holds the files (a test manifest's first class). */
function releaseClass(parts: TestManifestParts): string {
  const [hardwareClass] = parts.hardwareClasses;
  if (!hardwareClass) throw new Error('a test manifest needs a hardware class');
  return hardwareClass;
}
