import { open } from 'node:fs/promises';
import { EdgeforgeError } from '../../common/errors.js';

/**
 * Finds the tensors of an ONNX file that keep their data outside it (TensorProto.data_location
 * EXTERNAL, or external_data entries), without a protobuf library and without reading the file
 * into memory: a walker over the protobuf wire format that descends only into the messages that
 * can hold a tensor (onnx.proto field numbers) and seeks past everything else (raw_data, the
 * weights, above all). External data is a path that ONNX Runtime opens next to (or, with `..` or
 * an absolute path, anywhere outside) the model's folder, so a signed model could make the
 * device read /etc/shadow or identity.json into a tensor, and serve it back.
 *
 * Where a tensor can be: ModelProto.graph, .functions (FunctionProto nodes and default
 * attributes), .training_info (its graphs); GraphProto.initializer, .sparse_initializer, .node;
 * NodeProto.attribute; AttributeProto.t, .tensors, .sparse_tensor, .sparse_tensors and the
 * subgraphs of If/Loop/Scan in .g and .graphs; SparseTensorProto.values and .indices.
 */

/** The file is not a well-formed ONNX protobuf (truncated, garbage, too deeply nested). */
export class OnnxFormatError extends EdgeforgeError {
  override name = 'OnnxFormatError';
}

/**
 * Nested messages the walker follows at most. Protobuf's own parsers stop at 100 (the C++
 * default recursion limit, which ONNX Runtime keeps), so no deeper file loads anyway.
 */
export const MAX_MESSAGE_DEPTH = 100;

/** External tensors reported at most; the count covers all of them. */
const MAX_REPORTED = 16;
/** Characters of a name or a location kept for the report. */
const MAX_STRING_BYTES = 512;
/** Bytes read from the file at a time. */
const CHUNK_BYTES = 64 * 1024;

/** TensorProto.DataLocation.EXTERNAL. */
const EXTERNAL = 1;

export interface ExternalTensor {
  /** The tensor's name, '' when it has none (a Constant's value often has none). */
  name: string;
  /** Where it sits, e.g. `graph "main" > node "if_1" (If) > attribute "then_branch" > ...`. */
  where: string;
  /** Its external_data entries (location, offset, length, checksum), as written. */
  externalData: Record<string, string>;
}

export interface ExternalDataScan {
  /** The first few tensors with external data, in file order. */
  tensors: ExternalTensor[];
  /** How many there are in all. */
  count: number;
}

type Kind =
  | 'model'
  | 'training'
  | 'graph'
  | 'node'
  | 'attribute'
  | 'function'
  | 'sparse'
  | 'tensor'
  | 'entry';

const PROTO_NAMES: Record<Kind, string> = {
  model: 'ModelProto',
  training: 'TrainingInfoProto',
  graph: 'GraphProto',
  node: 'NodeProto',
  attribute: 'AttributeProto',
  function: 'FunctionProto',
  sparse: 'SparseTensorProto',
  tensor: 'TensorProto',
  entry: 'StringStringEntryProto',
};

/** The message fields followed, per message: field number → [kind, field name]. */
const MESSAGES: Record<Kind, Record<number, [Kind, string]>> = {
  model: {
    7: ['graph', 'graph'],
    20: ['training', 'training_info'],
    25: ['function', 'functions'],
  },
  training: { 1: ['graph', 'initialization'], 2: ['graph', 'algorithm'] },
  graph: {
    1: ['node', 'node'],
    5: ['tensor', 'initializer'],
    15: ['sparse', 'sparse_initializer'],
  },
  node: { 5: ['attribute', 'attribute'] },
  attribute: {
    5: ['tensor', 't'],
    6: ['graph', 'g'],
    10: ['tensor', 'tensors'],
    11: ['graph', 'graphs'],
    22: ['sparse', 'sparse_tensor'],
    23: ['sparse', 'sparse_tensors'],
  },
  function: { 7: ['node', 'node'], 11: ['attribute', 'attribute_proto'] },
  sparse: { 1: ['tensor', 'values'], 2: ['tensor', 'indices'] },
  tensor: { 13: ['entry', 'external_data'] },
  entry: {},
};

