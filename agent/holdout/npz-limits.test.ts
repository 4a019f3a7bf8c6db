import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { npzBytes, type NpzArrays } from '../../test/helpers/npz.js';
import { matchingHoldout } from '../../test/helpers/onnx-models.js';
import { loadHoldout } from './holdout.js';
import { NpyFormatError } from './npy.js';
import { inflateBudget, NPZ_MAX_MEMBERS, npzLimits, readNpz } from './npz.js';

const MiB = 1024 * 1024;

/** x: `samples` samples of zeros, float32 [samples, 1, 4, 4] (64 bytes each), and y. */
function zeros(samples: number): NpzArrays {
  return {
    x: { data: new Float32Array(samples * 16), shape: [samples, 1, 4, 4] },
    y: { data: new BigInt64Array(samples), shape: [samples] },
  };
}

/** Sets every "uncompressed size" an archive's headers declare to `size`. */
function declareSizes(bytes: Buffer, size: number): Buffer {
  const copy = Buffer.from(bytes);
  for (let at = 0; at + 4 <= copy.length; at++) {
    const signature = copy.readUInt32LE(at);
    if (signature === 0x04034b50) copy.writeUInt32LE(size, at + 22);
    if (signature === 0x02014b50) copy.writeUInt32LE(size, at + 24);
  }
  return copy;
}

describe('bounded holdout decompression', () => {
  it('refuses a zip bomb: a few KB that inflate past the cap, before inflating them', () => {
    // 32 MiB of zero samples, plus their labels: deflate makes that about 40 KB.
    const bomb = npzBytes(zeros(512 * 1024), { deflate: true });
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(inflateBudget(bomb.length, npzLimits())).toBe(8 * MiB);
    expect(() => readNpz(bomb, 'bomb.npz')).toThrow(NpyFormatError);
    expect(() => readNpz(bomb, 'bomb.npz')).toThrow(
      /^bomb\.npz: the zip entry x\.npy inflates to 32\.0 MiB, which takes its members past the 8\.0 MiB this [\d.]+ KiB bundle may inflate to \(what any bundle may, whatever its ratio; beyond that 64x its size\): a zip bomb, or a holdout too big for the device; ship fewer samples$/,
    );
  });

  it('stops inflating where the header said the member ends, when the header lies', () => {
    const bomb = declareSizes(npzBytes(zeros(512 * 1024), { deflate: true }), 1000);
    expect(() => readNpz(bomb, 'liar.npz')).toThrow(
      /^liar\.npz: the zip entry x\.npy inflates past the 1000 bytes its header declares; stopped there \(a corrupt archive or a zip bomb\)$/,
    );
  });

  it('counts every member against the budget: many members each under it still fail', () => {
    // Each member inflates to 3 MiB; three of them pass 8 MiB.
    const arrays: NpzArrays = {};
    for (const name of ['a', 'b', 'c']) {
      arrays[name] = { data: new Float32Array(0.75 * MiB), shape: [0.75 * MiB] };
    }
    expect(() => readNpz(npzBytes(arrays, { deflate: true }), 'many.npz')).toThrow(
      /many\.npz: the zip entry c\.npy inflates to 3\.0 MiB, which takes its members past the 8\.0 MiB/,
    );
  });

  it("caps what even an incompressible bundle inflates to by the device's memory", () => {
    // A quarter of 16 MiB: 4 MiB; the stored (not deflated) 6 MiB bundle is over it.
    const limits = npzLimits(16 * MiB);
    expect(limits.maxInflatedBytes).toBe(4 * MiB);
    const stored = npzBytes(zeros((6 * MiB) / 64));
    expect(() => readNpz(stored, 'big.npz', limits)).toThrow(
      /big\.npz: the zip entry x\.npy inflates to 6\.0 MiB, which takes its members past the 4\.0 MiB this 6\.8 MiB bundle may inflate to \(the most any holdout may on this device: 25% of its memory, at most 512\.0 MiB\)/,
    );
    expect(npzLimits(64 * 1024 * MiB).maxInflatedBytes).toBe(512 * MiB);
  });

  it('refuses an archive with more members than a holdout has', () => {
    const arrays: NpzArrays = {};
    for (let i = 0; i <= NPZ_MAX_MEMBERS; i++) {
      arrays[`a${i}`] = { data: new Float32Array(1), shape: [1] };
    }
    expect(() => readNpz(npzBytes(arrays), 'members.npz')).toThrow(
      /^members\.npz has 65 members; a holdout bundle has at most 64 \(x, y, reference\)$/,
    );
  });

  it('refuses a member that is not deflate data, naming it', () => {
    const bytes = npzBytes({ v: { data: new Float32Array(64), shape: [64] } }, { deflate: true });
    const broken = Buffer.from(bytes);
    broken.writeUInt8(0xff, broken.indexOf('v.npy') + 'v.npy'.length);
    expect(() => readNpz(broken, 'b.npz')).toThrow(
      /b\.npz: the zip entry v\.npy cannot be inflated/,
    );
  });

  it('still reads real holdouts, compressed or not', () => {
    const fixture = readFileSync(
      fileURLToPath(new URL('testdata/savez-compressed.npz', import.meta.url)),
    );
    expect([...readNpz(fixture, 'f', npzLimits(64 * MiB)).keys()].sort()).toEqual([
      'reference',
      'x',
      'y',
    ]);
    // A very sparse bundle deflates far past 64x; under the 8 MiB floor it is still read.
    const sparse = npzBytes(zeros(64 * 1024), { deflate: true });
    expect((4 * MiB) / sparse.length).toBeGreaterThan(64);
    expect(readNpz(sparse, 's').get('x')?.shape).toEqual([64 * 1024, 1, 4, 4]);
    expect(readNpz(npzBytes(matchingHoldout(), { deflate: true })).size).toBe(3);
  });
});

describe('loadHoldout', () => {
  it('refuses a bundle too big for the device before reading it, and a bomb when reading', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-holdout-limits-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const big = join(dir, 'big.npz');
    await writeFile(big, npzBytes(zeros((3 * MiB) / 64)));
    await expect(loadHoldout(big, { memoryBytes: 8 * MiB })).rejects.toThrow(
      /big\.npz is 3\.4 MiB; a holdout bundle on this device is at most 2\.0 MiB, decompressed: ship fewer samples$/,
    );
    const bomb = join(dir, 'bomb.npz');
    await writeFile(bomb, npzBytes(zeros(512 * 1024), { deflate: true }));
    await expect(loadHoldout(bomb)).rejects.toThrow(/bomb\.npz: the zip entry x\.npy inflates/);
    const fine = join(dir, 'fine.npz');
    await writeFile(fine, npzBytes(matchingHoldout(), { deflate: true }));
    expect((await loadHoldout(fine, { memoryBytes: 8 * MiB })).count).toBe(20);
  });
});
