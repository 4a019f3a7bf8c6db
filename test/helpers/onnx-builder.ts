/**
 * ONNX models built field by field for tests of the agent's model checks (agent/models/onnx-external-data.ts):
 * tensors with or without external data, in initializers, Constant nodes, If subgraphs,
 * sparse initializers and functions. The protobuf encoding is written by hand, as in
 * onnx-models.ts; field numbers are onnx.proto's.
 */

import { bytesField, int, msg, str } from './protobuf-wire.js';

export { bytesField, int, msg, str };

export const FLOAT = 1;
export const BOOL = 9;
const ATTRIBUTE_TENSOR = 4;
const ATTRIBUTE_GRAPH = 5;
const DATA_LOCATION_EXTERNAL = 1;

export interface TensorOptions {
  name?: string;
  dims?: number[];
  values?: Float32Array;
  /** Marks the tensor's data as external: data_location EXTERNAL and these entries. */
  external?: { location: string; offset?: number; length?: number };
}

/** A TensorProto's fields (float32, raw_data), without its field key. */
export function tensor(options: TensorOptions = {}): Buffer {
  const dims = options.dims ?? [1];
  const parts = [...dims.map((d) => int(1, d)), int(2, FLOAT)];
  if (options.name !== undefined) parts.push(str(8, options.name));
  if (options.external) {
    const { location, offset, length } = options.external;
    const entry = (k: string, v: string) => msg(13, str(1, k), str(2, v));
    parts.push(entry('location', location));
    if (offset !== undefined) parts.push(entry('offset', String(offset)));
    if (length !== undefined) parts.push(entry('length', String(length)));
    parts.push(int(14, DATA_LOCATION_EXTERNAL));
  } else {
    const values = options.values ?? new Float32Array(dims.reduce((n, d) => n * d, 1));
    parts.push(bytesField(9, Buffer.from(values.buffer, values.byteOffset, values.byteLength)));
  }
  return Buffer.concat(parts);
}

function tensorType(elemType: number, shape: number[]): Buffer {
  const dims = shape.map((d) => msg(1, int(1, d)));
  return msg(1, int(1, elemType), msg(2, ...dims));
}

/** A ValueInfoProto's fields. */
export const valueInfo = (name: string, shape: number[], elemType = FLOAT) =>
  Buffer.concat([str(1, name), msg(2, tensorType(elemType, shape))]);

/** A NodeProto's fields; attributes are AttributeProto fields (see the helpers below). */
export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  ...attributes: Buffer[]
): Buffer {
  return Buffer.concat([
    ...inputs.map((i) => str(1, i)),
    ...outputs.map((o) => str(2, o)),
    str(3, name),
    str(4, opType),
    ...attributes.map((a) => msg(5, a)),
  ]);
}

/** An AttributeProto holding one tensor (`t`), as a Constant's `value`. */
export const tensorAttribute = (name: string, t: Buffer) =>
  Buffer.concat([str(1, name), msg(5, t), int(20, ATTRIBUTE_TENSOR)]);

/** An AttributeProto holding one graph (`g`), as an If's `then_branch`. */
export const graphAttribute = (name: string, g: Buffer) =>
  Buffer.concat([str(1, name), msg(6, g), int(20, ATTRIBUTE_GRAPH)]);

export interface GraphParts {
  name: string;
  nodes?: Buffer[];
  initializers?: Buffer[];
  /** SparseTensorProto fields. */
  sparseInitializers?: Buffer[];
  inputs?: Buffer[];
  outputs?: Buffer[];
}

/** A GraphProto's fields, in the order protobuf serializers write them. */
export function graph(parts: GraphParts): Buffer {
  return Buffer.concat([
    ...(parts.nodes ?? []).map((n) => msg(1, n)),
    str(2, parts.name),
    ...(parts.initializers ?? []).map((t) => msg(5, t)),
    ...(parts.inputs ?? []).map((v) => msg(11, v)),
    ...(parts.outputs ?? []).map((v) => msg(12, v)),
    ...(parts.sparseInitializers ?? []).map((s) => msg(15, s)),
  ]);
}

/** A ModelProto (opset 17) around `mainGraph`, with FunctionProto fields in `functions`. */
export function model(mainGraph: Buffer, functions: Buffer[] = []): Buffer {
  return Buffer.concat([
    int(1, 8), // ir_version
    str(2, 'edgeforge-tests'),
    msg(7, mainGraph),
    msg(8, str(1, ''), int(2, 17)),
    ...functions.map((f) => msg(25, f)),
  ]);
}

/** y = x + W: W an initializer, external when `external` is given. */
export function addInitializer(external?: TensorOptions['external']): Buffer {
  return model(
    graph({
      name: 'main',
      nodes: [node('Add', ['x', 'W'], ['y'], 'add')],
      initializers: [tensor({ name: 'W', dims: [2], values: new Float32Array([1, 2]), external })],
      inputs: [valueInfo('x', [2])],
      outputs: [valueInfo('y', [2])],
    }),
  );
}

/** y = x + c, c a Constant node's value (no name), external when `external` is given. */
export function addConstant(external?: TensorOptions['external']): Buffer {
  return model(
    graph({
      name: 'main',
      nodes: [
        node(
          'Constant',
          [],
          ['c'],
          'const_c',
          tensorAttribute(
            'value',
            tensor({ dims: [2], values: new Float32Array([3, 4]), external }),
          ),
        ),
        node('Add', ['x', 'c'], ['y'], 'add'),
      ],
      inputs: [valueInfo('x', [2])],
      outputs: [valueInfo('y', [2])],
    }),
  );
}

/**
 * y = If(cond) then Constant 1 else Constant 2, each branch a subgraph; the then branch's
 * constant is external when `external` is given.
 */
export function ifSubgraph(external?: TensorOptions['external']): Buffer {
  const branch = (name: string, value: number, ext?: TensorOptions['external']) =>
    graph({
      name,
      nodes: [
        node(
          'Constant',
          [],
          [`${name}_out`],
          `${name}_const`,
          tensorAttribute(
            'value',
            tensor({ dims: [1], values: new Float32Array([value]), external: ext }),
          ),
        ),
      ],
      outputs: [valueInfo(`${name}_out`, [1])],
    });
  return model(
    graph({
      name: 'main',
      nodes: [
        node(
          'If',
          ['cond'],
          ['y'],
          'choose',
          graphAttribute('then_branch', branch('then', 1, external)),
          graphAttribute('else_branch', branch('else', 2)),
        ),
      ],
      inputs: [valueInfo('cond', [], BOOL)],
      outputs: [valueInfo('y', [1])],
    }),
  );
}
