import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MissingPrerequisiteError } from '../../common/errors.js';

/** Where the bootstrap (scripts/bootstrap.sh) put each program edgeforge runs. */
export interface Toolchain {
  natsServer: string;
  temporal: string;
  /** The gpu worker's virtual environment's interpreter. */
  python: string;
  prometheus: string;
  promtool: string;
  fashionMnistDir: string;
  cache: string;
}

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Reads `.edgeforge/toolchain.json`, which the bootstrap writes. */
export function loadToolchain(repoRoot: string = REPO_ROOT): Toolchain {
  const file = `${repoRoot}/.edgeforge/toolchain.json`;
  if (!existsSync(file)) {
    throw new MissingPrerequisiteError(
      `${file} is missing: the tools edgeforge runs are not installed yet. Run \`npm run bootstrap\`.`,
    );
  }
  const toolchain = JSON.parse(readFileSync(file, 'utf8')) as Toolchain;
  for (const [tool, path] of Object.entries(toolchain) as [string, string][]) {
    if (!path || !existsSync(path)) {
      throw new MissingPrerequisiteError(
        `${tool} is not at ${JSON.stringify(path)} any more. Run \`npm run bootstrap\` to reinstall it.`,
      );
    }
  }
  return toolchain;
}
