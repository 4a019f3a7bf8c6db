/**
 * `npm run agent:pack`: builds the edge agent as its own npm package and packs it.
 *
 * The agent's code lives in this repository next to the control plane because they share the
 * contracts (common/, proto/gen/). A device needs none of the central side: the package is one
 * bundled JavaScript file (no tsx, no Temporal, no TypeScript at run time) plus onnxruntime-node,
 * the only dependency with native code, so the only one not bundled. The systemd unit and the
 * install script travel in the package (dist/deploy/), so a device needs only the tarball.
 *
 * Prints the tarball's path; `--out DIR` chooses where it goes (default .edgeforge/agent).
 */
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
const AGENT = join(ROOT, 'agent');
const DIST = join(AGENT, 'dist');

export async function buildAgentPackage(
  outDir = join(ROOT, '.edgeforge', 'agent'),
): Promise<string> {
  await rm(DIST, { recursive: true, force: true });
  await build({
    entryPoints: [join(AGENT, 'main.ts')],
    outfile: join(DIST, 'edgeforge-agent.mjs'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    external: ['onnxruntime-node'],
    // Bundled CommonJS (grpc-js, pino) calls require(); an ES module has none of its own.
    banner: {
      js: [
        '#!/usr/bin/env node',
        "import { createRequire as __edgeforgeRequire } from 'node:module';",
        'const require = __edgeforgeRequire(import.meta.url);',
      ].join('\n'),
    },
    legalComments: 'linked',
    logLevel: 'warning',
    // Whitespace only: V8 keeps the source in memory (5 MB less resident), names stay readable.
    minifyWhitespace: true,
  });
  await chmod(join(DIST, 'edgeforge-agent.mjs'), 0o755);
  await mkdir(join(DIST, 'deploy'), { recursive: true });
  for (const file of ['edgeforge-agent.service', 'install.sh', 'agent.env']) {
    await copyFile(join(ROOT, 'deploy', 'agent', file), join(DIST, 'deploy', file));
  }
  await chmod(join(DIST, 'deploy', 'install.sh'), 0o755);
  await mkdir(outDir, { recursive: true });
  const packed = JSON.parse(
    execFileSync('npm', ['pack', AGENT, '--json', '--pack-destination', outDir], {
      cwd: ROOT,
      encoding: 'utf8',
    }),
  ) as { filename: string }[];
  return join(outDir, packed[0]!.filename);
}

if (import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  console.log(await buildAgentPackage(values.out && resolve(values.out)));
}
