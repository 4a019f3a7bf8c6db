import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Client, Connection } from '@temporalio/client';
import { TASK_QUEUES } from '../../common/names.js';
import { redactUrl } from '../../common/nats.js';
import type { RolloutPhase, RolloutStatus } from '../../common/rollout.js';
import type { SmokeResult } from '../../common/temporal-api.js';
import type { TeacherConfig } from '../../common/gpu-contracts.js';
import {
  addAgentMetricsTargets,
  loadToolchain,
  REPO_ROOT,
  type StackEndpoints,
} from '../../services/stack/index.js';
import type { smokeWorkflow } from '../../workflows/definitions/index.js';
import { adminClient, runningStack } from '../admin-client.js';
import { startDemoAgents, type RunningDemoAgent } from '../demo/demo-agents.js';
import {
  DEMO_DEVICES,
  FULL_DEMO,
  QUICK_DEMO,
  demoRolloutId,
  type DemoPlan,
} from '../demo/demo-config.js';
import { TeacherCache, type CachedTeacher } from '../demo/teacher-cache.js';
import { EXIT_CODES_HELP, exitCodeForPhase, withExitCodes } from '../exit-codes.js';
import { fashionMnistDir, requireFashionMnist } from '../demo/prerequisites.js';
import {
  formatDuration,
  formatPercent,
  renderResultTable,
  rolloutResult,
  textTable,
  writeResultFiles,
} from '../result/index.js';
import { openActivityProbe } from '../rollout/activity-progress.js';
import { watchRollout } from '../rollout/watch.js';
import { dataDir, onShutdown, startStackForCli, stopOnSignals } from '../stack-session.js';

interface DemoOptions {
  quick?: boolean;
  keep?: boolean;
  json?: boolean;
  out?: string;
  cacheDir?: string;
  freshTeacher?: boolean;
  prometheus?: boolean;
}

const say = (message: string) => process.stderr.write(`[demo] ${message}\n`);

/** Runs the smoke workflow through both workers: the stack works, and where training runs. */
async function stackCheck(endpoints: StackEndpoints): Promise<SmokeResult> {
  const connection = await Connection.connect({ address: endpoints.temporalAddress });
  try {
    return await new Client({ connection }).workflow.execute<typeof smokeWorkflow>(
      'smokeWorkflow',
      {
        taskQueue: TASK_QUEUES.orchestrator,
        workflowId: `demo-smoke-${randomUUID()}`,
        args: [`demo-${Date.now()}`],
        workflowExecutionTimeout: '2 minutes',
      },
    );
  } finally {
    await connection.close();
  }
}

/** Wall time per rollout phase, from the first status that showed it to the next phase. */
class PhaseClock {
  private readonly seen: { phase: RolloutPhase; at: number }[] = [];
  observe(status: RolloutStatus): void {
    if (this.seen.at(-1)?.phase !== status.phase)
      this.seen.push({ phase: status.phase, at: Date.now() });
  }
  summary(end: number): string {
    return this.seen
      .filter((s) => !['succeeded', 'partially_succeeded', 'failed', 'cancelled'].includes(s.phase))
      .map(
        (s, i, all) =>
          `${s.phase.replaceAll('_', ' ')} ${formatDuration(((all[i + 1]?.at ?? end) - s.at) / 1000)}`,
      )
      .join(' · ');
  }
}

