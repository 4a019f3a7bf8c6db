import { crc32, deflateRawSync } from 'node:zlib';

/** What goes into a test .npz: float32 arrays ("<f4") and int64 arrays ("<i8"). */
export type NpzArrays = Record<
  string,
  { data: Float32Array; shape: number[] } | { data: BigInt64Array; shape: number[] }
>;

/** The bytes numpy's np.save writes for an array (format 1.0, C order). */
export function npyBytes(data: Float32Array | BigInt64Array, shape: number[]): Buffer {
  const descr = data instanceof Float32Array ? '<f4' : '<i8';
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  // numpy pads the header with spaces so the data starts on a 64-byte boundary.
  const unpadded = 10 + header.length + 1;
  header = `${header}${' '.repeat((64 - (unpadded % 64)) % 64)}\n`;
  const prefix = Buffer.alloc(10);
  Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0]).copy(prefix);
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    prefix,
    Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

/**
 * A minimal zip writer: one local header per entry, then the central directory and the end
 * record, as np.savez (stored) and np.savez_compressed (deflated) produce.
 */
export function npzBytes(arrays: NpzArrays, options: { deflate?: boolean } = {}): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, { data, shape }] of Object.entries(arrays)) {
    const fileName = Buffer.from(`${name}.npy`);
    const content = npyBytes(data, shape);
    const stored = options.deflate ? deflateRawSync(content) : content;
    const method = options.deflate ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc32(content), 14);
    local.writeUInt32LE(stored.length, 18);
    local.writeUInt32LE(content.length, 22);
    local.writeUInt16LE(fileName.length, 26);
    locals.push(local, fileName, stored);

    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(method, 10);
    entry.writeUInt32LE(crc32(content), 16);
    entry.writeUInt32LE(stored.length, 20);
    entry.writeUInt32LE(content.length, 24);
    entry.writeUInt16LE(fileName.length, 28);
    entry.writeUInt32LE(offset, 42);
    central.push(entry, fileName);
    offset += local.length + fileName.length + stored.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(arrays).length, 8);
  end.writeUInt16LE(Object.keys(arrays).length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
