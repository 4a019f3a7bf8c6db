/**
 * The deployment files (deploy/docker, deploy/compose, deploy/k8s) checked against the code. No
 * Docker engine or cluster runs here, so this is what keeps them honest: names are read from the
 * sources (environment variables, data-dir files, NATS buckets, entry points), so a rename in the
 * code fails here, and the health probes run against the real services of the test stack.
 */
import { execFile, spawnSync } from 'node:child_process';
import { CREDENTIAL_KEY_FILE } from '../../services/control-plane/auth/credential-keys.js';
import { MANIFEST_KEY_PEM_FILE } from '../../common/manifest-key-set.js';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative, resolve } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EdgeAgent } from '../../agent/index.js';
import { createLogger } from '../../common/logger.js';
import { loadNatsReplicas } from '../../common/config.js';
import { parseNatsUrl, redactUrl } from '../../common/nats.js';
import {
  generateNatsServerSecrets,
  loadToolchain,
  natsServerEnvironment,
  REPO_ROOT,
} from '../../services/stack/index.js';
import { newCalloutIssuer } from '../../scripts/nats-callout-key.js';
import { issuerKeyPair } from '../../services/control-plane/nats-auth/auth-callout.js';
import { ENROLLMENT_TOKEN, startTestControlPlane } from '../helpers/control-plane.js';
import { testStack } from '../helpers/stack.js';

// ---------------------------------------------------------------------------------------------
// Where things are

const ROOT = resolve(REPO_ROOT);
const COMPOSE_DIR = join(ROOT, 'deploy/compose');
const K8S_BASE = join(ROOT, 'deploy/k8s/base');
const K8S_PRODUCTION = join(ROOT, 'deploy/k8s/overlays/production');
const NODE_DOCKERFILE = join(ROOT, 'deploy/docker/node.Dockerfile');
const GPU_DOCKERFILE = join(ROOT, 'deploy/docker/gpu-worker.Dockerfile');
/** Our images; every other image is a third-party server whose variables we don't own. */
const NODE_IMAGE = 'edgeforge/edgeforge';
const GPU_IMAGE = 'edgeforge/gpu-worker';
/** Where the node image keeps the repository (its WORKDIR, with the repo's own layout). */
const APP = '/app';
/** Files someone else adds later (Prometheus and Grafana config): checked once they exist. */
const LATER = ['deploy/prometheus', 'deploy/grafana'];

// ---------------------------------------------------------------------------------------------
// Small helpers

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Json => (isObj(v) ? v : {});
const objs = (v: unknown): Json[] => (Array.isArray(v) ? v.filter(isObj) : []);
/** A scalar as text ('' for nothing), anything else as JSON. */
const str = (v: unknown): string =>
  typeof v === 'string'
    ? v
    : typeof v === 'number' || typeof v === 'boolean'
      ? `${v}`
      : v == null
        ? ''
        : JSON.stringify(v);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.map(str) : []);
const read = (path: string) => readFileSync(path, 'utf8');
const rel = (path: string) => relative(ROOT, path);

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

interface JsYaml {
  Type: new (
    tag: string,
    options: { kind: 'scalar' | 'sequence' | 'mapping'; construct: () => unknown },
  ) => unknown;
  DEFAULT_SCHEMA: { extend(types: unknown[]): unknown };
  loadAll(input: string, iterator: null, options: { schema: unknown; filename: string }): unknown[];
}
// js-yaml is installed (ESLint depends on it) but ships no type declarations: typed here.
const yaml = createRequire(import.meta.url)('js-yaml') as JsYaml;
// Compose's `!reset` (compose.cpu.yaml) removes what the file it overrides set.
const SCHEMA = yaml.DEFAULT_SCHEMA.extend(
  (['scalar', 'sequence', 'mapping'] as const).map(
    (kind) => new yaml.Type('!reset', { kind, construct: () => null }),
  ),
);

function parseYaml(text: string, filename: string): Json[] {
  return yaml.loadAll(text, null, { schema: SCHEMA, filename }).filter(isObj);
}

const loadYaml = (path: string) => parseYaml(read(path), path);

function imageTagProblem(image: string): string | undefined {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return undefined;
  const tag = image.split('/').pop()!.split(':')[1];
  if (!tag) return `${image} has no tag`;
  if (tag === 'latest') return `${image} uses the moving tag latest`;
  return undefined;
}

/** host:port or a URL → its port. */
function portOf(address: string): number {
  return Number(new URL(address.includes('://') ? address : `tcp://${address}`).port);
}

/** Runs a probe command as the container would, with /app mapped to this checkout. */
async function runProbe(argv: string[], env: Record<string, string>): Promise<number> {
  const [command, ...args] = argv.map((a) =>
    a.startsWith(`${APP}/`) ? join(ROOT, a.slice(APP.length + 1)) : a,
  );
  const program =
    command === 'node' ? process.execPath : command === 'python' ? loadToolchain().python : command;
  // Asynchronous on purpose: the control plane under test answers from this very process.
  return new Promise((done) => {
    const options = { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, timeout: 20_000 };
    execFile(program!, args, options, (err) =>
      done(err ? (typeof err.code === 'number' ? err.code : -1) : 0),
    );
  });
}

// ---------------------------------------------------------------------------------------------
// The code: what each process loads and which EDGEFORGE_* variables it mentions

/**
 * Every file a TypeScript entry point loads: relative imports, and `new URL('./x', import.meta.url)`
 * (which may name a folder).
 */
function moduleGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    if (!file.endsWith('.ts')) return;
    const source = read(file);
    const specifiers = [
      ...source.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g),
      ...source.matchAll(/new URL\(\s*'(\.{1,2}\/[^']+)',\s*import\.meta\.url/g),
    ].map((m) => resolve(dirname(file), m[1]!));
    for (const specifier of specifiers) {
      const target = [specifier.replace(/\.js$/, '.ts'), specifier, `${specifier}/index.ts`].find(
        (c) => existsSync(c),
      );
      if (!target) throw new Error(`${rel(file)} imports ${specifier}, which does not exist`);
      if (statSync(target).isFile()) visit(target);
      else seen.add(target);
    }
  };
  visit(join(ROOT, entry));
  return seen;
}

const ENV_NAME = /\bEDGEFORGE_[A-Z0-9_]+\b/g;

function envNamesIn(files: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const file of files) for (const [name] of read(file).matchAll(ENV_NAME)) names.add(name);
  return names;
}

const GPU_WORKER_SOURCES = filesUnder(join(ROOT, 'services/gpu-worker/edgeforge_gpu')).filter((f) =>
  f.endsWith('.py'),
);

/** The EDGEFORGE_* variables a process of ours reads: the node image's entry file, or the gpu worker. */
function envNamesReadBy(container: OurContainer): Set<string> {
  return container.image === 'gpu'
    ? envNamesIn(GPU_WORKER_SOURCES)
    : envNamesIn([...moduleGraph(container.entry)].filter((f) => f.endsWith('.ts')));
}

/** The files the control plane reads from (or creates in) its data directory, from its source. */
function controlPlaneDataDirFiles(): string[] {
  // The tokens main.ts reads from the data dir, and the keys a control plane needs before any
  // rotation (the versioned key sets are written by the first rotation: see docs/security.md).
  const tokens = [
    ...read(join(ROOT, 'services/control-plane/main.ts')).matchAll(/join\(dataDir, '([\w.-]+)'\)/g),
  ].map((m) => m[1]!);
  return [...tokens, CREDENTIAL_KEY_FILE, MANIFEST_KEY_PEM_FILE].sort();
}

/** One container running one of our images, wherever it is declared. */
interface OurContainer {
  where: string;
  image: 'node' | 'gpu';
  /** The file tsx runs (node image). */
  entry: string;
  env: Map<string, string>;
  probes: string[][];
}

/**
 * Variables that the runtime, not our code, reads: Python's ssl module takes its CA file from
 * SSL_CERT_FILE (how the gpu worker's nats-py verifies NATS's certificate).
 */
const STANDARD_ENV: Record<OurContainer['image'], string[]> = { node: [], gpu: ['SSL_CERT_FILE'] };

