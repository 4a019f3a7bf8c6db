import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readJsonFile, writeFileAtomic } from './atomic-file.js';

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-atomic-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('replaces the whole file, with the mode asked for, creating folders on the way', async () => {
    const file = join(dir, 'a', 'state.json');
    await writeFileAtomic(file, '{"v": 1}');
    await writeFileAtomic(file, '{"v": 2}', 0o640);
    expect(await readJsonFile(file)).toEqual({ v: 2 });
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect(await readdir(join(dir, 'a'))).toEqual(['state.json']);
  });

  it('leaves no temp file behind when the write fails', async () => {
    const file = join(dir, 'state.json');
    await mkdir(file); // a folder in the way: the final rename fails
    await expect(writeFileAtomic(file, 'new')).rejects.toThrow(/EISDIR/);
    expect(await readdir(dir)).toEqual(['state.json']);
  });
});

describe('readJsonFile', () => {
  it('is undefined for a file that is not there, and throws on one that is not JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-atomic-'));
    expect(await readJsonFile(join(dir, 'missing.json'))).toBeUndefined();
    await writeFile(join(dir, 'torn.json'), '{"v":');
    await expect(readJsonFile(join(dir, 'torn.json'))).rejects.toThrow(SyntaxError);
    await rm(dir, { recursive: true, force: true });
  });
});
