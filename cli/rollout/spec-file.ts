import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type JsYaml from 'js-yaml';
import { parseRolloutSpec, RolloutSpecError } from '../../common/rollout-spec.js';
import type { RolloutSpec } from '../../common/rollout.js';
import { UsageError } from '../exit-codes.js';

/** A spec file that cannot run; the message names the file and the field (exit status 2). */
export class SpecFileError extends UsageError {
  override name = 'SpecFileError';
  constructor(
    readonly file: string,
    readonly field: string,
    problem: string,
    options: { cause?: unknown } = {},
  ) {
    super(`spec file ${file}: ${field ? `${field}: ` : ''}${problem}`, options);
  }
}

/** `position 123` in a JSON.parse message → `line 4, column 7`. */
function jsonLocation(text: string, message: string): string {
  if (/\(line \d+ column \d+\)/.test(message)) return '';
  const position = /at position (\d+)/.exec(message);
  if (!position) return '';
  const before = text.slice(0, Number(position[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return ` (line ${line}, column ${column})`;
}

/** The file's content as a value: YAML for .yaml / .yml, JSON otherwise. */
export async function readSpecValue(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SpecFileError(
      file,
      '',
      code === 'ENOENT'
        ? 'no such file (docs/examples/rollout-fashion-mnist.json is an example to start from)'
        : `cannot be read (${(err as Error).message})`,
      { cause: err },
    );
  }
  const ext = extname(file).toLowerCase();
  if (ext === '.yaml' || ext === '.yml') {
    let yaml: typeof JsYaml;
    try {
      yaml = await import('js-yaml');
    } catch (err) {
      throw new SpecFileError(
        file,
        '',
        'YAML needs the js-yaml package, which is not installed: run `npm ci`, or write the spec as JSON',
        { cause: err },
      );
    }
    try {
      return yaml.load(text, { filename: file });
    } catch (err) {
      throw new SpecFileError(file, '', `is not valid YAML: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const message = (err as Error).message;
    throw new SpecFileError(
      file,
      '',
      `is not valid JSON: ${message}${jsonLocation(text, message)}` +
        (ext === '.json' ? '' : ' (name the file .yaml or .yml to write YAML)'),
      { cause: err },
    );
  }
}

/**
 * Reads and checks a rollout spec file (JSON, or YAML for .yaml / .yml): defaults filled in, a
 * rollout id generated when it has none.
 * @throws SpecFileError naming the file and the first bad field, with every problem listed.
 */
export async function readSpecFile(file: string): Promise<RolloutSpec> {
  const value = await readSpecValue(file);
  try {
    return parseRolloutSpec(value);
  } catch (err) {
    if (!(err instanceof RolloutSpecError)) throw err;
    const [first, ...rest] = err.issues;
    const more = rest.map((i) => `\n  ${i.path || '(spec)'}: ${i.problem}`).join('');
    throw new SpecFileError(file, first?.path ?? '', `${first?.problem ?? err.message}${more}`, {
      cause: err,
    });
  }
}
