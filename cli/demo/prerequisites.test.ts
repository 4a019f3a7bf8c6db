import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CliError, EXIT } from '../exit-codes.js';
import { fashionMnistDir, requireFashionMnist } from './prerequisites.js';

describe('demo prerequisites', () => {
  it('a missing Fashion-MNIST names the file, the Debian package and `npm run bootstrap` (exit 5)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-fmnist-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const err = (() => {
      try {
        requireFashionMnist(dir);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.prerequisite);
    expect((err as CliError).message).toMatch(
      /train-images-idx3-ubyte\.gz is missing.*dataset-fashion-mnist.*npm run bootstrap.*--quick/s,
    );
    await writeFile(join(dir, 'train-images-idx3-ubyte.gz'), '');
    await writeFile(join(dir, 'train-labels-idx1-ubyte.gz'), '');
    expect(() => requireFashionMnist(dir)).not.toThrow();
  });

  it("reads the data set's folder from the bootstrap's toolchain file", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-toolchain-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'toolchain.json');
    expect(fashionMnistDir(file)).toBe('/usr/share/datasets/fashion-mnist');
    await writeFile(file, JSON.stringify({ fashionMnistDir: '/data/fmnist' }));
    expect(fashionMnistDir(file)).toBe('/data/fmnist');
  });
});
