import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { RolloutStatus } from '../../common/rollout.js';
import { renderResultMarkdown } from './render-markdown.js';
import { renderResultSvg } from './render-svg.js';
import { rolloutResult } from './rollout-result.js';

export interface ResultFiles {
  markdown: string;
  json: string;
  svg: string;
}

/**
 * Writes result.md, result.json (the result, plus the workflow's full status under `status`) and
 * result.svg into `dir`, each atomically (a reader never sees half a file). Returns their paths.
 */
export async function writeResultFiles(dir: string, status: RolloutStatus): Promise<ResultFiles> {
  const out = resolve(dir);
  await mkdir(out, { recursive: true });
  const result = rolloutResult(status);
  const files: ResultFiles = {
    markdown: join(out, 'result.md'),
    json: join(out, 'result.json'),
    svg: join(out, 'result.svg'),
  };
  const write = async (file: string, text: string) => {
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, file);
  };
  await write(files.markdown, renderResultMarkdown(result, 'result.svg'));
  await write(files.json, `${JSON.stringify({ ...result, status }, null, 2)}\n`);
  await write(files.svg, renderResultSvg(result));
  return files;
}