/** The string fields read, for the report: field number → what it is. */
const STRINGS: Record<Kind, Record<number, 'name' | 'opType' | 'key' | 'value'>> = {
  model: {},
  training: {},
  graph: { 2: 'name' },
  node: { 3: 'name', 4: 'opType' },
  attribute: { 1: 'name' },
  function: { 1: 'name' },
  sparse: {},
  tensor: { 8: 'name' },
  entry: { 1: 'key', 2: 'value' },
};

const DATA_LOCATION_FIELD = 14;

interface Frame {
  kind: Kind;
  /** The field of the parent this message is in (`initializer`, `then_branch`'s `g`, ...). */
  field: string;
  /** Its index among the parent's messages in that field. */
  index: number;
  /** Offset of the byte after the message. */
  end: number;
  parent: Frame | undefined;
  strings: Partial<Record<'name' | 'opType' | 'key' | 'value', string>>;
  /** Messages seen so far per field number, for the indexes of the children. */
  seen: Map<number, number>;
  /** A tensor: data_location says EXTERNAL. */
  external: boolean;
  /** A tensor: its external_data entries. */
  entries: [string, string][];
}

/** The bytes of the file, read a chunk at a time; a Buffer is its own window. */
class Window {
  #bytes: Uint8Array;
  #start = 0;

  constructor(
    readonly size: number,
    readonly read: ((position: number, length: number) => Promise<Uint8Array>) | undefined,
    bytes: Uint8Array = new Uint8Array(0),
  ) {
    this.#bytes = bytes;
  }

  has(position: number, length: number): boolean {
    return position >= this.#start && position + length <= this.#start + this.#bytes.length;
  }

  async load(position: number, length: number): Promise<void> {
    if (this.read === undefined) return;
    const want = Math.min(Math.max(length, CHUNK_BYTES), this.size - position);
    this.#bytes = await this.read(position, want);
    this.#start = position;
    if (this.#bytes.length < want) {
      throw new OnnxFormatError(
        `the file ended at byte ${position + this.#bytes.length} while read`,
      );
    }
  }

  byte(position: number): number {
    return this.#bytes[position - this.#start]!;
  }

  text(position: number, length: number): string {
    const at = position - this.#start;
    return Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset + at, length).toString('utf8');
  }
}

/** Scans an ONNX file (a path) or its bytes; throws OnnxFormatError when it is malformed. */
export async function findExternalData(source: string | Uint8Array): Promise<ExternalDataScan> {
  if (typeof source !== 'string') return scan(new Window(source.length, undefined, source));
  const handle = await open(source, 'r');
  try {
    const { size } = await handle.stat();
    const read = async (position: number, length: number) => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      return buffer.subarray(0, bytesRead);
    };
    return await scan(new Window(size, read));
  } finally {
    await handle.close();
  }
}