function checkEnvironment(container: OurContainer, problems: string[]): void {
  const read = envNamesReadBy(container);
  const values = [...container.env.values()];
  for (const name of container.env.keys()) {
    if (name.startsWith('EDGEFORGE_')) {
      if (!read.has(name)) {
        problems.push(
          `${container.where} sets ${name}, which ${container.image === 'gpu' ? 'the gpu worker' : container.entry} never reads`,
        );
      }
    } else if (
      !values.some((v) => v.includes(`$(${name})`)) &&
      !STANDARD_ENV[container.image].includes(name)
    ) {
      // Anything else is only allowed as a part of another variable (NATS_PASSWORD → the URL),
      // or as a variable the runtime itself reads.
      problems.push(`${container.where} sets ${name}, which nothing reads`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dockerfiles

interface Copy {
  sources: string[];
  /** Absolute path in the image. */
  dest: string;
  fromStage: boolean;
}

interface Dockerfile {
  images: string[];
  /** CMD's first word: the node image's default entry file. */
  cmd: string;
  copies: Copy[];
  env: string[];
}

function parseDockerfile(path: string): Dockerfile {
  const lines = read(path)
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const result: Dockerfile = { images: [], cmd: '', copies: [], env: [] };
  const stages = new Set<string>();
  let workdir = '/';
  for (const line of lines) {
    const [instruction, ...words] = line.split(/\s+/);
    switch (instruction!.toUpperCase()) {
      case 'FROM': {
        if (!stages.has(words[0]!)) result.images.push(words[0]!);
        if (words[1]?.toUpperCase() === 'AS') stages.add(words[2]!);
        break;
      }
      case 'CMD':
        result.cmd = strs(JSON.parse(line.slice(instruction!.length)))[0] ?? '';
        break;
      case 'WORKDIR':
        workdir = posix.resolve(workdir, words[0]!);
        break;
      case 'ENV':
        result.env.push(...[...line.matchAll(/\b([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) => m[1]!));
        break;
      case 'COPY': {
        const fromStage = words.some((w) => w.startsWith('--from='));
        const paths = words.filter((w) => !w.startsWith('--'));
        const dest = posix.resolve(workdir, paths.pop()!);
        result.copies.push({ sources: paths, dest, fromStage });
        break;
      }
    }
  }
  return result;
}

/** Where a COPY puts one of its sources. */
function copiedTo(copy: Copy, source: string): string {
  const intoFolder = copy.dest.endsWith('/') || copy.sources.length > 1;
  return intoFolder ? posix.join(copy.dest, basename(source)) : copy.dest;
}

const DOCKERIGNORE = read(join(ROOT, '.dockerignore'))
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

/** .dockerignore's patterns (Go filepath.Match plus `**`); a matched folder excludes its contents. */
function dockerignored(path: string): boolean {
  let ignored = false;
  for (const line of DOCKERIGNORE) {
    const negated = line.startsWith('!');
    const glob = (negated ? line.slice(1) : line).replace(/^\/+|\/+$/g, '');
    let re = '';
    for (let i = 0; i < glob.length; i++) {
      if (glob.startsWith('**/', i)) [re, i] = [`${re}(?:.*/)?`, i + 2];
      else if (glob.startsWith('**', i)) [re, i] = [`${re}.*`, i + 1];
      else if (glob[i] === '*') re += '[^/]*';
      else if (glob[i] === '?') re += '[^/]';
      else re += glob[i]!.replace(/[.+^${}()|[\]\\]/, '\\$&');
    }
    if (new RegExp(`^${re}(?:/.*)?$`).test(path)) ignored = !negated;
  }
  return ignored;
}

const IMAGES = { node: parseDockerfile(NODE_DOCKERFILE), gpu: parseDockerfile(GPU_DOCKERFILE) };

/** Whether the image holds this repository file at /app/<same path>. */
function inNodeImage(repoPath: string): boolean {
  return (
    !dockerignored(repoPath) &&
    IMAGES.node.copies.some(
      (copy) =>
        !copy.fromStage &&
        copy.sources.some(
          (source) =>
            copiedTo(copy, source) === posix.join(APP, source) &&
            (repoPath === source || repoPath.startsWith(`${source}/`)),
        ),
    )
  );
}

/** Whether a probe's script (an absolute path in the image) is copied there from the repo. */
function probeScriptProblem(argv: string[], image: 'node' | 'gpu'): string | undefined {
  const script = argv.find((a) => a.startsWith('/'));
  if (!script) return `probe ${argv.join(' ')} names no script`;
  const copy = IMAGES[image].copies.find((c) => c.sources.some((s) => copiedTo(c, s) === script));
  if (!copy) return `probe script ${script} is not copied into the ${image} image`;
  if (!existsSync(join(ROOT, copy.sources[0]!)))
    return `probe script source ${copy.sources[0]} is missing`;
  return undefined;
}

describe('YAML', () => {
  it('every YAML file under deploy/ parses', () => {
    const files = filesUnder(join(ROOT, 'deploy')).filter((f) => /\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) expect(loadYaml(file).length, rel(file)).toBeGreaterThan(0);
  });
});

describe('Dockerfiles', () => {
  it('copy files that exist and are in the build context, into tagged base images', () => {
    const problems: string[] = [];
    for (const [name, image] of Object.entries(IMAGES)) {
      for (const base of image.images) {
        const problem = imageTagProblem(base);
        if (problem) problems.push(`${name} image: FROM ${problem}`);
      }
      for (const copy of image.copies.filter((c) => !c.fromStage)) {
        for (const source of copy.sources) {
          if (!existsSync(join(ROOT, source))) problems.push(`${name}: COPY ${source}: missing`);
          if (dockerignored(source)) problems.push(`${name}: COPY ${source}: in .dockerignore`);
        }
      }
    }
    for (const path of ['node_modules', '.edgeforge', 'bench-results', 'agent/node_modules']) {
      if (!dockerignored(path)) problems.push(`.dockerignore lets ${path} into the build context`);
    }
    expect(problems).toEqual([]);
  });

  it('install, with npm ci --omit=dev, every package the services import at run time', () => {
    expect(read(NODE_DOCKERFILE)).toMatch(/npm ci --ignore-scripts --omit=dev/);
    const dependencies = Object.keys(
      obj(obj(JSON.parse(read(join(ROOT, 'package.json')))).dependencies),
    );
    const entries = ['services/control-plane/main.ts', 'workflows/main.ts', 'agent/main.ts'];
    const missing = new Set<string>();
    for (const file of entries.flatMap((e) => [...moduleGraph(e)])) {
      if (!file.endsWith('.ts')) continue;
      // Type-only imports are erased; everything else is loaded from node_modules.
      const statements = read(file).matchAll(
        /(?:^|[;}\n])\s*(?:import|export)(\s+type)?\b[^;]*?from\s*'([^'.][^']*)'|import\('([^'.][^']*)'\)/g,
      );
      for (const [, typeOnly, fromPath, dynamicPath] of statements) {
        const specifier = fromPath ?? dynamicPath!;
        if (typeOnly || specifier.startsWith('node:')) continue;
        const name = specifier
          .split('/')
          .slice(0, specifier.startsWith('@') ? 2 : 1)
          .join('/');
        if (!dependencies.includes(name)) missing.add(`${name} (${rel(file)})`);
      }
    }
    expect([...missing]).toEqual([]);
  });

  it('set only EDGEFORGE_* variables the code reads', () => {
    const entries = ['services/control-plane/main.ts', 'workflows/main.ts', 'agent/main.ts'];
    const everything = envNamesIn(
      [...entries.flatMap((e) => [...moduleGraph(e)]), ...GPU_WORKER_SOURCES].filter((f) =>
        /\.(ts|py)$/.test(f),
      ),
    );
    const unread = [...IMAGES.node.env, ...IMAGES.gpu.env].filter(
      (name) => name.startsWith('EDGEFORGE_') && !everything.has(name),
    );
    expect(unread).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Compose

const ENV_EXAMPLE = new Map(
  read(join(COMPOSE_DIR, '.env.example'))
    .split('\n')
    .filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
);

/** compose.yaml with ${VAR} references replaced from .env.example, as compose does with .env. */
function loadCompose(file: string, problems: string[], referenced: Set<string>): Json {
  const interpolate = (value: string): string => {
    if (/(^|[^$])\$[A-Za-z_]/.test(value)) problems.push(`${value}: write \${VAR}, not $VAR`);
    return value.replace(
      /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g,
      (match, name?: string, operator?: string, argument?: string) => {
        if (match === '$$') return '$';
        referenced.add(name!);
        const value = ENV_EXAMPLE.get(name!);
        if (value !== undefined && value !== '') return value;
        if (operator?.endsWith('-')) return argument ?? '';
        problems.push(`\${${name}} is not in .env.example and has no default`);
        return '';
      },
    );
  };
  const walk = (node: unknown): unknown =>
    typeof node === 'string'
      ? interpolate(node)
      : Array.isArray(node)
        ? node.map(walk)
        : isObj(node)
          ? Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v)]))
          : node;
  const docs = loadYaml(file);
  expect(docs, `${rel(file)} holds one document`).toHaveLength(1);
  return walk(docs[0]) as Json;
}

function composeEnv(service: Json): Map<string, string> {
  const env = service.environment;
  if (Array.isArray(env)) {
    return new Map(env.map(String).map((e) => [e.split('=')[0]!, e.split('=').slice(1).join('=')]));
  }
  return new Map(Object.entries(obj(env)).map(([k, v]) => [k, v == null ? '' : str(v)]));
}

interface Mount {
  source?: string;
  target: string;
  bind: boolean;
}

function composeMounts(service: Json): Mount[] {
  return (Array.isArray(service.volumes) ? service.volumes : []).map((v: unknown) => {
    if (isObj(v)) {
      const source = v.source === undefined ? undefined : str(v.source);
      return { source, target: str(v.target), bind: v.type === 'bind' };
    }
    const parts = str(v).split(':');
    if (parts.length === 1) return { target: parts[0]!, bind: false };
    return { source: parts[0]!, target: parts[1]!, bind: /^[./~]/.test(parts[0]!) };
  });
}

const composeProblems: string[] = [];
const composeVars = new Set<string>();
const compose = loadCompose(join(COMPOSE_DIR, 'compose.yaml'), composeProblems, composeVars);
const services = obj(compose.services);

function composeContainers(): OurContainer[] {
  return Object.entries(services).flatMap(([name, s]) => {
    const service = obj(s);
    const image = str(service.image ?? '');
    if (!image.startsWith(`${NODE_IMAGE}:`) && !image.startsWith(`${GPU_IMAGE}:`)) return [];
    const healthcheck = strs(obj(service.healthcheck).test);
    const gpu = image.startsWith(`${GPU_IMAGE}:`);
    return [
      {
        where: `compose service ${name}`,
        image: gpu ? 'gpu' : 'node',
        entry: gpu ? '' : (strs(service.command)[0] ?? IMAGES.node.cmd),
        env: composeEnv(service),
        probes: healthcheck[0] === 'CMD' ? [healthcheck.slice(1)] : [],
      } satisfies OurContainer,
    ];
  });
}

describe('compose', () => {
  it('takes every ${VAR} from .env.example, which holds nothing else', () => {
    const unused = [...ENV_EXAMPLE.keys()].filter((name) => !composeVars.has(name));
    expect([...composeProblems, ...unused.map((n) => `.env.example: ${n} is never used`)]).toEqual(
      [],
    );
  });

  it('depends only on services that exist, with conditions they can meet', () => {
    const problems: string[] = [];
    for (const [name, s] of Object.entries(services)) {
      const dependsOn = obj(s).depends_on;
      const deps: [string, string][] = Array.isArray(dependsOn)
        ? dependsOn.map((d) => [str(d), 'service_started'])
        : Object.entries(obj(dependsOn)).map(([d, v]) => [d, str(obj(v).condition)]);
      for (const [dep, condition] of deps) {
        const target = services[dep];
        if (!isObj(target)) problems.push(`${name} depends on ${dep}, which is not a service`);
        else if (condition === 'service_healthy' && !isObj(target.healthcheck)) {
          problems.push(`${name} waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
        } else if (
          !['service_started', 'service_healthy', 'service_completed_successfully'].includes(
            condition,
          )
        ) {
          problems.push(`${name} depends on ${dep} with unknown condition ${condition}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('declares every named volume, secret and config it uses, and mounts files that exist', () => {
    const problems: string[] = [];
    const declared = (key: string) => new Set(Object.keys(obj(compose[key])));
    const volumes = declared('volumes');
    const usedVolumes = new Set<string>();
    for (const [name, s] of Object.entries(services)) {
      const service = obj(s);
      for (const mount of composeMounts(service)) {
        if (mount.bind) {
          const path = resolve(COMPOSE_DIR, mount.source!);
          const later = LATER.find((l) => rel(path).startsWith(l));
          // Paths still to come are checked once their folder exists.
          if (later && !existsSync(join(ROOT, later))) continue;
          if (!existsSync(path)) problems.push(`${name} mounts ${mount.source}: no such path`);
        } else if (mount.source !== undefined) {
          usedVolumes.add(mount.source);
          if (!volumes.has(mount.source))
            problems.push(`${name} mounts volume ${mount.source}: not declared`);
        }
      }
      for (const key of ['secrets', 'configs']) {
        for (const ref of (Array.isArray(service[key]) ? service[key] : []) as unknown[]) {
          const refName = isObj(ref) ? str(ref.source) : str(ref);
          if (!declared(key).has(refName))
            problems.push(`${name} uses ${key} ${refName}: not declared`);
        }
      }
      const build = service.build;
      if (isObj(build)) {
        const dockerfile = resolve(COMPOSE_DIR, str(build.context ?? '.'), str(build.dockerfile));
        if (!existsSync(dockerfile)) problems.push(`${name} builds ${rel(dockerfile)}: missing`);
      }
    }
    for (const volume of volumes) {
      if (!usedVolumes.has(volume)) problems.push(`volume ${volume} is declared but never mounted`);
    }
    expect(problems).toEqual([]);
  });

  it('uses tagged images only, and our images with the Dockerfiles the tests check', () => {
    const problems: string[] = [];
    for (const [name, s] of Object.entries(services)) {
      const service = obj(s);
      const problem = imageTagProblem(str(service.image ?? `${name} has no image`));
      if (problem) problems.push(`${name}: ${problem}`);
      const dockerfile = str(obj(service.build).dockerfile ?? '');
      if (
        str(service.image).startsWith(`${NODE_IMAGE}:`) &&
        !dockerfile.endsWith('node.Dockerfile')
      )
        problems.push(`${name} runs ${NODE_IMAGE} but does not build it from node.Dockerfile`);
      if (
        str(service.image).startsWith(`${GPU_IMAGE}:`) &&
        !dockerfile.endsWith('gpu-worker.Dockerfile')
      )
        problems.push(`${name} runs ${GPU_IMAGE} but does not build it from gpu-worker.Dockerfile`);
    }
    expect(problems).toEqual([]);
  });

  it('reserves a GPU for the gpu worker (and compose.cpu.yaml only overrides services that exist)', () => {
    const gpuWorker = obj(services['gpu-worker']);
    expect(str(gpuWorker.image)).toMatch(new RegExp(`^${GPU_IMAGE}:`));
    const devices = objs(obj(obj(obj(gpuWorker.deploy).resources).reservations).devices);
    expect(devices.some((d) => strs(d.capabilities).includes('gpu'))).toBe(true);

    const cpu = loadCompose(join(COMPOSE_DIR, 'compose.cpu.yaml'), [], new Set());
    expect(Object.keys(obj(cpu.services)).filter((s) => !(s in services))).toEqual([]);
  });

  it('runs our services with health checks, entry points the image holds, and variables the code reads', () => {
    const problems: string[] = [];
    const containers = composeContainers();
    expect(containers.map((c) => c.where)).toEqual(
      expect.arrayContaining(
        ['control-plane', 'orchestrator', 'gpu-worker'].map((s) => `compose service ${s}`),
      ),
    );
    for (const container of containers) {
      if (container.probes.length === 0) problems.push(`${container.where} has no CMD healthcheck`);
      for (const probe of container.probes) {
        const problem = probeScriptProblem(probe, container.image);
        if (problem) problems.push(`${container.where}: ${problem}`);
      }
      if (container.image === 'node') {
        for (const file of moduleGraph(container.entry)) {
          if (!inNodeImage(rel(file)))
            problems.push(`${container.where} needs ${rel(file)}, not in the image`);
        }
      }
      checkEnvironment(container, problems);
    }
    expect(problems).toEqual([]);
  });

  it('gives the simulated agents profiles whose cpuinfo dumps resolve in the repo and in the container', () => {
    const problems: string[] = [];
    const agents = composeContainers().filter((c) => c.entry === 'agent/main.ts');
    expect(agents.length).toBeGreaterThanOrEqual(3);
    for (const agent of agents) {
      const service = obj(services[agent.where.replace('compose service ', '')]);
      // Mounts under /app keep the repository's layout, so relative paths mean the same thing.
      for (const mount of composeMounts(service).filter(
        (m) => m.bind && m.target.startsWith(`${APP}/`),
      )) {
        const repoPath = rel(resolve(COMPOSE_DIR, mount.source!));
        if (mount.target !== `${APP}/${repoPath}`)
          problems.push(
            `${agent.where}: ${mount.source} is mounted at ${mount.target}, not ${APP}/${repoPath}`,
          );
      }
      const profile = agent.env.get('EDGEFORGE_AGENT_PROFILE') ?? '';
      const inRepo = join(ROOT, profile.slice(APP.length + 1));
      const mounted = composeMounts(service).some(
        (m) => m.bind && profile.startsWith(`${m.target}/`),
      );
      if (!profile.startsWith(`${APP}/`) || !existsSync(inRepo) || !mounted) {
        problems.push(`${agent.where}: profile ${profile} is not a mounted file of the repository`);
        continue;
      }
      const cpuinfo = str(obj(JSON.parse(read(inRepo))).cpuinfoFile);
      const dump = resolve(dirname(inRepo), cpuinfo);
      const dumpMounted = composeMounts(service).some(
        (m) => m.bind && `${APP}/${rel(dump)}`.startsWith(`${m.target}/`),
      );
      if (!existsSync(dump) || !dumpMounted)
        problems.push(`${agent.where}: cpuinfo ${cpuinfo} is not a mounted file`);
    }
    expect(problems).toEqual([]);
  });

  it("give the orchestrator the control plane's manifest signing key, read-only", () => {
    const orchestrator = obj(services.orchestrator);
    const keyFile = composeEnv(orchestrator).get('EDGEFORGE_MANIFEST_KEY_FILE') ?? '';
    const mount = composeMounts(orchestrator).find((m) => m.target === dirname(keyFile));
    // The same volume the control plane keeps its data dir (and creates the key) in.
    const cpData = composeMounts(obj(services['control-plane'])).find(
      (m) => m.target === mount?.target,
    );
    expect(keyFile).toMatch(/\/manifest-signing\.pem$/);
    expect(mount?.source).toBeDefined();
    expect(mount?.source).toBe(cpData?.source);
    expect(strs(orchestrator.volumes).find((v) => v.startsWith(`${mount?.source}:`))).toMatch(
      /:ro$/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// NATS configuration (compose and Kubernetes)

const NATS_DIR = join(ROOT, 'deploy/nats');
const ACCOUNTS = read(join(NATS_DIR, 'accounts.conf'));

/** A nats-server configuration without its comments. */
const natsCode = (conf: string) =>
  conf
    .split('\n')
    .map((l) => l.replace(/#.*/, ''))
    .join('\n');

/** The environment variables a nats-server configuration reads ($NAME outside comments). */
function envReadByNatsConf(conf: string): string[] {
  return [
    ...new Set([...natsCode(conf).matchAll(/\$([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!)),
  ];
}

/** `nats-server -t` of `config` with only `env` (and PATH): undefined when it is valid. */
function natsConfigProblem(config: string, env: Record<string, string>): string | undefined {
  const result = spawnSync(loadToolchain().natsServer, ['-t', '-c', config], {
    env: { ...env, PATH: process.env.PATH },
    encoding: 'utf8',
  });
  const output = `${result.stdout}${result.stderr}`.trim();
  return result.status === 0 && output.includes('is valid') ? undefined : output;
}

/**
 * A copy of deploy/compose/tls (without any certificate of the checkout) in which its
 * make-certs.sh made the CA and NATS's certificate, as an operator does before `compose up`.
 */
function composeTlsWithCertificates(): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgeforge-compose-tls-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(COMPOSE_DIR, 'tls'), join(dir, 'tls'), {
    recursive: true,
    filter: (source) => !/\.(crt|key|srl)$/.test(source),
  });
  const made = spawnSync('bash', [join(dir, 'tls/make-certs.sh'), 'nats.edgeforge.example.com'], {
    encoding: 'utf8',
  });
  expect(made.status, made.stderr).toBe(0);
  return join(dir, 'tls');
}

/**
 * A configuration as the container sees it, moved under `root`: absolute paths into the
 * mounted folders `targets` (the TLS files) point into the copy there.
 */
const rootedAt = (conf: string, root: string, targets: string[]) =>
  targets.reduce((text, target) => text.replaceAll(`"${target}/`, `"${root}${target}/`), conf);

/** An account public key for the auth callout's `issuer` (the .env.example value is none). */
const calloutIssuer = () => newCalloutIssuer().publicKey;

describe('NATS configuration', () => {
  const devConf = join(NATS_DIR, 'dev.conf');
  const composeConf = join(COMPOSE_DIR, 'nats/nats.conf');
  const k8sConf = join(K8S_BASE, 'nats/nats.conf');
  const natsNodes = ['nats-1', 'nats-2', 'nats-3'];
  const natsStatefulSet = () =>
    workloadsOf(base.objects).find((w) => w.where === 'StatefulSet nats')!;

  it('takes who may connect from the one accounts.conf, with a byte-identical copy for kustomize', () => {
    // Every server configuration includes it and declares no users or accounts of its own.
    for (const conf of [devConf, composeConf, k8sConf]) {
      const code = natsCode(read(conf));
      expect(code, rel(conf)).toMatch(/^include "accounts\.conf"$/m);
      expect(code, rel(conf)).not.toMatch(/^\s*(authorization|accounts|users|system_account)\b/m);
    }
    // kustomize reads files inside its folder only: the copy next to nats.conf is the same file,
    // and the ConfigMap mounted as nats.conf's folder carries both.
    expect(read(join(K8S_BASE, 'nats/accounts.conf'))).toBe(ACCOUNTS);
    const generator = objs(loadYaml(join(K8S_BASE, 'kustomization.yaml'))[0]!.configMapGenerator);
    expect(strs(generator.find((g) => g.name === 'nats-config')?.files).sort()).toEqual([
      'nats/accounts.conf',
      'nats/nats.conf',
    ]);
    // Compose mounts deploy/nats/accounts.conf itself, next to each node's nats.conf.
    for (const node of natsNodes) {
      const mounts = composeMounts(obj(services[node]));
      const conf = mounts.find((m) => m.target.endsWith('/nats.conf'))!;
      const accounts = mounts.find((m) => m.target === `${dirname(conf.target)}/accounts.conf`);
      expect(accounts && resolve(COMPOSE_DIR, accounts.source!), node).toBe(
        join(NATS_DIR, 'accounts.conf'),
      );
    }
  });

  it('has no shared device user: only the central services and the system user are static', () => {
    const code = natsCode(ACCOUNTS);
    const users = [...code.matchAll(/\buser:\s*"([^"]+)"/g)].map((m) => m[1]);
    expect(users.sort()).toEqual(['edgeforge', 'system']);
    expect(code).toMatch(/auth_users:\s*\[\s*"edgeforge",\s*"system"\s*\]/);
    expect(code).toMatch(/issuer:\s*\$EDGEFORGE_NATS_CALLOUT_ISSUER\b/);
    // Nothing under deploy/ still mentions the old shared `agent` user or its permissions.
    const leftovers = [
      /EDGEFORGE_NATS_AGENT_PASSWORD/,
      /\bagent-password\b/,
      /\bNATS_AGENT_PASSWORD\b/,
      /permissions\.conf/,
      /AGENT_PERMISSIONS/,
      /\buser:\s*"?agent"?\b/,
      /:\/\/agent:/,
    ];
    const problems = filesUnder(join(ROOT, 'deploy')).flatMap((file) =>
      leftovers.filter((re) => re.test(read(file))).map((re) => `${rel(file)} mentions ${re}`),
    );
    expect(existsSync(join(NATS_DIR, 'permissions.conf'))).toBe(false);
    expect(problems).toEqual([]);
  });

  it('makes the callout issuer with scripts/nats-callout-key.ts, as the comments say', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeforge-callout-key-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const seedFile = join(dir, 'nats-callout-issuer.seed');
    const run = () =>
      spawnSync(
        process.execPath,
        ['--import', 'tsx', 'scripts/nats-callout-key.ts', '--seed-file', seedFile],
        { cwd: ROOT, encoding: 'utf8' },
      );
    const made = run();
    expect(made.status, made.stderr).toBe(0);
    // The line for .env is the public key of the seed the control plane will sign with.
    const seed = read(seedFile);
    expect(made.stdout).toBe(
      `EDGEFORGE_NATS_CALLOUT_ISSUER=${issuerKeyPair(seed).getPublicKey()}\n`,
    );
    expect(statSync(seedFile).mode & 0o777).toBe(0o600);
    // A second run never replaces the fleet's issuer.
    const again = run();
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/holds an issuer seed already/);
    expect(read(seedFile)).toBe(seed);
  });

  it('gives every NATS node the variables its configuration reads, which the dev stack sets too', () => {
    // The embedded stack (services/stack/nats-server.ts) sets exactly what accounts.conf reads.
    const accountsReads = envReadByNatsConf(ACCOUNTS).sort();
    expect(Object.keys(natsServerEnvironment(generateNatsServerSecrets())).sort()).toEqual(
      accountsReads,
    );
    const problems: string[] = [];
    for (const node of natsNodes) {
      const env = composeEnv(obj(services[node]));
      for (const name of [...accountsReads, ...envReadByNatsConf(read(composeConf))]) {
        if (!env.has(name)) problems.push(`compose ${node} does not set ${name}`);
      }
    }
    const env = new Set(objs(containersOf(natsStatefulSet())[0]!.env).map((e) => str(e.name)));
    for (const name of [...accountsReads, ...envReadByNatsConf(read(k8sConf))]) {
      if (!env.has(name)) problems.push(`StatefulSet nats does not set ${name}`);
    }
    expect(problems).toEqual([]);
  });

  it('is accepted by nats-server, laid out as the compose nodes mount it, TLS files included', () => {
    const tls = composeTlsWithCertificates();
    const problems: string[] = [];
    for (const node of natsNodes) {
      const service = obj(services[node]);
      const dir = mkdtempSync(join(tmpdir(), 'edgeforge-nats-conf-'));
      onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
      const folders: string[] = [];
      for (const mount of composeMounts(service).filter((m) => m.bind)) {
        // The certificates an operator makes in tls/ (never in git) come from the copy.
        const inTls = relative(join(COMPOSE_DIR, 'tls'), resolve(COMPOSE_DIR, mount.source!));
        const source = inTls.startsWith('..')
          ? resolve(COMPOSE_DIR, mount.source!)
          : join(tls, inTls);
        mkdirSync(dirname(join(dir, mount.target)), { recursive: true });
        cpSync(source, join(dir, mount.target), { recursive: true });
        if (statSync(source).isDirectory()) folders.push(mount.target);
      }
      const config = join(
        dir,
        strs(service.command)[strs(service.command).indexOf('--config') + 1]!,
      );
      writeFileSync(config, rootedAt(read(config), dir, folders));
      const env = {
        ...Object.fromEntries(composeEnv(service)),
        EDGEFORGE_NATS_CALLOUT_ISSUER: calloutIssuer(),
      };
      const problem = natsConfigProblem(config, env);
      if (problem) problems.push(`${node}: ${problem}`);
      if (node === 'nats-1') {
        // Clients get TLS or nothing: without its certificate the node does not start.
        const certFile = /\bcert_file:\s*"([^"]+)"/.exec(read(config))?.[1];
        if (!certFile?.startsWith(dir)) problems.push(`${node}: no cert_file in a mounted folder`);
        else rmSync(certFile);
        if (!natsConfigProblem(config, env))
          problems.push(`${node} starts without its TLS certificate`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('is accepted by nats-server as the Kubernetes pods see it, and refuses a placeholder issuer', () => {
    const tls = composeTlsWithCertificates();
    const nats = natsStatefulSet();
    const container = containersOf(nats)[0]!;
    const dir = mkdtempSync(join(tmpdir(), 'edgeforge-nats-conf-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const generator = objs(loadYaml(join(K8S_BASE, 'kustomization.yaml'))[0]!.configMapGenerator);
    const folders: string[] = [];
    for (const mount of objs(container.volumeMounts)) {
      const target = join(dir, str(mount.mountPath));
      const volume = obj(objs(nats.pod.volumes).find((v) => v.name === mount.name));
      mkdirSync(target, { recursive: true });
      if (isObj(volume.configMap)) {
        const name = obj(volume.configMap).name;
        const files = strs(generator.find((g) => g.name === name)?.files);
        for (const file of files) cpSync(join(K8S_BASE, file), join(target, basename(file)));
      } else if (isObj(volume.secret)) {
        // The TLS Secret: tls.crt and tls.key, here made by compose's make-certs.sh.
        expect(str(volume.secret.secretName)).toBe('nats-tls');
        for (const item of objs(volume.secret.items))
          cpSync(join(tls, 'nats', str(item.key)), join(target, str(item.path)));
        folders.push(str(mount.mountPath));
      }
    }
    const config = join(dir, strs(container.args)[strs(container.args).indexOf('--config') + 1]!);
    writeFileSync(config, rootedAt(read(config), dir, folders));
    // The Secret's values, by key (nats.yaml takes every variable from edgeforge-nats).
    const secretValues = (issuer: string): Record<string, string> => ({
      'service-password': 'pa',
      'system-password': 'pb',
      'callout-issuer': issuer,
    });
    const envWith = (values: Record<string, string>) =>
      Object.fromEntries(
        objs(container.env).map((e) => {
          const ref = obj(obj(e.valueFrom).secretKeyRef);
          if (e.valueFrom === undefined) return [str(e.name), str(e.value)];
          if (isObj(obj(e.valueFrom).fieldRef)) return [str(e.name), 'nats-0'];
          expect(str(ref.name), str(e.name)).toBe('edgeforge-nats');
          expect(values, str(e.name)).toHaveProperty([str(ref.key)]);
          return [str(e.name), values[str(ref.key)]!];
        }),
      );
    expect(natsConfigProblem(config, envWith(secretValues(calloutIssuer())))).toBeUndefined();
    // secrets.example.yaml's REPLACE_ME fails loudly instead of running without devices' auth.
    expect(natsConfigProblem(config, envWith(secretValues('REPLACE_ME')))).toBeDefined();
  });

  it('hands devices the servers only, over TLS: no configuration gives a device NATS credentials', () => {
    const problems: string[] = [];
    const advertised = (where: string, url: string | undefined, expected?: string) => {
      if (url === undefined)
        return problems.push(`${where} sets no EDGEFORGE_CP_ADVERTISED_NATS_URL`);
      if (parseNatsUrl(url).user !== undefined || url.includes('$('))
        problems.push(`${where} advertises credentials: ${redactUrl(url)}`);
      if (!parseNatsUrl(url).servers.every((s) => s.startsWith('tls://')))
        problems.push(`${where} advertises ${url}, not tls://`);
      if (expected !== undefined && url !== expected)
        problems.push(`${where} advertises ${url}, not ${expected}`);
    };
    const cpCompose = composeContainers().find((c) => c.where === 'compose service control-plane')!;
    advertised(cpCompose.where, cpCompose.env.get('EDGEFORGE_CP_ADVERTISED_NATS_URL'));
    const cpK8s = k8sContainers(base).find((c) => c.entry === 'services/control-plane/main.ts')!;
    advertised(cpK8s.where, cpK8s.env.get('EDGEFORGE_CP_ADVERTISED_NATS_URL'));
    const patch = workloadsOf(production.patches).find((w) => w.name === 'control-plane')!;
    const patchEnv = new Map(
      objs(containersOf(patch)[0]!.env).map((e) => [str(e.name), str(e.value ?? '')]),
    );
    advertised(
      'the production overlay',
      patchEnv.get('EDGEFORGE_CP_ADVERTISED_NATS_URL'),
      'tls://nats.edgeforge.example.com:4222',
    );
    // The agents get no NATS URL of their own: they use what the control plane advertises.
    for (const agent of composeContainers().filter((c) => c.entry === 'agent/main.ts')) {
      if (agent.env.has('EDGEFORGE_NATS_URL')) problems.push(`${agent.where} sets a NATS URL`);
    }
    expect(problems).toEqual([]);
  });

  it('connects the control plane as the system user too, and gives it the callout seed as a file', () => {
    // compose: the system user's URL, and the seed as a compose secret.
    const cp = obj(services['control-plane']);
    const env = composeEnv(cp);
    const system = parseNatsUrl(env.get('EDGEFORGE_NATS_SYSTEM_URL') ?? '');
    expect(system.user).toBe('system');
    expect(system.pass).toBe(ENV_EXAMPLE.get('EDGEFORGE_NATS_SYSTEM_PASSWORD'));
    const seedFile = env.get('EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE') ?? '';
    const secret = basename(seedFile);
    expect(seedFile).toBe(`/run/secrets/${secret}`);
    expect(strs(cp.secrets)).toContain(secret);
    const seedSource = resolve(COMPOSE_DIR, str(obj(obj(compose.secrets)[secret]).file));
    // The seed file itself is the operator's (never in git); its folder is there.
    expect(existsSync(dirname(seedSource)), rel(seedSource)).toBe(true);

    // Kubernetes: the same Secret and key as the NATS pods' system password; the seed as the one
    // item of the NATS Secret mounted where EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE points.
    const w = workloadsOf(base.objects).find((x) => x.where === 'Deployment control-plane')!;
    const container = containersOf(w)[0]!;
    const k8sEnv = objs(container.env);
    const value = (name: string) => str(k8sEnv.find((e) => e.name === name)?.value ?? '');
    const refOf = (entries: Json[], name: string) =>
      obj(obj(entries.find((e) => e.name === name)?.valueFrom).secretKeyRef);
    expect(value('EDGEFORGE_NATS_SYSTEM_URL')).toMatch(
      /^tls:\/\/system:\$\(NATS_SYSTEM_PASSWORD\)@/,
    );
    expect(refOf(k8sEnv, 'NATS_SYSTEM_PASSWORD')).toEqual(
      refOf(objs(containersOf(natsStatefulSet())[0]!.env), 'EDGEFORGE_NATS_SYSTEM_PASSWORD'),
    );
    const k8sSeed = value('EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE');
    const mount = objs(container.volumeMounts).find((m) => m.mountPath === dirname(k8sSeed));
    const volume = obj(objs(w.pod.volumes).find((v) => v.name === mount?.name)?.secret);
    const issuerRef = refOf(
      objs(containersOf(natsStatefulSet())[0]!.env),
      'EDGEFORGE_NATS_CALLOUT_ISSUER',
    );
    expect(str(volume.secretName)).toBe(str(issuerRef.name));
    expect(objs(volume.items).map((i) => [str(i.key), str(i.path)])).toEqual([
      ['callout-issuer-seed', basename(k8sSeed)],
    ]);
    expect(declaredData(base, 'Secret').get(str(volume.secretName))).toEqual(
      expect.arrayContaining(['callout-issuer', 'callout-issuer-seed', 'system-password']),
    );
  });

  it("verifies NATS's certificate in every service with the CA file, and mounts no one else the key", () => {
    const problems: string[] = [];
    const caVariable = (image: 'node' | 'gpu') =>
      image === 'gpu' ? 'SSL_CERT_FILE' : 'EDGEFORGE_NATS_CA_FILE';
    // compose: tls/ca is the CA's certificate; tls/nats the server's key, for the NATS nodes only.
    for (const [name, s] of Object.entries(services)) {
      const service = obj(s);
      const mounts = composeMounts(service).filter((m) => m.bind);
      const from = (folder: string) =>
        mounts.find((m) => resolve(COMPOSE_DIR, m.source!) === join(COMPOSE_DIR, folder));
      const serverKey = from('tls/nats');
      if (natsNodes.includes(name) !== Boolean(serverKey))
        problems.push(`compose ${name}: ${serverKey ? 'mounts' : 'lacks'} NATS's key (tls/nats)`);
      if (mounts.some((m) => resolve(COMPOSE_DIR, m.source!) === join(COMPOSE_DIR, 'tls')))
        problems.push(`compose ${name} mounts tls/, the CA's private key included`);
    }
    for (const c of composeContainers()) {
      const service = obj(services[c.where.replace('compose service ', '')]);
      const url = c.env.get('EDGEFORGE_NATS_URL');
      if (url !== undefined && !url.startsWith('tls://'))
        problems.push(`${c.where} connects to NATS without TLS: ${redactUrl(url)}`);
      const caFile = c.env.get(caVariable(c.image));
      const mount = composeMounts(service).find((m) => m.target === dirname(caFile ?? ''));
      if (!mount || resolve(COMPOSE_DIR, mount.source!) !== join(COMPOSE_DIR, 'tls/ca'))
        problems.push(`${c.where}: ${caVariable(c.image)}=${caFile} is not in the mounted tls/ca`);
    }
    // Kubernetes: the CA from the Secret nats-tls, its ca.crt and nothing else.
    for (const c of k8sContainers(base)) {
      const w = workloadsOf(base.objects).find((x) => c.where.startsWith(`${x.where} `))!;
      const container = containersOf(w).find((x) => c.where.endsWith(` ${str(x.name)}`))!;
      const url = c.env.get('EDGEFORGE_NATS_URL') ?? '';
      if (!url.startsWith('tls://')) problems.push(`${c.where} connects to NATS without TLS`);
      const caFile = c.env.get(caVariable(c.image)) ?? '';
      const mount = objs(container.volumeMounts).find((m) => m.mountPath === dirname(caFile));
      const secret = obj(objs(w.pod.volumes).find((v) => v.name === mount?.name)?.secret);
      const items = objs(secret.items).map((i) => [str(i.key), str(i.path)]);
      if (
        str(secret.secretName) !== 'nats-tls' ||
        JSON.stringify(items) !== JSON.stringify([['ca.crt', basename(caFile)]])
      )
        problems.push(
          `${c.where}: ${caVariable(c.image)}=${caFile} is not nats-tls's ca.crt alone`,
        );
    }
    expect(problems).toEqual([]);
  });

  it('creates every bucket with EDGEFORGE_NATS_REPLICAS: bucketOptions() in TypeScript, replicas= in the gpu worker', () => {
    // The services create the buckets they use on first start; with the setting, a bucket lives
    // on as many nodes as the deployment says, and no post-start script has to replicate it.
    const entries = ['services/control-plane/main.ts', 'workflows/main.ts', 'cli/main.ts'];
    const sources = new Set(entries.flatMap((e) => [...moduleGraph(e)]));
    const problems: string[] = [];
    for (const file of [...sources].filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const source = read(file);
      for (const match of source.matchAll(/new (?:Kvm|Objm)\([^)]*\)\s*\.create\(/g)) {
        const call = balanced(source, match.index + match[0].length - 1);
        if (!call.includes('bucketOptions(')) {
          const line = source.slice(0, match.index).split('\n').length;
          problems.push(`${rel(file)}:${line}: .create${call} without bucketOptions()`);
        }
      }
    }
    for (const file of GPU_WORKER_SOURCES) {
      const source = read(file);
      for (const match of source.matchAll(/\.create_(?:object_store|key_value)\(/g)) {
        const call = balanced(source, match.index + match[0].length - 1);
        if (!/\breplicas=/.test(call))
          problems.push(`${rel(file)}: ${match[0]}…) without replicas=`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('replicates the buckets over every node: EDGEFORGE_NATS_REPLICAS is the cluster size', () => {
    const problems: string[] = [];
    const check = (where: string, env: Map<string, string>, nodes: number) => {
      const value = env.get('EDGEFORGE_NATS_REPLICAS');
      if (value === undefined) return problems.push(`${where} has no EDGEFORGE_NATS_REPLICAS`);
      if (loadNatsReplicas({ EDGEFORGE_NATS_REPLICAS: value }) !== nodes)
        problems.push(`${where}: EDGEFORGE_NATS_REPLICAS=${value}, but NATS has ${nodes} nodes`);
    };
    // The processes that create buckets; agents only read them.
    const creators = (c: OurContainer) => c.entry !== 'agent/main.ts';
    const composeNodes = Object.keys(services).filter((name) => /^nats-\d+$/.test(name)).length;
    expect(composeNodes).toBe(3);
    for (const container of composeContainers().filter(creators))
      check(container.where, container.env, composeNodes);
    const statefulSet = base.objects.find(
      (o) => o.kind === 'StatefulSet' && str(obj(o.metadata).name) === 'nats',
    );
    const k8sNodes = Number(obj(statefulSet?.spec).replicas);
    expect(k8sNodes).toBe(3);
    const k8s = k8sContainers(base).filter(creators);
    expect(k8s.length).toBeGreaterThanOrEqual(3);
    for (const container of k8s) check(container.where, container.env, k8sNodes);
    // Nothing runs the nats CLI against the cluster after it started.
    const natsBox = [
      ...Object.entries(services)
        .filter(([, s]) => str(obj(s).image).startsWith('natsio/nats-box'))
        .map(([name]) => `compose service ${name}`),
      ...workloadsOf(base.objects)
        .filter((w) => containersOf(w).some((c) => str(c.image).startsWith('natsio/nats-box')))
        .map((w) => w.where),
    ];
    expect([...problems, ...natsBox.map((w) => `${w} runs the nats CLI`)]).toEqual([]);
  });
});

/** The text from the parenthesis at `open` to the one that closes it, both included. */
function balanced(source: string, open: number): string {
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    if (source[i] === '(') depth++;
    if (source[i] === ')' && --depth === 0) return source.slice(open, i + 1);
  }
  return source.slice(open);
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

interface Kustomization {
  objects: Json[];
  /** ConfigMaps and Secrets from configMapGenerator / secretGenerator, with their keys. */
  generated: { kind: 'ConfigMap' | 'Secret'; name: string; keys: string[] }[];
  patches: Json[];
  problems: string[];
}

/** Reads a kustomization and, recursively, the ones it builds on (without applying patches). */
function loadKustomization(dir: string): Kustomization {
  const result: Kustomization = { objects: [], generated: [], patches: [], problems: [] };
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) {
    result.problems.push(`${rel(dir)} has no kustomization.yaml`);
    return result;
  }
  const k = loadYaml(file)[0] ?? {};
  for (const resource of strs(k.resources)) {
    const path = resolve(dir, resource);
    if (!existsSync(path)) result.problems.push(`${rel(file)}: resource ${resource} is missing`);
    else if (statSync(path).isDirectory()) {
      const base = loadKustomization(path);
      result.objects.push(...base.objects);
      result.generated.push(...base.generated);
      result.problems.push(...base.problems);
    } else result.objects.push(...loadYaml(path));
  }
  for (const patch of objs(k.patches)) {
    if (patch.path === undefined) continue;
    const path = resolve(dir, str(patch.path));
    if (!existsSync(path))
      result.problems.push(`${rel(file)}: patch ${str(patch.path)} is missing`);
    else result.patches.push(...loadYaml(path));
  }
  for (const [key, kind] of [
    ['configMapGenerator', 'ConfigMap'],
    ['secretGenerator', 'Secret'],
  ] as const) {
    for (const generator of objs(k[key])) {
      const keys = strs(generator.literals).map((l) => l.split('=')[0]!);
      for (const entry of strs(generator.files)) {
        const [name, path] = entry.includes('=') ? entry.split('=') : [basename(entry), entry];
        if (!existsSync(resolve(dir, path!)))
          result.problems.push(`${rel(file)}: ${key} file ${path} is missing`);
        keys.push(name!);
      }
      result.generated.push({ kind, name: str(generator.name), keys });
    }
  }
  return result;
}

interface Workload {
  where: string;
  kind: string;
  name: string;
  annotations: Json;
  labels: Json;
  pod: Json;
  claimTemplates: string[];
}

function workloadsOf(objects: Json[]): Workload[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(str(o.kind)))
    .map((o) => {
      const template = obj(obj(o.spec).template);
      const name = str(obj(o.metadata).name);
      return {
        where: `${str(o.kind)} ${name}`,
        kind: str(o.kind),
        name,
        annotations: obj(obj(template.metadata).annotations),
        labels: obj(obj(template.metadata).labels),
        pod: obj(template.spec),
        claimTemplates: objs(obj(o.spec).volumeClaimTemplates).map((c) =>
          str(obj(c.metadata).name),
        ),
      };
    });
}

const containersOf = (w: Workload) => [...objs(w.pod.initContainers), ...objs(w.pod.containers)];
const probesOf = (c: Json) =>
  ['startupProbe', 'readinessProbe', 'livenessProbe'].map((p) => c[p]).filter(isObj);
const selects = (selector: Json, labels: Json) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Every Secret and ConfigMap a pod reads: [kind, name, key or undefined for all of it, where]. */
function podReferences(w: Workload): ['Secret' | 'ConfigMap', string, string | undefined][] {
  const refs: ['Secret' | 'ConfigMap', string, string | undefined][] = [];
  for (const c of containersOf(w)) {
    for (const e of objs(c.env)) {
      const from = obj(e.valueFrom);
      if (isObj(from.secretKeyRef))
        refs.push(['Secret', str(from.secretKeyRef.name), str(from.secretKeyRef.key)]);
      if (isObj(from.configMapKeyRef))
        refs.push(['ConfigMap', str(from.configMapKeyRef.name), str(from.configMapKeyRef.key)]);
    }
    for (const e of objs(c.envFrom)) {
      if (isObj(e.secretRef)) refs.push(['Secret', str(e.secretRef.name), undefined]);
      if (isObj(e.configMapRef)) refs.push(['ConfigMap', str(e.configMapRef.name), undefined]);
    }
  }
  for (const v of objs(w.pod.volumes)) {
    if (isObj(v.secret)) {
      const items = objs(v.secret.items);
      if (items.length === 0) refs.push(['Secret', str(v.secret.secretName), undefined]);
      for (const item of items) refs.push(['Secret', str(v.secret.secretName), str(item.key)]);
    }
    if (isObj(v.configMap)) refs.push(['ConfigMap', str(v.configMap.name), undefined]);
  }
  return refs;
}

/** name → keys of every Secret or ConfigMap the kustomization declares. */
function declaredData(k: Kustomization, kind: 'Secret' | 'ConfigMap'): Map<string, string[]> {
  const declared = new Map<string, string[]>();
  for (const o of k.objects.filter((o) => o.kind === kind)) {
    declared.set(str(obj(o.metadata).name), [
      ...Object.keys(obj(o.data)),
      ...Object.keys(obj(o.stringData)),
    ]);
  }
  for (const g of k.generated.filter((g) => g.kind === kind)) declared.set(g.name, g.keys);
  return declared;
}

function k8sContainers(k: Kustomization): OurContainer[] {
  const configMaps = new Map(
    k.objects
      .filter((o) => o.kind === 'ConfigMap')
      .map((o) => [str(obj(o.metadata).name), obj(o.data)]),
  );
  return workloadsOf(k.objects).flatMap((w) =>
    containersOf(w).flatMap((c) => {
      const image = str(c.image);
      if (!image.startsWith(`${NODE_IMAGE}:`) && !image.startsWith(`${GPU_IMAGE}:`)) return [];
      const env = new Map<string, string>();
      for (const e of objs(c.envFrom)) {
        const data = configMaps.get(str(obj(e.configMapRef).name)) ?? {};
        for (const [name, value] of Object.entries(data)) env.set(name, str(value));
      }
      for (const e of objs(c.env)) env.set(str(e.name), e.value === undefined ? '' : str(e.value));
      const gpu = image.startsWith(`${GPU_IMAGE}:`);
      return [
        {
          where: `${w.where} container ${str(c.name)}`,
          image: gpu ? 'gpu' : 'node',
          entry: gpu ? '' : (strs(c.args)[0] ?? IMAGES.node.cmd),
          env,
          probes: probesOf(c).flatMap((p) => (isObj(p.exec) ? [strs(p.exec.command)] : [])),
        } satisfies OurContainer,
      ];
    }),
  );
}

const base = loadKustomization(K8S_BASE);
const production = loadKustomization(K8S_PRODUCTION);

describe('Kubernetes manifests', () => {
  it('list resources, patches and generator files that exist', () => {
    expect([...base.problems, ...production.problems]).toEqual([]);
    expect(workloadsOf(base.objects).map((w) => w.where)).toEqual(
      expect.arrayContaining([
        'Deployment control-plane',
        'Deployment orchestrator',
        'Deployment gpu-worker',
        'StatefulSet nats',
      ]),
    );
  });

  it('give every container tagged images, resources and a locked-down securityContext, and long-running ones probes', () => {
    const problems: string[] = [];
    for (const w of workloadsOf(base.objects)) {
      const volumes = new Set([
        ...objs(w.pod.volumes).map((v) => str(v.name)),
        ...w.claimTemplates,
      ]);
      const podSecurity = obj(w.pod.securityContext);
      for (const c of containersOf(w)) {
        const where = `${w.where} container ${str(c.name)}`;
        const problem = imageTagProblem(str(c.image));
        if (problem) problems.push(`${where}: ${problem}`);
        const { requests, limits } = obj(c.resources);
        for (const [kind, values] of [
          ['requests', requests],
          ['limits', limits],
        ] as const) {
          for (const resource of ['cpu', 'memory']) {
            if (obj(values)[resource] === undefined)
              problems.push(`${where}: no ${kind}.${resource}`);
          }
        }
        if (w.kind !== 'Job') {
          for (const probe of ['readinessProbe', 'livenessProbe']) {
            if (!isObj(c[probe])) problems.push(`${where}: no ${probe}`);
          }
        }
        const security = obj(c.securityContext);
        if ((security.runAsNonRoot ?? podSecurity.runAsNonRoot) !== true)
          problems.push(`${where}: may run as root`);
        if (security.allowPrivilegeEscalation !== false)
          problems.push(`${where}: allows privilege escalation`);
        if (security.readOnlyRootFilesystem !== true)
          problems.push(`${where}: writable root filesystem`);
        if (!strs(obj(security.capabilities).drop).includes('ALL'))
          problems.push(`${where}: keeps capabilities`);
        const ports = objs(c.ports);
        for (const probe of probesOf(c)) {
          const port = obj(probe.httpGet).port ?? obj(probe.tcpSocket).port ?? obj(probe.grpc).port;
          if (
            port !== undefined &&
            !ports.some((p) => p.name === port || p.containerPort === port)
          ) {
            problems.push(
              `${where}: a probe uses port ${str(port)}, which the container does not declare`,
            );
          }
        }
        for (const mount of objs(c.volumeMounts)) {
          if (!volumes.has(str(mount.name)))
            problems.push(`${where}: mounts undeclared volume ${str(mount.name)}`);
        }
      }
      const scrapePort = w.annotations['prometheus.io/port'];
      if (
        scrapePort !== undefined &&
        !containersOf(w).some((c) => objs(c.ports).some((p) => str(p.containerPort) === scrapePort))
      ) {
        problems.push(
          `${w.where}: Prometheus would scrape port ${str(scrapePort)}, which no container declares`,
        );
      }
    }
    expect(problems).toEqual([]);
  });

  it('have Services and disruption budgets that select pods, on ports those pods declare', () => {
    const problems: string[] = [];
    const workloads = workloadsOf(base.objects);
    for (const o of base.objects.filter(
      (o) => o.kind === 'Service' || o.kind === 'PodDisruptionBudget',
    )) {
      const where = `${str(o.kind)} ${str(obj(o.metadata).name)}`;
      const spec = obj(o.spec);
      const selector =
        o.kind === 'Service' ? obj(spec.selector) : obj(obj(spec.selector).matchLabels);
      const selected = workloads.filter((w) => selects(selector, w.labels));
      if (selected.length === 0)
        problems.push(`${where} selects ${JSON.stringify(selector)}: no workload has those labels`);
      const ports = selected.flatMap((w) => containersOf(w).flatMap((c) => objs(c.ports)));
      for (const port of objs(spec.ports)) {
        const target = port.targetPort ?? port.port;
        if (!ports.some((p) => p.name === target || p.containerPort === target)) {
          problems.push(`${where}: targetPort ${str(target)} is not a port of the pods it selects`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('declare every Secret and ConfigMap a pod reads, with the keys it reads', () => {
    const problems: string[] = [];
    for (const w of workloadsOf(base.objects)) {
      for (const [kind, name, key] of podReferences(w)) {
        const keys = declaredData(base, kind).get(name);
        if (!keys)
          problems.push(
            `${w.where} reads ${kind} ${name}, which the kustomization does not declare`,
          );
        else if (key !== undefined && !keys.includes(key))
          problems.push(`${w.where} reads key ${key} of ${kind} ${name}, which it lacks`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('put the gpu worker on a GPU node, with a GPU', () => {
    const gpu = workloadsOf(base.objects).find((w) => w.where === 'Deployment gpu-worker')!;
    const container = containersOf(gpu).find((c) => str(c.image).startsWith(`${GPU_IMAGE}:`))!;
    const { requests, limits } = obj(container.resources);
    expect(Number(obj(limits)['nvidia.com/gpu'])).toBeGreaterThanOrEqual(1);
    // Extended resources: a request, when given, must equal the limit.
    if (obj(requests)['nvidia.com/gpu'] !== undefined)
      expect(obj(requests)['nvidia.com/gpu']).toBe(obj(limits)['nvidia.com/gpu']);
    expect(
      Object.keys(obj(gpu.pod.nodeSelector)).length + objs(gpu.pod.tolerations).length,
    ).toBeGreaterThan(0);
  });

  it('give the orchestrator the manifest signing key from the control plane Secret, and nothing else of it', () => {
    const [cp, orchestrator] = ['control-plane', 'orchestrator'].map((name) =>
      workloadsOf(base.objects).find((w) => w.where === `Deployment ${name}`)!,
    );
    const secretOf = (w: Workload, mountPath: string) => {
      const mount = objs(containersOf(w)[0]!.volumeMounts).find((m) => m.mountPath === mountPath);
      return obj(objs(w.pod.volumes).find((v) => v.name === mount?.name)?.secret);
    };
    const env = (w: Workload) =>
      new Map(objs(containersOf(w)[0]!.env).map((e) => [str(e.name), str(e.value ?? '')]));
    const keyFile = env(orchestrator!).get('EDGEFORGE_MANIFEST_KEY_FILE') ?? '';
    expect(keyFile).toMatch(/\/manifest-signing\.pem$/);
    const orchestratorSecret = secretOf(orchestrator!, dirname(keyFile));
    const cpSecret = secretOf(cp!, env(cp!).get('EDGEFORGE_CP_DATA_DIR') ?? '');
    expect(str(orchestratorSecret.secretName)).toBe(str(cpSecret.secretName));
    expect(objs(orchestratorSecret.items).map((i) => [str(i.key), str(i.path)])).toEqual([
      ['manifest-signing.pem', 'manifest-signing.pem'],
    ]);
  });

  it('share the control plane keys through a Secret mounted as its data directory, and probe it over gRPC', () => {
    const cp = workloadsOf(base.objects).find((w) => w.where === 'Deployment control-plane')!;
    expect(
      Number(
        obj(
          base.objects.find(
            (o) => o.kind === 'Deployment' && obj(o.metadata).name === 'control-plane',
          )?.spec,
        ).replicas,
      ),
    ).toBeGreaterThanOrEqual(2);
    const container = containersOf(cp)[0]!;
    const env = new Map(objs(container.env).map((e) => [str(e.name), str(e.value ?? '')]));
    const dataDir = env.get('EDGEFORGE_CP_DATA_DIR');
    const mount = objs(container.volumeMounts).find((m) => m.mountPath === dataDir);
    const volume = objs(cp.pod.volumes).find((v) => v.name === mount?.name);
    const secret = str(obj(volume?.secret).secretName);
    // The keys are exactly the files the control plane reads from its data dir (from its source).
    expect(controlPlaneDataDirFiles()).toEqual(
      expect.arrayContaining(['credential.key', 'manifest-signing.pem']),
    );
    expect([...(declaredData(base, 'Secret').get(secret) ?? [])].sort()).toEqual(
      controlPlaneDataDirFiles(),
    );
    expect(mount?.readOnly).toBe(true);

    const ports = new Map(objs(container.ports).map((p) => [str(p.name), Number(p.containerPort)]));
    expect(ports.get('grpc')).toBe(portOf(env.get('EDGEFORGE_CP_LISTEN') ?? ''));
    expect(ports.get('metrics')).toBe(portOf(env.get('EDGEFORGE_CP_METRICS_LISTEN') ?? ''));
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      expect(obj(obj(container[probe]).grpc).port, probe).toBe(ports.get('grpc'));
    }
  });

  it('run our containers with entry points and probes the images hold, and variables the code reads', () => {
    const problems: string[] = [];
    const containers = k8sContainers(base);
    expect(containers.length).toBeGreaterThanOrEqual(3);
    for (const container of containers) {
      for (const probe of container.probes) {
        const problem = probeScriptProblem(probe, container.image);
        if (problem) problems.push(`${container.where}: ${problem}`);
      }
      if (container.image === 'node') {
        for (const file of moduleGraph(container.entry)) {
          if (!inNodeImage(rel(file)))
            problems.push(`${container.where} needs ${rel(file)}, not in the image`);
        }
      }
      checkEnvironment(container, problems);
    }
    // The production overlay's patches add variables to the base's containers (merged by name).
    for (const w of workloadsOf(production.patches)) {
      for (const c of containersOf(w)) {
        const where = `${w.where} container ${str(c.name)}`;
        const target = containers.find((t) => t.where === where);
        if (!target) continue; // "patch only resources of the base" reports it
        const env = new Map(objs(c.env).map((e) => [str(e.name), str(e.value ?? '')]));
        checkEnvironment({ ...target, where: `production patch of ${where}`, env }, problems);
      }
    }
    expect(problems).toEqual([]);
  });

  it('patch, in the production overlay, only resources of the base', () => {
    const problems: string[] = [];
    const exists = (kind: unknown, name: unknown) =>
      base.objects.some((o) => o.kind === kind && obj(o.metadata).name === name);
    for (const patch of production.patches) {
      if (!exists(patch.kind, obj(patch.metadata).name)) {
        problems.push(
          `patch for ${str(patch.kind)} ${str(obj(patch.metadata).name)}: no such resource in the base`,
        );
      }
    }
    const k = loadYaml(join(K8S_PRODUCTION, 'kustomization.yaml'))[0]!;
    for (const image of objs(k.images)) {
      const used = workloadsOf(base.objects).some((w) =>
        containersOf(w).some((c) => str(c.image).split(':')[0] === image.name),
      );
      if (!used) problems.push(`images: ${str(image.name)} is not an image of the base`);
    }
    for (const replicas of objs(k.replicas)) {
      if (!workloadsOf(base.objects).some((w) => w.name === replicas.name))
        problems.push(`replicas: no workload ${str(replicas.name)}`);
    }
    expect(problems).toEqual([]);
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!kubectl)(
    'render with kustomize, and what they render resolves (needs kubectl)',
    () => {
      const render = (dir: string) => {
        const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
        expect(result.status, result.stderr).toBe(0);
        return parseYaml(result.stdout, `kubectl kustomize ${rel(dir)}`);
      };
      // Secrets production leaves to be created out of band: the base's placeholders, which its
      // overlay removes, and any its patches add (the TLS certificate).
      const placeholders = base.objects
        .filter(
          (o) =>
            o.kind === 'Secret' &&
            obj(obj(o.metadata).labels)['edgeforge.example/placeholder'] === 'true',
        )
        .map((o) => str(obj(o.metadata).name));
      const addedByPatches = production.patches
        .flatMap((p) => objs(obj(obj(obj(p.spec).template).spec).volumes))
        .map((v) => str(obj(v.secret).secretName));
      const problems: string[] = [];
      const builds: [string, string[]][] = [
        [K8S_BASE, []],
        [K8S_PRODUCTION, [...placeholders, ...addedByPatches]],
      ];
      for (const [dir, external] of builds) {
        const objects = render(dir);
        const names = (kind: string) =>
          new Set(objects.filter((o) => o.kind === kind).map((o) => str(obj(o.metadata).name)));
        for (const w of workloadsOf(objects)) {
          for (const [kind, name] of podReferences(w)) {
            if (!names(kind).has(name) && !(kind === 'Secret' && external.includes(name))) {
              problems.push(
                `${rel(dir)}: ${w.where} reads ${kind} ${name}, which the build does not contain`,
              );
            }
          }
          for (const c of containersOf(w)) {
            const problem = imageTagProblem(str(c.image));
            if (problem) problems.push(`${rel(dir)}: ${w.where}: ${problem}`);
            // $(VAR) expands only variables defined earlier in the list.
            const defined: string[] = [];
            for (const e of objs(c.env)) {
              for (const [, ref] of str(e.value ?? '').matchAll(
                /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
              )) {
                if (!defined.includes(ref!))
                  problems.push(
                    `${rel(dir)}: ${w.where}: ${str(e.name)} uses $(${ref}) before it is defined`,
                  );
              }
              defined.push(str(e.name));
            }
          }
        }
        for (const o of objects.filter((o) => o.kind !== 'Namespace')) {
          if (obj(o.metadata).namespace !== 'edgeforge')
            problems.push(
              `${rel(dir)}: ${str(o.kind)} ${str(obj(o.metadata).name)} is outside the edgeforge namespace`,
            );
        }
      }
      expect(problems).toEqual([]);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// The probes, run against the real services of the test stack

/** The probe commands of our containers (compose health checks and Kubernetes exec probes). */
function probesFor(
  match: (c: OurContainer) => boolean,
): { where: string; argv: string[]; env: Map<string, string> }[] {
  return [...composeContainers(), ...k8sContainers(base)]
    .filter(match)
    .flatMap((c) => c.probes.map((argv) => ({ where: c.where, argv, env: c.env })));
}

describe('health probes against real services', () => {
  it('the control plane health check passes while it serves and fails once it stopped', async () => {
    const cp = await startTestControlPlane();
    const probes = probesFor((c) => c.entry === 'services/control-plane/main.ts');
    expect(probes.length).toBeGreaterThan(0);
    // Listening on all interfaces as in the container; the probe goes through loopback.
    const env = { EDGEFORGE_CP_LISTEN: `0.0.0.0:${portOf(cp.address)}` };
    for (const probe of probes) expect(await runProbe(probe.argv, env), probe.where).toBe(0);
    await cp.stop();
    for (const probe of probes) expect(await runProbe(probe.argv, env), probe.where).not.toBe(0);
  });

  it('the workers health checks pass while Temporal and NATS answer, and fail when one does not', async () => {
    const stack = testStack();
    const probes = probesFor((c) => c.image === 'gpu' || c.entry === 'workflows/main.ts');
    expect(probes.map((p) => p.argv[0])).toEqual(expect.arrayContaining(['node', 'python']));
    const up = {
      EDGEFORGE_TEMPORAL_ADDRESS: stack.temporalAddress,
      EDGEFORGE_NATS_URL: stack.natsUrl,
    };
    for (const probe of probes) {
      expect(await runProbe(probe.argv, up), probe.where).toBe(0);
      expect(
        await runProbe(probe.argv, { ...up, EDGEFORGE_TEMPORAL_ADDRESS: '127.0.0.1:1' }),
        probe.where,
      ).not.toBe(0);
      expect(
        await runProbe(probe.argv, { ...up, EDGEFORGE_NATS_URL: 'nats://127.0.0.1:1' }),
        probe.where,
      ).not.toBe(0);
    }
  });

  it('the simulated agents enroll with their profiles into distinct hardware classes, and pass their health check', async () => {
    const cp = await startTestControlPlane();
    const agents = composeContainers().filter((c) => c.entry === 'agent/main.ts');
    const classes = new Set<string>();
    for (const agent of agents) {
      const dir = mkdtempSync(join(tmpdir(), 'edgeforge-agent-'));
      const profile = agent.env.get('EDGEFORGE_AGENT_PROFILE')!;
      const edgeAgent = new EdgeAgent({
        controlPlane: cp.address,
        enrollmentToken: ENROLLMENT_TOKEN,
        dataDir: dir,
        deviceName: agent.env.get('EDGEFORGE_AGENT_DEVICE_NAME')!,
        profileOverrideFile: join(ROOT, profile.slice(APP.length + 1)),
        metricsAddress: '127.0.0.1:0',
        servingAddress: '127.0.0.1:0',
        logger: createLogger('agent', 'error'),
      });
      onTestFinished(async () => {
        await edgeAgent.stop();
        rmSync(dir, { recursive: true, force: true });
      });
      await edgeAgent.start();
      classes.add(edgeAgent.hardwareClass!);
      const env = { EDGEFORGE_AGENT_METRICS: `127.0.0.1:${portOf(edgeAgent.metricsUrl!)}` };
      for (const probe of agent.probes) expect(await runProbe(probe, env), agent.where).toBe(0);
    }
    // A mixed fleet: each simulated device lands in its own class.
    expect(classes.size).toBe(agents.length);
  });
});
