/**
 * Generates common/gpu-contracts.ts, the TypeScript mirror of the gpu worker's payload
 * dataclasses, from services/gpu-worker/contracts.schema.json (which `python -m
 * edgeforge_gpu.schema` writes from edgeforge_gpu/contracts.py).
 *
 *   npm run contracts:gen
 *
 * common/gpu-contracts.test.ts renders the file again in memory and fails when the committed one
 * differs, so a payload change on the Python side cannot go unnoticed here.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { format, resolveConfig } from 'prettier';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const SCHEMA_PATH = `${REPO_ROOT}services/gpu-worker/contracts.schema.json`;
export const OUTPUT_PATH = `${REPO_ROOT}common/gpu-contracts.ts`;

/** One field as contracts.schema.json describes it. */
export interface SchemaField {
  /** Compact type expression: `string | null`, `Foo[]`, `(integer | string)[]`, `map<K, V>`. */
  type: string;
  description?: string;
  required?: true;
  default?: unknown;
}

/** contracts.schema.json, as far as the generator reads it. */
export interface ContractSchema {
  activities: Record<string, { input: string | null; output: string }>;
  /** Registry keys by registry, e.g. `variant_formats: ["fp32", ...]`. */
  names: Record<string, string[]>;
  types: Record<string, Record<string, SchemaField>>;
}

const PRIMITIVES: Record<string, string> = {
  string: 'string',
  integer: 'number',
  number: 'number',
  boolean: 'boolean',
  null: 'null',
};

/** Splits `a | (b | c)[] | map<d, e>` on the top-level separator only. */
function splitTopLevel(expr: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (ch === '(' || ch === '<') depth++;
    else if (ch === ')' || ch === '>') depth--;
    else if (depth === 0 && expr.startsWith(separator, i)) {
      parts.push(expr.slice(start, i));
      start = i + separator.length;
      i += separator.length - 1;
    }
  }
  parts.push(expr.slice(start));
  return parts.map((p) => p.trim());
}

/** The TypeScript type for a schema type expression; `where` names the field for errors. */
export function tsType(expr: string, known: ReadonlySet<string>, where: string): string {
  const union = splitTopLevel(expr, ' | ');
  if (union.length > 1) return union.map((part) => tsType(part, known, where)).join(' | ');
  if (expr.endsWith('[]')) {
    const inner = expr.slice(0, -2);
    if (inner.startsWith('(') && inner.endsWith(')')) {
      return `(${tsType(inner.slice(1, -1), known, where)})[]`;
    }
    return `${tsType(inner, known, where)}[]`;
  }
  const map = /^map<(.+)>$/.exec(expr);
  if (map?.[1]) {
    const [key, value, ...rest] = splitTopLevel(map[1], ', ');
    if (!key || !value || rest.length) throw new Error(`${where}: malformed map type ${expr}`);
    return `Record<${tsType(key, known, where)}, ${tsType(value, known, where)}>`;
  }
  const primitive = PRIMITIVES[expr];
  if (primitive) return primitive;
  if (known.has(expr)) return expr;
  throw new Error(
    `${where}: type ${JSON.stringify(expr)} is neither a primitive nor a described type. ` +
      'Regenerate the schema (python -m edgeforge_gpu.schema in services/gpu-worker), ' +
      'or teach scripts/gen-gpu-contracts.ts the new type expression.',
  );
}

/** `variant_formats` -> `VariantFormat`: the union type of one registry's names. */
export function namesTypeName(registry: string): string {
  const singular = registry.endsWith('s') ? registry.slice(0, -1) : registry;
  return singular
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

/** A default as a TypeScript literal, with spaces where a long one may wrap in a comment. */
export function literal(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([k, v]) => `${k}: ${literal(v)}`);
    return entries.length ? `{ ${entries.join(', ')} }` : '{}';
  }
  return typeof value === 'string' ? `'${value}'` : String(value);
}

/** A TSDoc block from lines of text, wrapped to fit 100 columns at `indent`. */
function docComment(lines: string[], indent: string): string[] {
  const width = 100 - indent.length - 3;
  const wrapped: string[] = [];
  for (const line of lines.map((l) => l.replaceAll('*/', '*\\/'))) {
    let current = '';
    for (const word of line.split(' ')) {
      if (current && current.length + 1 + word.length > width) {
        wrapped.push(current);
        current = word;
      } else {
        current = current ? `${current} ${word}` : word;
      }
    }
    wrapped.push(current);
  }
  if (wrapped.length === 1 && wrapped[0]!.length <= width - 4) {
    return [`${indent}/** ${wrapped[0]} */`];
  }
  return [`${indent}/**`, ...wrapped.map((l) => `${indent} * ${l}`), `${indent} */`];
}

