/**
 * `npm run bench -- agent-footprint [--serve-seconds S] [--node-flags "..."] [--out FILE]`: what
 * the edge agent costs a device, in one run, for each way of running it:
 *
 * - packed: the installed package (`npm run agent:pack`, deploy/agent/install.sh), run by its bin
 *   (with --node-flags, to try V8 settings)
 * - packed, as the service: the same with the node flags of the shipped systemd unit
 * - tsx: `node --import tsx agent/main.ts`, the repository's agent (what `edgeforge agent` runs)
 * - npx tsx: `npx tsx agent/main.ts`, what the README told devices to run before the package
 *
 * Per way: install size (the packed one), time from spawn to the ready line and to the first
 * heartbeat the control plane accepted, resident memory idle and while serving the demo's student
 * architecture (small_cnn on 28×28 images, exported by the gpu worker's own export step) under
 * back-to-back inference requests. Memory is the whole process tree's (npx's wrappers included).
 * Real processes against a real nats-server and control plane on loopback; ratios are within
 * this run. Results: bench-results/agent-footprint-<time>.json.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { createLogger } from '../common/logger.js';
import { connectNats } from '../common/nats.js';
import { buildAgentPackage } from '../scripts/build-agent.js';
import { startControlPlane } from '../services/control-plane/index.js';
import {
  loadToolchain,
  ManagedProcess,
  REPO_ROOT,
  startNatsServer,
} from '../services/stack/index.js';
import { TestOrchestrator } from '../test/helpers/distribution.js';
import { testManifest } from '../test/helpers/manifests.js';

const run = promisify(execFile);
const TOKEN = 'bench-enrollment-token-0123456789';
const IMAGE = [1, 28, 28];
const CLASSES = 10;

interface Way {
  name: string;
  command: string;
  args: string[];
  cwd: string;
}

interface Footprint {
  way: string;
  readySeconds: number;
  firstHeartbeatSeconds: number;
  idleRssMiB: number;
  idleAnonMiB: number;
  servingRssMiB: number;
  servingAnonMiB: number;
  servingFileMiB: number;
  servingPeakRssMiB: number;
  processes: number;
  inferences: number;
  inferenceP50Ms: number;
}

export async function runAgentFootprintBenchmark(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'serve-seconds': { type: 'string' },
      out: { type: 'string' },
      'node-flags': { type: 'string' },
    },
  });
  const serveSeconds = Number(values['serve-seconds'] ?? 15);
  const nodeFlags = values['node-flags']?.split(' ').filter(Boolean) ?? [];
  const toolchain = loadToolchain();
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-footprint-'));
  const say = (m: string) => process.stderr.write(`[agent-footprint] ${m}\n`);
  try {
    say('packing and installing the agent');
    const tarball = await buildAgentPackage(join(dir, 'pack'));
    const prefix = join(dir, 'opt');
    await run('sh', [
      join(REPO_ROOT, 'deploy/agent/install.sh'),
      '--no-service',
      '--prefix',
      prefix,
      tarball,
    ]);
    const installed = join(prefix, 'lib/node_modules/edgeforge-agent');
    const install = {
      tarballMiB: (await duBytes(tarball)) / 2 ** 20,
      installedMiB: (await duBytes(installed)) / 2 ** 20,
      onnxRuntimeMiB: (await duBytes(join(installed, 'node_modules/onnxruntime-node'))) / 2 ** 20,
      bundleMiB: (await duBytes(join(installed, 'dist/edgeforge-agent.mjs'))) / 2 ** 20,
    };

    say('exporting small_cnn with the gpu worker export step');
    const modelFile = join(dir, 'small_cnn.onnx');
    await exportSmallCnn(toolchain.python, modelFile);

    const nats = await startNatsServer({ binary: toolchain.natsServer, storeDir: join(dir, 'js') });
    const service = await connectNats(nats.url, { name: 'bench' });
    const system = await connectNats(nats.systemUrl, { name: 'bench-system' });
    const cp = await startControlPlane({
      nats: service,
      dataDir: join(dir, 'cp'),
      enrollmentToken: TOKEN,
      adminToken: 'bench-admin-token-0123456789abcdef',
      logger: createLogger('control-plane', 'warn'),
      listen: '127.0.0.1:0',
      metricsListen: '127.0.0.1:0',
      advertisedNatsUrl: nats.agentUrl,
      natsAuth: { issuerSeed: nats.secrets.calloutIssuerSeed, system },
      heartbeatIntervalSeconds: 2,
      credentialTtlSeconds: 3600,
    });
    const orchestrator = await TestOrchestrator.open(service, join(dir, 'cp'));
    const results: Footprint[] = [];
    try {
      const unit = await readFile(join(installed, 'dist/deploy/edgeforge-agent.service'), 'utf8');
      const serviceFlags =
        /^ExecStart=.*? node ((?:--\S+ )*)/m.exec(unit)?.[1]?.trim().split(' ') ?? [];
      const ways: Way[] = [
        {
          name: 'packed',
          // What bin/edgeforge-agent runs (`#!/usr/bin/env node`), and --node-flags.
          command: process.execPath,
          args: [...nodeFlags, join(installed, 'dist/edgeforge-agent.mjs')],
          cwd: dir,
        },
        {
          name: 'packed, as the service',
          command: process.execPath,
          args: [...serviceFlags, join(installed, 'dist/edgeforge-agent.mjs')],
          cwd: dir,
        },
        {
          name: 'tsx',
          command: process.execPath,
          args: ['--import', 'tsx', join(REPO_ROOT, 'agent/main.ts')],
          cwd: REPO_ROOT,
        },
        { name: 'npx tsx', command: 'npx', args: ['tsx', 'agent/main.ts'], cwd: REPO_ROOT },
      ];
      const model = await readFile(modelFile);
      for (const way of ways) {
        say(`measuring ${way.name}`);
        results.push(
          await measure(way, {
            controlPlane: cp.address,
            registry: cp.registry,
            orchestrator,
            model,
            dir: join(dir, way.name.replace(/\W+/g, '-')),
            serveSeconds,
          }),
        );
      }
    } finally {
      await cp.stop(1000);
      await service.close();
      await system.close();
      await nats.stop();
    }

    // Against what a device runs: the service.
    const packed = results.find((r) => r.way === 'packed, as the service')!;
    const report = {
      benchmark: 'agent-footprint',
      at: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
      install,
      results,
      ratios: Object.fromEntries(
        results
          .filter((r) => r !== packed)
          .map((r) => [
            `${r.way} / service`,
            {
              idleRss: round(r.idleRssMiB / packed.idleRssMiB),
              servingRss: round(r.servingRssMiB / packed.servingRssMiB),
              servingAnon: round(r.servingAnonMiB / packed.servingAnonMiB),
              ready: round(r.readySeconds / packed.readySeconds),
            },
          ]),
      ),
    };
    const out =
      values.out ??
      join(REPO_ROOT, 'bench-results', `agent-footprint-${report.at.replace(/[:.]/g, '-')}.json`);
    await mkdir(join(out, '..'), { recursive: true });
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(
      `installed: ${install.installedMiB.toFixed(1)} MiB (onnxruntime-node ${install.onnxRuntimeMiB.toFixed(1)}, ` +
        `agent bundle ${install.bundleMiB.toFixed(1)}); tarball ${install.tarballMiB.toFixed(1)} MiB`,
    );
    console.table(
      results.map((r) => ({
        way: r.way,
        'ready s': r.readySeconds,
        'first heartbeat s': r.firstHeartbeatSeconds,
        'idle RSS MiB': r.idleRssMiB,
        'idle anon MiB': r.idleAnonMiB,
        'serving RSS MiB': r.servingRssMiB,
        'serving anon MiB': r.servingAnonMiB,
        'serving file MiB': r.servingFileMiB,
        'serving peak MiB': r.servingPeakRssMiB,
        processes: r.processes,
        'infer p50 ms': r.inferenceP50Ms,
      })),
    );
    console.log(`ratios (within this run): ${JSON.stringify(report.ratios)}`);
    console.log(`results: ${out}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function measure(
  way: Way,
  ctx: {
    controlPlane: string;
    registry: {
      get(id: string): { heartbeatCount: number; lastStatus: { event: string } | null } | undefined;
    };
    orchestrator: TestOrchestrator;
    model: Buffer;
    dir: string;
    serveSeconds: number;
  },
): Promise<Footprint> {
  await mkdir(ctx.dir, { recursive: true });
  const tokenFile = join(ctx.dir, 'token');
  await writeFile(tokenFile, TOKEN, { mode: 0o600 });
  const started = performance.now();
  const agent = new ManagedProcess({
    name: `agent (${way.name})`,
    command: way.command,
    args: [
      ...way.args,
      ...['--control-plane', ctx.controlPlane, '--data-dir', join(ctx.dir, 'state')],
      ...['--device-name', `footprint-${way.name.replace(/\W+/g, '-')}`],
      ...['--metrics', '127.0.0.1:0', '--serve', '127.0.0.1:0'],
    ],
    cwd: way.cwd,
    env: {
      ...process.env,
      EDGEFORGE_ENROLLMENT_TOKEN_FILE: tokenFile,
      EDGEFORGE_LOG_LEVEL: 'warn',
    },
    logFile: join(ctx.dir, 'agent.log'),
  });
  try {
    const [, deviceId, hardwareClass, inferenceUrl] = await agent.waitForLine(
      /^agent ready device_id=(\S+) hardware_class=(\S+) .* inference_url=(\S+)$/,
      120_000,
    );
    const readySeconds = (performance.now() - started) / 1000;
    await until(() => (ctx.registry.get(deviceId!)?.heartbeatCount ?? 0) > 0, 60_000);
    const firstHeartbeatSeconds = (performance.now() - started) / 1000;
    // Settled: the first seconds hold start-up garbage not yet collected.
    await sleep(10_000);
    const idle = await treeMemory(agent.pid!);

    const manifest = {
      ...testManifest({
        model: ctx.model,
        hardwareClasses: [hardwareClass!],
        sampleShape: IMAGE,
        classes: CLASSES,
        modelId: 'small_cnn',
        variant: 'fp32',
      }),
      inputs: [{ name: 'input', elemType: 'float32' as const, shape: ['N', ...IMAGE] }],
      outputs: [{ name: 'logits', elemType: 'float32' as const, shape: ['N', CLASSES] }],
    };
    await ctx.orchestrator.upload(ctx.model, manifest.model);
    await ctx.orchestrator.run(deviceId!, 'r-footprint', ctx.orchestrator.sign(manifest));
    await until(
      () => ctx.registry.get(deviceId!)?.lastStatus?.event === 'STATUS_EVENT_ACTIVATED',
      120_000,
    );

    const input = Array.from({ length: IMAGE.reduce((a, b) => a * b, 1) }, () => Math.random());
    const latencies: number[] = [];
    const end = performance.now() + ctx.serveSeconds * 1000;
    let serving: Memory = { rssMiB: 0, anonMiB: 0, fileMiB: 0, processes: 0 };
    let peak = 0;
    const sampler = setInterval(() => {
      void treeMemory(agent.pid!).then((m) => {
        serving = m;
        peak = Math.max(peak, m.rssMiB);
      });
    }, 500);
    try {
      while (performance.now() < end) {
        const t = performance.now();
        const response = await fetch(`${inferenceUrl}/v1/infer`, {
          method: 'POST',
          body: JSON.stringify({ inputs: input }),
        });
        if (!response.ok) throw new Error(`${way.name}: inference answered ${response.status}`);
        await response.arrayBuffer();
        latencies.push(performance.now() - t);
      }
    } finally {
      clearInterval(sampler);
    }
    latencies.sort((a, b) => a - b);
    return {
      way: way.name,
      readySeconds: round(readySeconds),
      firstHeartbeatSeconds: round(firstHeartbeatSeconds),
      idleRssMiB: round(idle.rssMiB),
      idleAnonMiB: round(idle.anonMiB),
      servingRssMiB: round(serving.rssMiB),
      servingAnonMiB: round(serving.anonMiB),
      servingFileMiB: round(serving.fileMiB),
      servingPeakRssMiB: round(peak),
      processes: idle.processes,
      inferences: latencies.length,
      inferenceP50Ms: round(latencies[Math.floor(latencies.length / 2)] ?? NaN),
    };
  } finally {
    await agent.stop();
  }
}

/** The demo's student architecture, untrained (memory does not depend on the weights' values). */
async function exportSmallCnn(python: string, target: string): Promise<void> {
  const script = [
    'import sys, numpy as np, torch',
    'from pathlib import Path',
    'from edgeforge_gpu.models import build_model',
    'from edgeforge_gpu.steps.export import ExportConfig, run',
    'torch.manual_seed(0)',
    `model = build_model("small_cnn", ${IMAGE[0]}, ${CLASSES})`,
    `images = np.random.default_rng(0).random((64, ${IMAGE.join(', ')}), dtype=np.float32)`,
    'run(model, images, Path(sys.argv[1]), ExportConfig(parity_samples=64))',
  ].join('\n');
  await run(python, ['-c', script, target], {
    cwd: join(REPO_ROOT, 'services/gpu-worker'),
    env: { ...process.env, PYTHONPATH: join(REPO_ROOT, 'services/gpu-worker') },
  });
}

