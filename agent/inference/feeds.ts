import { Tensor, type InferenceSession } from 'onnxruntime-node';
import { EdgeforgeError } from '../../common/errors.js';
import type { TensorSpec } from '../../common/manifest.js';
import type { Holdout } from '../holdout/holdout.js';

export class InputSpecError extends EdgeforgeError {
  override name = 'InputSpecError';
}

/** The one element type the agent feeds; fp16 and quantized variants keep float32 I/O. */
const FEEDABLE = 'float32';

/** A spec's shape for one sample: batch 1, every symbolic dimension 1. */
export function concreteShape(spec: TensorSpec): number[] {
  return spec.shape.map((d) => (typeof d === 'number' ? d : 1));
}

/** Random float32 inputs in [0, 1) for every input of the manifest, batch 1. */
export function randomFeeds(inputs: readonly TensorSpec[]): InferenceSession.FeedsType {
  const feeds: Record<string, Tensor> = {};
  for (const spec of inputs) {
    requireFeedable(spec);
    const shape = concreteShape(spec);
    const data = Float32Array.from({ length: shape.reduce((n, d) => n * d, 1) }, Math.random);
    feeds[spec.name] = new Tensor('float32', data, shape);
  }
  return feeds;
}

/** Feeds holdout sample `i` (batch 1) to the model's single input. */
export function holdoutFeeds(
  holdout: Holdout,
  i: number,
  inputs: readonly TensorSpec[],
): InferenceSession.FeedsType {
  const spec = holdoutInput(holdout, inputs);
  const size = holdout.sampleShape.reduce((n, d) => n * d, 1);
  const sample = holdout.x.subarray(i * size, (i + 1) * size);
  return { [spec.name]: new Tensor('float32', sample, [1, ...holdout.sampleShape]) };
}

/**
 * The input holdout samples go to; throws when they do not fit it, naming both shapes, so a
 * bundle built for another model is caught before any run.
 */
export function holdoutInput(holdout: Holdout, inputs: readonly TensorSpec[]): TensorSpec {
  const spec = inputs[0];
  if (inputs.length !== 1 || spec === undefined) {
    throw new InputSpecError(
      `the model has ${inputs.length} inputs; a holdout bundle can only feed a single-input model`,
    );
  }
  requireFeedable(spec);
  const dims = spec.shape.slice(1);
  const fits =
    dims.length === holdout.sampleShape.length &&
    dims.every((d, k) => typeof d === 'string' || d === holdout.sampleShape[k]);
  if (!fits) {
    throw new InputSpecError(
      `holdout samples have shape (${holdout.sampleShape.join(', ')}) but input ${spec.name} ` +
        `expects [${spec.shape.join(', ')}]: the bundle is not for this model`,
    );
  }
  return spec;
}

function requireFeedable(spec: TensorSpec): void {
  if (spec.elemType !== FEEDABLE) {
    throw new InputSpecError(
      `input ${spec.name} is ${spec.elemType}; the agent feeds ${FEEDABLE} inputs only`,
    );
  }
}

/** Index of the largest of `length` values from `start`; the top-1 class of one sample. */
export function argmax(data: ArrayLike<number>, start: number, length: number): number {
  let best = 0;
  for (let k = 1; k < length; k++) if (data[start + k]! > data[start + best]!) best = k;
  return best;
}
