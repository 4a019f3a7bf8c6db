import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, EXIT } from '../exit-codes.js';

const DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';
const FILES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'];

/** Where the bootstrap recorded Fashion-MNIST (`.edgeforge/toolchain.json`), or Debian's place. */
export function fashionMnistDir(toolchainFile: string): string {
  if (!existsSync(toolchainFile)) return DEFAULT_DIR;
  try {
    const recorded = (
      JSON.parse(readFileSync(toolchainFile, 'utf8')) as { fashionMnistDir?: string }
    ).fashionMnistDir;
    return recorded || DEFAULT_DIR;
  } catch {
    return DEFAULT_DIR;
  }
}

/**
 * Fashion-MNIST comes from a Debian package the bootstrap installs: say so, and what else to do,
 * before anything starts (exit 5).
 */
export function requireFashionMnist(dir: string): void {
  const missing = FILES.find((f) => !existsSync(join(dir, f)));
  if (missing === undefined) return;
  throw new CliError(
    `the Fashion-MNIST data set is not installed (${join(dir, missing)} is missing): it comes ` +
      'from the Debian package dataset-fashion-mnist, which `npm run bootstrap` installs ' +
      '(or `sudo apt-get install dataset-fashion-mnist`). `edgeforge demo --quick` runs on a ' +
      'built-in data set instead.',
    EXIT.prerequisite,
  );
}