async function scan(window: Window): Promise<ExternalDataScan> {
  const found: Frame[] = [];
  let count = 0;
  const root = frame('model', 'model', 0, window.size, undefined);
  const stack: Frame[] = [root];
  let position = 0;

  const malformed = (at: number, problem: string) =>
    new OnnxFormatError(`at byte ${at}: ${problem}`);

  /**
   * Whether the bytes a varint at `position` may take (up to `end`) are in the window; when not,
   * `fill` reads them. Most fields are, so most steps of the walk never wait.
   */
  const ready = (end: number) => window.has(position, Math.min(10, end - position));
  const fill = (end: number) => window.load(position, Math.min(10, end - position));

  /** Reads a varint that must end before `end`, once filled; advances past it. */
  const varint = (end: number, what: string): number => {
    const start = position;
    const available = Math.min(10, end - position);
    let value = 0;
    for (let i = 0; i < available; i++) {
      const byte = window.byte(position + i);
      value += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) {
        position += i + 1;
        return value;
      }
    }
    throw malformed(
      start,
      available === 10
        ? `${what} is a varint of more than 10 bytes`
        : `${what} runs past the end of its message: the file is truncated`,
    );
  };

  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (position === top.end) {
      stack.pop();
      if (top.kind === 'tensor' && (top.external || top.entries.length > 0)) {
        count++;
        if (found.length < MAX_REPORTED) found.push(top);
      }
      if (top.kind === 'entry' && top.parent) {
        top.parent.entries.push([top.strings.key ?? '', top.strings.value ?? '']);
      }
      continue;
    }
    const at = position;
    const proto = PROTO_NAMES[top.kind];
    if (!ready(top.end)) await fill(top.end);
    const key = varint(top.end, `a field key in ${proto}`);
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field === 0 || field > 0x1fffffff) {
      throw malformed(at, `${proto} has a field number ${field}, which protobuf does not allow`);
    }
    const child = MESSAGES[top.kind][field];
    const string = STRINGS[top.kind][field];
    if ((child || string) && wireType !== 2) {
      const name = child ? `${child[1]} (a message)` : `${string} (a string)`;
      throw malformed(at, `${proto} field ${field}, ${name}, has wire type ${wireType}, not 2`);
    }
    const isDataLocation = top.kind === 'tensor' && field === DATA_LOCATION_FIELD;
    if (isDataLocation && wireType !== 0) {
      throw malformed(at, `TensorProto field 14, data_location, has wire type ${wireType}, not 0`);
    }
    switch (wireType) {
      case 0: {
        if (!ready(top.end)) await fill(top.end);
        const value = varint(top.end, `${proto} field ${field}`);
        if (isDataLocation && value === EXTERNAL) top.external = true;
        break;
      }
      case 1:
      case 5: {
        const width = wireType === 1 ? 8 : 4;
        if (position + width > top.end) {
          throw malformed(at, `${proto} field ${field} runs past the end of its message`);
        }
        position += width;
        break;
      }
      case 2: {
        if (!ready(top.end)) await fill(top.end);
        const length = varint(top.end, `the length of ${proto} field ${field}`);
        if (length > top.end - position) {
          throw malformed(
            at,
            `${proto} field ${field} says it holds ${length} bytes, more than the ` +
              `${top.end - position} left in its message: the file is truncated or not ONNX`,
          );
        }
        if (child) {
          if (stack.length >= MAX_MESSAGE_DEPTH) {
            throw malformed(
              at,
              `messages nested more than ${MAX_MESSAGE_DEPTH} deep (subgraphs in subgraphs); ` +
                'protobuf, and so ONNX Runtime, reads no deeper',
            );
          }
          const index = top.seen.get(field) ?? 0;
          top.seen.set(field, index + 1);
          stack.push(frame(child[0], child[1], index, position + length, top));
          break;
        }
        if (string) {
          const kept = Math.min(length, MAX_STRING_BYTES);
          if (!window.has(position, kept)) await window.load(position, kept);
          top.strings[string] = window.text(position, kept) + (kept < length ? '…' : '');
        }
        position += length;
        break;
      }
      case 3:
      case 4:
        throw malformed(at, `${proto} field ${field} is a protobuf group, which ONNX never uses`);
      default:
        throw malformed(at, `${proto} field ${field} has wire type ${wireType}, which is invalid`);
    }
  }
  if (!root.seen.has(7)) {
    throw new OnnxFormatError('it has no graph (ModelProto field 7): it is not an ONNX model');
  }
  return { tensors: found.map(describe), count };
}

function frame(
  kind: Kind,
  field: string,
  index: number,
  end: number,
  parent: Frame | undefined,
): Frame {
  return {
    kind,
    field,
    index,
    end,
    parent,
    strings: {},
    seen: new Map(),
    external: false,
    entries: [],
  };
}

/** Names are only known once their message is read, so a tensor is described at the end. */
function describe(tensor: Frame): ExternalTensor {
  const path: string[] = [];
  for (let f = tensor.parent; f && f.kind !== 'model'; f = f.parent) path.unshift(label(f));
  path.push(label(tensor));
  return {
    name: tensor.strings.name ?? '',
    where: path.join(' > '),
    externalData: Object.fromEntries(tensor.entries),
  };
}

function label(f: Frame): string {
  const name = f.strings.name ? ` ${JSON.stringify(f.strings.name)}` : ` #${f.index}`;
  switch (f.kind) {
    case 'node':
      return `node${name}${f.strings.opType ? ` (${f.strings.opType})` : ''}`;
    case 'attribute':
      return `attribute${name}`;
    case 'graph':
      // A subgraph's attribute (then_branch, body) is named before it.
      return ['graph', 'g', 'graphs'].includes(f.field) ? `graph${name}` : `${f.field}${name}`;
    case 'function':
      return `function${name}`;
    case 'training':
      return `training_info #${f.index}`;
    case 'sparse':
      return `${f.field} #${f.index}`;
    default:
      // An attribute's tensor (a Constant's value) is its `t` or one of its `tensors`.
      return `${f.field === 't' || f.field === 'tensors' ? 'tensor' : f.field}${name}`;
  }
}