async function runDemo(options: DemoOptions): Promise<void> {
  const started = Date.now();
  const plan: DemoPlan = options.quick ? QUICK_DEMO : FULL_DEMO;
  say(
    `a full rollout (teacher → distilled student → per-class variants → canaries → waves) across ${DEMO_DEVICES.length} simulated devices`,
  );
  say(`data and sizes: ${plan.summary}`);
  if (!options.quick)
    requireFashionMnist(fashionMnistDir(join(REPO_ROOT, '.edgeforge', 'toolchain.json')));
  const toolchain = loadToolchain();

  // The stack: reuse an `edgeforge up` that is running, or start one for the demo.
  const existing = runningStack();
  let stopStack: (() => Promise<void>) | null = null;
  let endpoints: StackEndpoints;
  if (existing) {
    say(`using the stack that \`edgeforge up\` runs (pid ${existing.pid})`);
    endpoints = existing;
    stopOnSignals(); // Ctrl-C stops the agents; the stack belongs to `edgeforge up`.
  } else {
    const stack = await startStackForCli({
      ui: Boolean(options.keep),
      prometheus: Boolean(options.prometheus),
    });
    endpoints = stack.endpoints;
    stopStack = () => stack.stop();
  }
  const stackSeconds = (Date.now() - started) / 1000;
  say(
    `stack up in ${formatDuration(stackSeconds)}: NATS ${redactUrl(endpoints.natsUrl)}, Temporal ${endpoints.temporalAddress}, control plane ${endpoints.controlPlaneAddress}`,
  );

  const smoke = await stackCheck(endpoints);
  const g = smoke.gpu;
  say(
    g.cuda_available
      ? `training on the GPU: ${g.cuda_device_name}`
      : 'no CUDA GPU found: training runs on the CPU (fine; the demo is sized for a 2-core CPU)',
  );

  // Four simulated devices, each a real `edgeforge agent` process.
  const demoDir = join(dataDir(), 'demo');
  const agentsStarted = Date.now();
  const agents: RunningDemoAgent[] = await startDemoAgents({
    devices: DEMO_DEVICES,
    dir: demoDir,
    controlPlane: endpoints.controlPlaneAddress,
    enrollmentToken: (await readFile(endpoints.enrollmentTokenFile, 'utf8')).trim(),
    logDir: join(endpoints.logDir),
  });
  // Agents stop before the stack, while this process still reads their output.
  onShutdown(() => Promise.all(agents.map((a) => a.process.stop())).then(() => undefined));
  if (endpoints.prometheusAgentTargetsFile)
    await addAgentMetricsTargets(
      endpoints.prometheusAgentTargetsFile,
      agents.map((a) => a.metricsUrl),
    );
  say(
    `${agents.length} agents enrolled in ${formatDuration((Date.now() - agentsStarted) / 1000)} (profile override files in ${join(demoDir, 'agents')}):`,
  );
  process.stderr.write(
    `${textTable(agents.map((a) => ['   ', a.device.name, a.hardwareClass, a.device.description]))}\n`,
  );

  // The teacher: cached from an earlier run with the same config, or trained now and cached.
  const cache = new TeacherCache(
    resolve(
      options.cacheDir ??
        join(
          process.env.EDGEFORGE_CACHE ?? toolchain.cache ?? join(homedir(), '.cache', 'edgeforge'),
          'demo',
        ),
    ),
  );
  const keyParts = { ...plan.teacher, dataset: plan.dataset };
  const cached = options.freshTeacher ? null : await cache.lookup(keyParts);
  const teacher: TeacherConfig = cached
    ? { source: 'checkpoint', architecture: cached.architecture, file: { path: cached.file } }
    : { source: 'train', ...plan.teacher };
  say(
    cached
      ? `teacher: the ${cached.architecture} trained by ${cached.rolloutId} (test accuracy ${formatPercent(cached.testAccuracy)}), from ${cached.file}`
      : `teacher: training ${plan.teacher.architecture} now; it is cached in ${cache.folder(keyParts)} for the next run`,
  );

  const rolloutId = demoRolloutId();
  const spec = plan.build(rolloutId, teacher);
  const admin = adminClient({
    address: endpoints.controlPlaneAddress,
    adminToken: (await readFile(endpoints.adminTokenFile, 'utf8')).trim(),
  });
  const probe = await openActivityProbe(endpoints.temporalAddress);
  const clock = new PhaseClock();
  let caching: Promise<CachedTeacher | null> | null = null;
  let status: RolloutStatus;
  try {
    const response = await admin.startRollout({ specJson: JSON.stringify(spec) });
    say(
      `started rollout ${response.rolloutId} through the control plane's StartRollout (Temporal workflow ${response.workflowId})`,
    );
    const stderr = process.stderr;
    status = await watchRollout(admin, rolloutId, {
      out: stderr,
      live: Boolean(stderr.isTTY) && process.env.TERM !== 'dumb',
      intervalMs: stderr.isTTY ? 1000 : 2000,
      probe,
      onStatus: (s) => {
        clock.observe(s);
        // Cache the teacher as soon as it exists, whatever happens to the rest of the rollout.
        if (!cached && !caching && s.teacher) {
          caching = cache
            .save(endpoints.natsUrl, rolloutId, keyParts, s.teacher)
            .catch((err: unknown) => {
              say(
                `could not cache the teacher (the next run trains it again): ${(err as Error).message}`,
              );
              return null;
            });
        }
      },
    });
  } finally {
    await probe?.close();
    admin.close();
  }
  const saved = await (caching as Promise<CachedTeacher | null> | null);
  if (saved)
    say(
      `cached the teacher: ${saved.file} (${saved.sizeBytes} bytes); the next run skips its training`,
    );

  process.stdout.write(
    options.json
      ? `${JSON.stringify(status, null, 2)}\n`
      : `\n${renderResultTable(rolloutResult(status))}`,
  );
  const files = await writeResultFiles(options.out ?? demoDir, status);
  const ended = Date.now();
  process.stderr.write(
    [
      '',
      `result files:  ${files.markdown}`,
      `               ${files.json}`,
      `               ${files.svg}  (accuracy against on-device p95, every variant on every class)`,
      `wall time:     ${formatDuration((ended - started) / 1000)} in all: stack ${formatDuration(stackSeconds)} · ${clock.summary(ended)}`,
      '',
    ].join('\n'),
  );
  process.exitCode = exitCodeForPhase(status.phase);

  if (options.keep) {
    process.stderr.write(
      [
        'The stack and the agents stay up (Ctrl-C stops them). Explore:',
        ...(endpoints.temporalUiUrl
          ? [
              `  Temporal UI            ${endpoints.temporalUiUrl}/namespaces/default/workflows/decisions-${rolloutId}`,
            ]
          : []),
        `  control plane metrics  ${endpoints.controlPlaneMetricsUrl}`,
        ...(endpoints.prometheusUrl ? [`  Prometheus             ${endpoints.prometheusUrl}`] : []),
        ...agents.map(
          (a) =>
            `  ${a.device.name.padEnd(21)}  ${a.metricsUrl}  (infer: POST ${a.inferenceUrl}/v1/infer)`,
        ),
        `  logs                   ${endpoints.logDir}`,
        'In another shell:',
        `  npx tsx cli/main.ts rollout status ${rolloutId}`,
        '  npx tsx cli/main.ts fleet ls',
        '',
      ].join('\n'),
    );
    await new Promise(() => {});
  }
  await Promise.all(agents.map((a) => a.process.stop()));
  await stopStack?.();
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'start the embedded stack and four simulated devices (real agents with the hardware ' +
        'profiles of an x86 VNNI server, an AVX2 box, a one-thread Raspberry Pi 4 class board and ' +
        'a 1 GiB gateway), run a full rollout on Fashion-MNIST and print the result table',
    )
    .option('--quick', "a tiny rollout on scikit-learn's built-in digits (a minute or two)")
    .option(
      '--keep',
      'leave the stack and the agents running afterwards, to explore (Temporal UI, metrics)',
    )
    .option('--json', 'print the final rollout status as JSON instead of the table')
    .option(
      '--out <dir>',
      'where result.md, result.json and result.svg go (default: <data dir>/demo)',
    )
    .option('--cache-dir <dir>', 'teacher cache (default: ~/.cache/edgeforge/demo)')
    .option(
      '--prometheus',
      'also run Prometheus scraping the stack and the agents (with a stack it starts itself)',
    )
    .option('--fresh-teacher', 'train the teacher even when one is cached (and cache the new one)')
    .addHelpText(
      'after',
      [
        '',
        'The first run trains the teacher and caches its weights; later runs load them (teacher',
        'source "checkpoint") and skip its training. The data dir is EDGEFORGE_DATA_DIR (default',
        '.edgeforge/stack); an `edgeforge up` already running there is used instead of a new stack.',
        '',
        EXIT_CODES_HELP,
      ].join('\n'),
    )
    .action(withExitCodes(runDemo));
}