/** Renders the whole module; the result is what `npm run contracts:gen` writes. */
export async function renderGpuContracts(schema: ContractSchema): Promise<string> {
  const known = new Set(Object.keys(schema.types));
  // "What `distill_student` and `import_model` return.": which activities take or return a type.
  const roles = new Map<string, { takes: string[]; returns: string[] }>();
  const role = (type: string) => {
    const found = roles.get(type) ?? { takes: [], returns: [] };
    roles.set(type, found);
    return found;
  };
  for (const [activity, { input, output }] of Object.entries(schema.activities)) {
    if (input) role(input).takes.push(`\`${activity}\``);
    role(output).returns.push(`\`${activity}\``);
  }
  const and = (names: string[]) =>
    names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : (names[0] ?? '');
  const roleDoc = (type: string): string[] => {
    const found = roles.get(type);
    if (!found) return [];
    const { takes, returns } = found;
    const sentences = [
      takes.length ? `What ${and(takes)} ${takes.length > 1 ? 'take' : 'takes'}.` : '',
      returns.length ? `What ${and(returns)} ${returns.length > 1 ? 'return' : 'returns'}.` : '',
    ];
    return docComment([sentences.filter(Boolean).join(' ')], '');
  };

  const out: string[] = [
    '// Generated by scripts/gen-gpu-contracts.ts from services/gpu-worker/contracts.schema.json.',
    '// Do not edit: change services/gpu-worker/edgeforge_gpu/contracts.py, then run',
    '// `python -m edgeforge_gpu.schema` (in services/gpu-worker) and `npm run contracts:gen`.',
    '//',
    "// The gpu worker's payloads as plain JSON shapes with snake_case keys. A field with a default",
    '// may be left out of a request; the worker fills it in. Pure module: workflow code imports it.',
    '',
  ];

  for (const [registry, values] of Object.entries(schema.names)) {
    out.push(
      ...docComment([`A name the gpu worker's ${registry.replace(/_/g, ' ')} registry knows.`], ''),
      `export type ${namesTypeName(registry)} = ${values.map((v) => `'${v}'`).join(' | ')};`,
      '',
    );
  }

  out.push(
    ...docComment(
      [
        'The Python activities served on the `edgeforge-gpu` task queue, keyed by the names they ' +
          'are registered under (services/gpu-worker/edgeforge_gpu/activities/__init__.py).',
      ],
      '',
    ),
    'export interface GpuActivities {',
  );
  for (const [activity, { input, output }] of Object.entries(schema.activities)) {
    const where = `activity ${activity}`;
    const param = input ? `input: ${tsType(input, known, where)}` : '';
    out.push(`  ${activity}(${param}): Promise<${tsType(output, known, where)}>;`);
  }
  out.push('}', '');

  for (const [name, fields] of Object.entries(schema.types)) {
    out.push(...roleDoc(name));
    out.push(`export interface ${name} {`);
    for (const [fieldName, field] of Object.entries(fields)) {
      const doc: string[] = [];
      if (field.description) doc.push(field.description);
      if (!field.required) doc.push(`@defaultValue ${literal(field.default)}`);
      if (doc.length) out.push(...docComment(doc, '  '));
      const optional = field.required ? '' : '?';
      out.push(`  ${fieldName}${optional}: ${tsType(field.type, known, `${name}.${fieldName}`)};`);
    }
    out.push('}', '');
  }

  // Through Prettier, so the generated file passes `npm run format:check` as committed.
  const options = (await resolveConfig(OUTPUT_PATH)) ?? {};
  return format(out.join('\n'), { ...options, filepath: OUTPUT_PATH });
}

export async function readContractSchema(path: string = SCHEMA_PATH): Promise<ContractSchema> {
  return JSON.parse(await readFile(path, 'utf8')) as ContractSchema;
}

async function main(): Promise<void> {
  const text = await renderGpuContracts(await readContractSchema());
  await writeFile(OUTPUT_PATH, text);
  console.log(`wrote ${OUTPUT_PATH}`);
}

// Run as a script (tsx scripts/gen-gpu-contracts.ts), not when the test imports it.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
