import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { npzBytes } from '../../test/helpers/npz.js';
import { loadHoldout } from './holdout.js';

describe('loadHoldout', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-holdout-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const write = async (arrays: Parameters<typeof npzBytes>[0]) => {
    const file = join(dir, 'holdout.npz');
    await writeFile(file, npzBytes(arrays));
    return file;
  };
  const x = { data: new Float32Array(2 * 3 * 2 * 2), shape: [2, 3, 2, 2] };
  const y = { data: new BigInt64Array([4n, 1n]), shape: [2] };

  it('gives the samples, their shape, labels and reference answers', async () => {
    const file = await write({
      x,
      y,
      reference: { data: new BigInt64Array([4n, 0n]), shape: [2] },
    });
    expect(await loadHoldout(file)).toEqual({
      x: x.data,
      sampleShape: [3, 2, 2],
      count: 2,
      labels: [4, 1],
      reference: [4, 0],
    });
  });

  it('has no reference when the bundle has none', async () => {
    expect((await loadHoldout(await write({ x, y }))).reference).toBeNull();
  });

  it('names the array that does not fit', async () => {
    await expect(loadHoldout(await write({ x }))).rejects.toThrow(
      /has no array "y" \(it has x\); a holdout needs x \(float32 NCHW\) and y \(int64\)/,
    );
    await expect(
      loadHoldout(await write({ x, y: { data: new BigInt64Array(3), shape: [3] } })),
    ).rejects.toThrow(/y has 3 entries for 2 samples/);
    await expect(
      loadHoldout(await write({ x: { data: new Float32Array(2), shape: [2] }, y })),
    ).rejects.toThrow(/x must be float32 with a sample axis first/);
  });
});
