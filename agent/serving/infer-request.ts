import { Tensor, type InferenceSession } from 'onnxruntime-node';
import { EdgeforgeError } from '../../common/errors.js';
import type { TensorSpec } from '../../common/manifest.js';

/** The request cannot be run: HTTP 400, with a message that names the problem. */
export class BadInferRequestError extends EdgeforgeError {
  override name = 'BadInferRequestError';
}

/**
 * Turns a POST /v1/infer body into feeds for the model's inputs. `inputs` is the values for a
 * single-input model, or an object of values by input name. Values are float32, either nested
 * arrays (their nesting is the shape) or one flat array (the shape is the input's, the leading
 * dimension taken from the length when it is symbolic, other symbolic dimensions 1).
 */
export function parseInferRequest(
  body: unknown,
  specs: readonly TensorSpec[],
): InferenceSession.FeedsType {
  const given = (body as { inputs?: unknown } | null)?.inputs;
  if (given === undefined) {
    throw new BadInferRequestError('the body needs "inputs": an array, or an object by input name');
  }
  let byName: Record<string, unknown>;
  if (Array.isArray(given)) {
    if (specs.length !== 1) {
      throw new BadInferRequestError(
        `the model has inputs ${specs.map((s) => s.name).join(', ')}: give "inputs" as an object by name`,
      );
    }
    byName = { [specs[0]!.name]: given };
  } else if (typeof given === 'object' && given !== null) {
    byName = given as Record<string, unknown>;
  } else {
    throw new BadInferRequestError('"inputs" must be an array or an object by input name');
  }
  const unknown = Object.keys(byName).filter((k) => !specs.some((s) => s.name === k));
  if (unknown.length > 0) {
    throw new BadInferRequestError(
      `unknown input ${unknown.join(', ')}; the model takes ${specs.map((s) => s.name).join(', ')}`,
    );
  }
  const feeds: Record<string, Tensor> = {};
  for (const spec of specs) {
    if (!(spec.name in byName)) throw new BadInferRequestError(`input ${spec.name} is missing`);
    feeds[spec.name] = toTensor(spec, byName[spec.name]);
  }
  return feeds;
}

function toTensor(spec: TensorSpec, value: unknown): Tensor {
  if (spec.elemType !== 'float32') {
    throw new BadInferRequestError(
      `input ${spec.name} is ${spec.elemType}; this endpoint feeds float32 inputs only`,
    );
  }
  if (!Array.isArray(value)) {
    throw new BadInferRequestError(`input ${spec.name} must be an array of numbers`);
  }
  const nested = value.some(Array.isArray);
  const flat = flatten(value);
  const bad = flat.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
  if (bad !== -1) {
    throw new BadInferRequestError(
      `input ${spec.name} holds ${JSON.stringify(flat[bad])} at flat index ${bad}; expected finite numbers`,
    );
  }
  const shape = nested ? nestedShape(spec, value) : flatShape(spec, flat.length);
  return new Tensor('float32', Float32Array.from(flat as number[]), shape);
}

function flatten(value: unknown[]): unknown[] {
  return value.flatMap((v) => (Array.isArray(v) ? flatten(v as unknown[]) : [v]));
}

function flatShape(spec: TensorSpec, length: number): number[] {
  const [first, ...rest] = spec.shape;
  const sample = rest.reduce<number>((n, d) => n * (typeof d === 'number' ? d : 1), 1);
  if (typeof first === 'string' && length > 0 && length % sample === 0) {
    return [length / sample, ...rest.map((d) => (typeof d === 'number' ? d : 1))];
  }
  const fixed = spec.shape.map((d) => (typeof d === 'number' ? d : 1));
  if (length === fixed.reduce((n, d) => n * d, 1)) return fixed;
  throw new BadInferRequestError(
    `input ${spec.name} has ${length} values, which do not fill shape [${spec.shape.join(', ')}]` +
      (typeof first === 'string' ? ` (a multiple of ${sample} is needed)` : ''),
  );
}

/** The shape of rectangular nested arrays, checked against the spec's fixed dimensions. */
function nestedShape(spec: TensorSpec, value: unknown[]): number[] {
  const shape: number[] = [];
  for (let level: unknown = value; Array.isArray(level); level = level[0]) shape.push(level.length);
  const rectangular = (v: unknown, depth: number): boolean =>
    depth === shape.length
      ? !Array.isArray(v)
      : Array.isArray(v) && v.length === shape[depth] && v.every((x) => rectangular(x, depth + 1));
  if (!rectangular(value, 0)) {
    throw new BadInferRequestError(`input ${spec.name} is not a rectangular nested array`);
  }
  const fits =
    shape.length === spec.shape.length &&
    spec.shape.every((d, k) => typeof d === 'string' || d === shape[k]);
  if (!fits) {
    throw new BadInferRequestError(
      `input ${spec.name} has shape [${shape.join(', ')}]; the model expects [${spec.shape.join(', ')}]`,
    );
  }
  return shape;
}
