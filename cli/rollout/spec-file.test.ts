import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { REPO_ROOT } from '../../services/stack/index.js';
import { EXIT } from '../exit-codes.js';
import { readSpecFile, SpecFileError } from './spec-file.js';

async function write(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-spec-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('readSpecFile', () => {
  it('reads the shipped example, with defaults filled in', async () => {
    const spec = await readSpecFile(join(REPO_ROOT, 'docs/examples/rollout-fashion-mnist.json'));
    expect(spec.rolloutId).toBe('fashion-mnist-small-cnn-1');
    expect(spec.dataset.source).toBe('fashion_mnist');
    expect(spec.manifestTtlHours).toBe(720);
  });

  it('reads YAML and generates a rollout id when there is none', async () => {
    const file = await write(
      'spec.yml',
      'dataset: {source: digits}\nsource:\n  kind: distill\n  student: {architecture: small_cnn}\n',
    );
    const spec = await readSpecFile(file);
    expect(spec.rolloutId).toMatch(/^r-\d{8}-\d{6}-[0-9a-f]{4}$/);
  });

  it('names the file and the field, lists every problem, and is a usage error', async () => {
    const file = await write(
      'bad.json',
      JSON.stringify({
        dataset: { source: 'mnist' },
        source: { kind: 'distill', student: { architecture: 'small_cnn' } },
        canaries: 0,
      }),
    );
    const err = await readSpecFile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpecFileError);
    const e = err as SpecFileError;
    expect(e.exitCode).toBe(EXIT.usage);
    expect(e.field).toBe('dataset.source');
    expect(e.message).toMatch(
      new RegExp(`^spec file ${file}: dataset\\.source: is "mnist"; expected one of fashion_mnist`),
    );
    expect(e.message).toMatch(/\n {2}canaries: must be of at least 1/);
  });

  it('says where YAML is broken', async () => {
    const file = await write('bad.yaml', 'dataset:\n  source: digits\n   oops: [\n');
    await expect(readSpecFile(file)).rejects.toThrow(
      /is not valid YAML: bad indentation .*\(3:8\)/,
    );
  });
});
