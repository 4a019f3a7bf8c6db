/**
 * Tiny, real ONNX models for tests, written as protobuf bytes by a hand-rolled encoder (no onnx
 * package in Node): a linear classifier `probs = Softmax(Gemm(Flatten(x), W, b))` with input
 * x float32 [N, ...sampleShape] and output probs float32 [N, classes], opset 17. Only the
 * ModelProto fields ONNX Runtime needs are written; field numbers are those of onnx.proto.
 */
import type { NpzArrays } from './npz.js';
import { bytesField, int, msg, str } from './protobuf-wire.js';

// --- onnx.proto messages ----------------------------------------------------------------------

const FLOAT = 1;
const ATTRIBUTE_INT = 2;

function tensorType(shape: (number | string)[]): Buffer {
  const dims = shape.map((d) => msg(1, typeof d === 'number' ? int(1, d) : str(2, d)));
  // TypeProto.tensor_type { elem_type, shape { dim* } }
  return msg(1, int(1, FLOAT), msg(2, ...dims));
}

const valueInfo = (field: number, name: string, shape: (number | string)[]) =>
  msg(field, str(1, name), msg(2, tensorType(shape)));

function initializer(name: string, dims: number[], values: Float32Array): Buffer {
  const raw = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return msg(5, ...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytesField(9, raw));
}

function node(opType: string, inputs: string[], output: string, intAttrs: Record<string, number>) {
  return msg(
    1,
    ...inputs.map((i) => str(1, i)),
    str(2, output),
    str(3, `${opType.toLowerCase()}_${output}`),
    str(4, opType),
    ...Object.entries(intAttrs).map(([name, value]) =>
      msg(5, str(1, name), int(3, value), int(20, ATTRIBUTE_INT)),
    ),
  );
}

// --- models -------------------------------------------------------------------------------------

export interface ClassifierSpec {
  /** One sample's shape, e.g. [1, 4, 4] (C, H, W). */
  sampleShape: number[];
  classes: number;
  /** Row-major [features, classes]. */
  weights: Float32Array;
  bias?: Float32Array;
  /** The batch dimension: symbolic ("N") by default. */
  batch?: number | string;
}

export const INPUT_NAME = 'x';
export const OUTPUT_NAME = 'probs';

/** The ONNX bytes of a linear classifier (see the file comment). */
export function linearClassifier(spec: ClassifierSpec): Buffer {
  const features = spec.sampleShape.reduce((n, d) => n * d, 1);
  const batch = spec.batch ?? 'N';
  const graph = Buffer.concat([
    node('Flatten', [INPUT_NAME], 'flat', { axis: 1 }),
    node('Gemm', ['flat', 'W', 'B'], 'logits', {}),
    node('Softmax', ['logits'], OUTPUT_NAME, { axis: 1 }),
    str(2, 'linear_classifier'),
    initializer('W', [features, spec.classes], spec.weights),
    initializer('B', [spec.classes], spec.bias ?? new Float32Array(spec.classes)),
    valueInfo(11, INPUT_NAME, [batch, ...spec.sampleShape]),
    valueInfo(12, OUTPUT_NAME, [batch, spec.classes]),
  ]);
  return Buffer.concat([
    int(1, 8), // ir_version
    str(2, 'edgeforge-tests'),
    msg(7, graph),
    msg(8, str(1, ''), int(2, 17)), // opset_import { domain: "", version: 17 }
  ]);
}

/**
 * A classifier whose answer for a sample is the index of its hottest feature, shifted by `shift`
 * classes: shift 0 is always right on `matchingHoldout`, any other shift always wrong. `scale`
 * changes the weights (and so the file's digest) without changing the answers.
 */
export function hotFeatureClassifier(
  options: { sampleShape?: number[]; classes?: number; shift?: number; scale?: number } = {},
): Buffer {
  const sampleShape = options.sampleShape ?? [1, 4, 4];
  const classes = options.classes ?? 10;
  const features = sampleShape.reduce((n, d) => n * d, 1);
  const weights = new Float32Array(features * classes);
  for (let f = 0; f < Math.min(features, classes); f++) {
    weights[f * classes + ((f + (options.shift ?? 0)) % classes)] = options.scale ?? 4;
  }
  return linearClassifier({ sampleShape, classes, weights });
}

/**
 * Holdout arrays for hotFeatureClassifier: sample i is all zeros but a 1 at feature i % classes,
 * labelled i % classes; `reference` (the fp32 model's answers) equals the labels.
 */
export function matchingHoldout(
  options: { samples?: number; sampleShape?: number[]; classes?: number } = {},
): NpzArrays {
  const samples = options.samples ?? 20;
  const sampleShape = options.sampleShape ?? [1, 4, 4];
  const classes = options.classes ?? 10;
  const features = sampleShape.reduce((n, d) => n * d, 1);
  const x = new Float32Array(samples * features);
  const y = new BigInt64Array(samples);
  for (let i = 0; i < samples; i++) {
    const label = i % Math.min(classes, features);
    x[i * features + label] = 1;
    y[i] = BigInt(label);
  }
  return {
    x: { data: x, shape: [samples, ...sampleShape] },
    y: { data: y, shape: [samples] },
    reference: { data: y, shape: [samples] },
  };
}

/** Bytes that are certainly not an ONNX model. */
export const NOT_ONNX = Buffer.from('this is a text file, not an ONNX model\n');
