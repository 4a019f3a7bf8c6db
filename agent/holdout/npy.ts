import { EdgeforgeError } from '../../common/errors.js';

/** An array read from a .npy file; `data` is a typed array of the file's element type. */
export interface NpyArray {
  /** numpy's dtype string, e.g. "<f4". */
  dtype: string;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;
}

export class NpyFormatError extends EdgeforgeError {
  override name = 'NpyFormatError';
}

const MAGIC = Buffer.from([0x93, ...Buffer.from('NUMPY')]);

/** Little-endian ("<") or byte-sized ("|") types; "=" is native, which numpy writes as "<" here. */
const TYPED_ARRAYS = {
  f4: Float32Array,
  f8: Float64Array,
  i4: Int32Array,
  i8: BigInt64Array,
  u1: Uint8Array,
  i1: Int8Array,
} as const;

/**
 * Parses the bytes of a .npy file (format versions 1 to 3, C order, little endian), the format
 * numpy's np.save writes: magic, version, a header length, a Python dict literal, raw data.
 * `name` only goes into error messages.
 */
export function parseNpy(bytes: Buffer, name = 'array'): NpyArray {
  if (bytes.length < 10 || !bytes.subarray(0, 6).equals(MAGIC)) {
    throw new NpyFormatError(`${name} is not a .npy array (no \\x93NUMPY magic)`);
  }
  const major = bytes[6];
  const headerLengthBytes = major === 1 ? 2 : 4;
  if (major !== 1 && major !== 2 && major !== 3) {
    throw new NpyFormatError(`${name} uses .npy format version ${major}; 1 to 3 are supported`);
  }
  const headerLength = headerLengthBytes === 2 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const dataStart = 8 + headerLengthBytes + headerLength;
  const header = bytes.subarray(8 + headerLengthBytes, dataStart).toString('latin1');

  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyFormatError(`${name} has a malformed .npy header: ${header.trim()}`);
  }
  if (fortran === 'True') {
    throw new NpyFormatError(
      `${name} is stored in Fortran order; save it with np.ascontiguousarray(...) first`,
    );
  }
  const kind = /^[<|]([a-z]\d+)$/.exec(descr)?.[1];
  const TypedArray =
    kind === undefined ? undefined : TYPED_ARRAYS[kind as keyof typeof TYPED_ARRAYS];
  if (TypedArray === undefined) {
    throw new NpyFormatError(
      `${name} has dtype ${descr}; supported are little-endian ${Object.keys(TYPED_ARRAYS).join(', ')}`,
    );
  }
  const shape = shapeText
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '')
    .map(Number);
  const count = shape.reduce((n, d) => n * d, 1);
  const byteLength = count * TypedArray.BYTES_PER_ELEMENT;
  if (bytes.length - dataStart !== byteLength) {
    throw new NpyFormatError(
      `${name} should hold ${byteLength} bytes of data for shape (${shape.join(', ')}), ` +
        `but has ${bytes.length - dataStart}; the file is truncated or corrupt`,
    );
  }
  // Copy: the data need not be aligned to its element size inside the file's buffer.
  const data = new ArrayBuffer(byteLength);
  new Uint8Array(data).set(bytes.subarray(dataStart, dataStart + byteLength));
  return { dtype: descr, shape, data: new TypedArray(data) };
}
