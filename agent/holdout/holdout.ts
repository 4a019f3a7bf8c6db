import { readFile, stat } from 'node:fs/promises';
import { NpyFormatError, type NpyArray } from './npy.js';
import { formatSize, npzLimits, readNpz } from './npz.js';

/**
 * The labelled samples that ship with a model (manifest.holdout): `x` float32 NCHW, `y` int64
 * labels, and optionally `reference`, the fp32 model's int64 argmax for each sample.
 */
export interface Holdout {
  /** All samples, back to back. */
  x: Float32Array;
  /** Shape of one sample: x's shape without the leading sample axis. */
  sampleShape: number[];
  count: number;
  labels: number[];
  /** The fp32 reference model's predictions; null when the bundle has none. */
  reference: number[] | null;
}

/**
 * Reads and checks a holdout .npz; a problem names the array and what was expected. Its
 * decompression is bounded for a device with `memoryBytes` of memory (this machine's by
 * default; holdout/npz.ts says how): a bundle past that is refused with NpyFormatError.
 */
export async function loadHoldout(
  file: string,
  options: { memoryBytes?: number } = {},
): Promise<Holdout> {
  const limits = npzLimits(options.memoryBytes);
  const { size } = await stat(file);
  if (size > limits.maxInflatedBytes) {
    throw new NpyFormatError(
      `${file} is ${formatSize(size)}; a holdout bundle on this device is at most ` +
        `${formatSize(limits.maxInflatedBytes)}, decompressed: ship fewer samples`,
    );
  }
  const arrays = readNpz(await readFile(file), file, limits);
  const x = required(arrays, 'x', file);
  if (!(x.data instanceof Float32Array) || x.shape.length < 2) {
    throw new NpyFormatError(
      `${file}: x must be float32 with a sample axis first (N, C, H, W); got ${x.dtype} ` +
        `of shape (${x.shape.join(', ')})`,
    );
  }
  const count = x.shape[0] ?? 0;
  return {
    x: x.data,
    sampleShape: x.shape.slice(1),
    count,
    labels: int64Vector(required(arrays, 'y', file), 'y', count, file),
    reference: arrays.has('reference')
      ? int64Vector(required(arrays, 'reference', file), 'reference', count, file)
      : null,
  };
}

function required(arrays: Map<string, NpyArray>, name: string, file: string): NpyArray {
  const array = arrays.get(name);
  if (array === undefined) {
    throw new NpyFormatError(
      `${file} has no array "${name}" (it has ${[...arrays.keys()].join(', ') || 'none'}); ` +
        'a holdout needs x (float32 NCHW) and y (int64)',
    );
  }
  return array;
}

function int64Vector(array: NpyArray, name: string, count: number, file: string): number[] {
  if (!(array.data instanceof BigInt64Array) || array.shape.length !== 1) {
    throw new NpyFormatError(
      `${file}: ${name} must be a 1-d int64 array; got ${array.dtype} of shape (${array.shape.join(', ')})`,
    );
  }
  if (array.shape[0] !== count) {
    throw new NpyFormatError(`${file}: ${name} has ${array.shape[0]} entries for ${count} samples`);
  }
  return Array.from(array.data, Number);
}
