import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { npyBytes, npzBytes } from '../../test/helpers/npz.js';
import { NpyFormatError, parseNpy } from './npy.js';
import { readNpz } from './npz.js';

/**
 * testdata/ holds what numpy 2.4 writes (zip64 entry headers included), made with
 *   x = np.arange(12, dtype=np.float32).reshape(3, 1, 2, 2) / 4
 *   y = np.array([0, 1, 2], dtype=np.int64); reference = np.array([0, 1, 1], dtype=np.int64)
 *   np.savez("savez.npz", x=x, y=y, reference=reference)
 *   np.savez_compressed("savez-compressed.npz", x=x, y=y, reference=reference)
 */
const fixture = (name: string) =>
  readFileSync(fileURLToPath(new URL(`testdata/${name}`, import.meta.url)));

describe('readNpz', () => {
  it.each(['savez.npz', 'savez-compressed.npz'])('reads what numpy wrote: %s', (name) => {
    const arrays = readNpz(fixture(name), name);
    expect([...arrays.keys()].sort()).toEqual(['reference', 'x', 'y']);
    const x = arrays.get('x')!;
    expect(x).toMatchObject({ dtype: '<f4', shape: [3, 1, 2, 2] });
    expect(Array.from(x.data as Float32Array)).toEqual(Array.from({ length: 12 }, (_, i) => i / 4));
    expect(arrays.get('y')?.data).toEqual(new BigInt64Array([0n, 1n, 2n]));
    expect(arrays.get('reference')?.data).toEqual(new BigInt64Array([0n, 1n, 1n]));
  });

  it('reads stored and deflated entries alike', () => {
    const arrays = { v: { data: new Float32Array([1.5, -2]), shape: [2] } };
    for (const deflate of [false, true]) {
      expect(readNpz(npzBytes(arrays, { deflate })).get('v')?.data).toEqual(
        new Float32Array([1.5, -2]),
      );
    }
  });

  it('refuses a damaged archive, naming the entry', () => {
    const bytes = npzBytes({ v: { data: new Float32Array([1, 2, 3]), shape: [3] } });
    const damaged = Buffer.from(bytes);
    const inData = damaged.indexOf('v.npy') + 'v.npy'.length + 100;
    damaged.writeUInt8(damaged.readUInt8(inData) ^ 0xff, inData);
    expect(() => readNpz(damaged, 'h.npz')).toThrow(/h\.npz: the zip entry v\.npy is corrupt/);
    expect(() => readNpz(Buffer.from('not a zip at all, not at all'), 'h.npz')).toThrow(
      /h\.npz is not a zip archive/,
    );
  });
});

describe('parseNpy', () => {
  /** A .npy file with this header dict and data, unpadded (numpy pads; readers must not care). */
  const npy = (header: string, data: Buffer) => {
    const text = Buffer.from(`${header}\n`, 'latin1');
    const prefix = Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0, 0, 0]);
    prefix.writeUInt16LE(text.length, 8);
    return Buffer.concat([prefix, text, data]);
  };

  it('reads a 1-d int64 array whose data numpy aligned to 64 bytes', () => {
    const bytes = npyBytes(new BigInt64Array([7n, -1n]), [2]);
    expect((bytes.indexOf('\n') + 1) % 64).toBe(0);
    expect(parseNpy(bytes)).toEqual({
      dtype: '<i8',
      shape: [2],
      data: new BigInt64Array([7n, -1n]),
    });
    expect(
      parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", Buffer.alloc(4))),
    ).toMatchObject({ shape: [], data: new Float32Array([0]) });
  });

  it('names what it cannot read', () => {
    const header = (descr: string, fortran: string, shape: string) =>
      `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': (${shape}), }`;
    expect(() => parseNpy(npy(header('>f4', 'False', '2,'), Buffer.alloc(8)), 'x')).toThrow(
      /x has dtype >f4; supported are little-endian f4, f8/,
    );
    expect(() => parseNpy(npy(header('<f4', 'True', '2,'), Buffer.alloc(8)), 'x')).toThrow(
      /x is stored in Fortran order/,
    );
    expect(() => parseNpy(npy(header('<f4', 'False', '3,'), Buffer.alloc(8)), 'x')).toThrow(
      /x should hold 12 bytes of data for shape \(3\), but has 8; the file is truncated/,
    );
    expect(() => parseNpy(npy('{}', Buffer.alloc(0)), 'x')).toThrow(
      /x has a malformed .npy header/,
    );
    expect(() => parseNpy(Buffer.from('PK\u0003\u0004 not an npy file'), 'x')).toThrow(
      NpyFormatError,
    );
  });
});