interface Memory {
  /** VmRSS: everything resident, shared code pages included. */
  rssMiB: number;
  /** RssAnon: the process's own memory (heap, buffers, model arenas). */
  anonMiB: number;
  /** RssFile: mapped files (node's and ONNX Runtime's code), shared and evictable. */
  fileMiB: number;
  processes: number;
}

/**
 * Resident memory of the program under a tether shell (services/stack/tether.sh) and all its
 * descendants; not the shell nor its `sleep`.
 */
async function treeMemory(tether: number): Promise<Memory> {
  const total: Memory = { rssMiB: 0, anonMiB: 0, fileMiB: 0, processes: 0 };
  const field = (status: string, name: string) =>
    Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
  const children = async (pid: number) =>
    (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => ''))
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  const visit = async (pid: number) => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    total.rssMiB += field(status, 'VmRSS');
    total.anonMiB += field(status, 'RssAnon');
    total.fileMiB += field(status, 'RssFile');
    total.processes += 1;
    for (const child of await children(pid)) await visit(child);
  };
  for (const pid of await children(tether)) {
    const name = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (name !== 'sleep') await visit(pid);
  }
  return total;
}

async function duBytes(path: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', path]);
  return Number(stdout.split(/\s/)[0]);
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (x: number) => Math.round(x * 10) / 10;
