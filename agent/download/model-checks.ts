import { statfs } from 'node:fs/promises';
import { ManifestRefusedError, type ModelManifest, type ObjectRef } from '../../common/manifest.js';
import { formatSize, npzLimits } from '../holdout/npz.js';
import { findExternalData, OnnxFormatError } from '../models/onnx-external-data.js';

/**
 * What the agent checks about a model before ONNX Runtime sees it, beyond the manifest's
 * signature and the file's digest (a signed model can still be one the device must not load):
 *  - before the download, that the model and its holdout bundle fit the device: memory for what
 *    is loaded, disk for what is downloaded (requireRoom);
 *  - after it, that the ONNX file keeps all its tensors inside it (requireSelfContained).
 */

/**
 * A model may be at most this share of the device's memory. ONNX Runtime holds the weights
 * (about the file's size), prepacked copies of some of them and its arenas, and a new model is
 * brought up next to the one serving: a model of half the memory already leaves little for the
 * serving model, the holdout and the OS, so anything above it cannot run on the device. This
 * is a gate on what certainly cannot fit, not a promise that what passes does: a model that
 * takes the agent down on load is given up by the crash-loop guard (activation/).
 */
export const MODEL_MEMORY_SHARE = 0.5;

/**
 * Left free in the data dir's file system after a download: the OS, its logs and the agent's
 * state files need room, and a full disk breaks far more than a rollout. The models the new one
 * replaces are deleted only after it activates, so they are already counted as used.
 */
export const DISK_MARGIN_BYTES = 256 * 1024 * 1024;

export interface DeviceRoom {
  /** The device's memory (its profile's memoryBytes). */
  memoryBytes: number;
  /** The bytes still to download: the objects not in models/ yet, less their partial files. */
  downloadBytes: number;
  /** Free bytes for this user in the data dir's file system; undefined when unknown. */
  freeDiskBytes: number | undefined;
  /** The folder the downloads go to, for the message. */
  dataDir: string;
}

/** The largest model this device takes. */
export function modelMemoryCap(memoryBytes: number): number {
  return Math.floor(memoryBytes * MODEL_MEMORY_SHARE);
}

/** The largest holdout bundle: no bigger than it may inflate to (holdout/npz.ts). */
export function holdoutMemoryCap(memoryBytes: number): number {
  return npzLimits(memoryBytes).maxInflatedBytes;
}

/** Free bytes for an unprivileged writer in `dir`'s file system; undefined when unknown. */
export async function freeDiskBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** Throws ManifestRefusedError('too_large') when the manifest's files do not fit the device. */
export function requireRoom(manifest: ModelManifest, room: DeviceRoom): void {
  const { model, holdout } = manifest;
  const memory = formatSize(room.memoryBytes);
  const modelCap = modelMemoryCap(room.memoryBytes);
  if (model.size > modelCap) {
    throw new ManifestRefusedError(
      'too_large',
      `the model ${model.name} is ${formatSize(model.size)}; this device takes models up to ` +
        `${formatSize(modelCap)}, half of its ${memory} of memory (ONNX Runtime holds the ` +
        'weights and its arenas, next to the model it serves): compress it further, or build ' +
        'it for a class with more memory',
    );
  }
  const holdoutCap = holdoutMemoryCap(room.memoryBytes);
  if (holdout && holdout.size > holdoutCap) {
    throw new ManifestRefusedError(
      'too_large',
      `the holdout bundle ${holdout.name} is ${formatSize(holdout.size)}; this device takes ` +
        `holdout bundles up to ${formatSize(holdoutCap)} (a quarter of its ${memory} of ` +
        'memory, at most 512 MiB: it is decompressed in memory): ship fewer samples',
    );
  }
  if (room.freeDiskBytes === undefined || room.downloadBytes === 0) return;
  const usable = room.freeDiskBytes - DISK_MARGIN_BYTES;
  if (room.downloadBytes > usable) {
    throw new ManifestRefusedError(
      'too_large',
      `downloading ${describeObjects(model, holdout)} needs ${formatSize(room.downloadBytes)} ` +
        `more on disk; ${room.dataDir} has ${formatSize(room.freeDiskBytes)} free, of which ` +
        `${formatSize(DISK_MARGIN_BYTES)} stay free for the system: free disk space on the ` +
        'device, or ship a smaller model',
    );
  }
}

function describeObjects(model: ObjectRef, holdout: ObjectRef | null): string {
  const sizes = `${model.name} (${formatSize(model.size)})`;
  return holdout ? `${sizes} and ${holdout.name} (${formatSize(holdout.size)})` : sizes;
}

/** How the message tells the operator to fix a model with external data. */
export const SELF_CONTAINED_FIX =
  're-export with the weights inside the file: ' +
  'onnx.save(model, path, save_as_external_data=False)';

/**
 * Refuses an ONNX file that keeps tensors outside it ('external_data': ONNX Runtime would open
 * the path it names on the device) or that is not well-formed ONNX ('not_onnx'), before ONNX
 * Runtime reads it. `ref` names the object in messages (the file has a temporary name).
 */
export async function requireSelfContained(file: string, ref: ObjectRef): Promise<void> {
  let scan;
  try {
    scan = await findExternalData(file);
  } catch (err) {
    if (!(err instanceof OnnxFormatError)) throw err;
    throw new ManifestRefusedError(
      'not_onnx',
      `${ref.name} is not a model ONNX Runtime can load: it is not well-formed ONNX ` +
        `(${err.message})`,
    );
  }
  const first = scan.tensors[0];
  if (first === undefined) return;
  const { location, ...rest } = first.externalData;
  const at = location === undefined ? 'no location' : `location ${JSON.stringify(location)}`;
  const extra = Object.entries(rest).map(([k, v]) => `${k} ${v}`);
  const more = scan.count > 1 ? ` (and ${scan.count - 1} more tensors)` : '';
  throw new ManifestRefusedError(
    'external_data',
    `${ref.name} keeps tensor ${JSON.stringify(first.name)} (${first.where}) in an external ` +
      `file, ${[at, ...extra].join(', ')}${more}; the device loads only self-contained models, ` +
      `never a path a model names: ${SELF_CONTAINED_FIX}`,
  );
}
