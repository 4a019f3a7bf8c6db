import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  OUTPUT_PATH,
  readContractSchema,
  renderGpuContracts,
  tsType,
} from '../scripts/gen-gpu-contracts.js';
import { VARIANTS } from './variants.js';

describe('common/gpu-contracts.ts', () => {
  it('is what the generator makes of contracts.schema.json', async () => {
    const expected = await renderGpuContracts(await readContractSchema());
    const committed = await readFile(OUTPUT_PATH, 'utf8');
    // Not toEqual on the texts: a diff of the whole file would bury the instruction.
    expect(
      committed === expected,
      'common/gpu-contracts.ts is stale (or was edited by hand): run `npm run contracts:gen`',
    ).toBe(true);
  });

  it('lists every variant format the gpu worker builds, in its order', async () => {
    const schema = await readContractSchema();
    expect([...VARIANTS]).toEqual(schema.names.variant_formats);
  });

  it('is re-exported from temporal-api.ts, all but the TensorSpec that manifest.ts names', async () => {
    const generated = await readFile(OUTPUT_PATH, 'utf8');
    const api = await readFile(new URL('./temporal-api.ts', import.meta.url), 'utf8');
    const names = [...generated.matchAll(/^export (?:interface|type) (\w+)/gm)].map((m) => m[1]);
    const reExported = /export type \{([^}]*)\} from '\.\/gpu-contracts\.js'/.exec(api)?.[1];
    const missing = names.filter(
      (name) => name !== 'TensorSpec' && !reExported?.split(/[\s,]+/).includes(name!),
    );
    expect(missing, 'add these to the re-export list in common/temporal-api.ts').toEqual([]);
  });

  it('declares one method per activity, and optional fields exactly where a default is', async () => {
    const text = await readFile(OUTPUT_PATH, 'utf8');
    const schema = await readContractSchema();
    for (const [name, { input, output }] of Object.entries(schema.activities)) {
      expect(text).toContain(`  ${name}(${input ? `input: ${input}` : ''}): Promise<${output}>;`);
    }
    expect(text).toMatch(/^ {2}formats: string\[\];$/m);
    expect(text).toMatch(/^ {2}model_id\?: string \| null;$/m);
  });
});

describe('tsType', () => {
  const known = new Set(['StoredObject']);

  it('translates the schema type expressions', () => {
    expect(tsType('StoredObject | null', known, 'x')).toBe('StoredObject | null');
    expect(tsType('(integer | string)[]', known, 'x')).toBe('(number | string)[]');
    expect(tsType('map<string, integer>', known, 'x')).toBe('Record<string, number>');
    expect(tsType('StoredObject[]', known, 'x')).toBe('StoredObject[]');
  });

  it('refuses a type the schema does not describe, naming the field', () => {
    expect(() => tsType('Mystery', known, 'Foo.bar')).toThrow(/Foo\.bar: type "Mystery"/);
  });
});
