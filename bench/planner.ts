/**
 * `npm run bench -- planner`: how close the planner's shortlist comes to the best variant each
 * class could have had. One real rollout on the embedded stack benchmarks EVERY format on a
 * canary of each simulated class (the demo's four devices); then, per class, on those same
 * measurements:
 *   oracle    the lowest on-device p95 of all variants that passed the gates;
 *   planner   the lowest p95 among the planner's shortlist (its top `maxCandidates` + fp32);
 *   int8      always int8 static (MinMax), whatever it costs in accuracy;
 *   fp32      never quantize.
 * Reported as p95 ratios to the oracle, measured in the one run.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { TASK_QUEUES } from '../common/names.js';
import { parseRolloutSpec } from '../common/rollout-spec.js';
import { ROLLOUT_WORKFLOW_TYPE, rolloutWorkflowId, type ClassStatus } from '../common/rollout.js';
import { VARIANTS } from '../common/variants.js';
import type { rolloutWorkflow } from '../workflows/workflows/index.js';
import { startDemoAgents, type RunningDemoAgent } from '../cli/demo/demo-agents.js';
import { DEMO_DEVICES } from '../cli/demo/demo-config.js';
import { loadToolchain, REPO_ROOT, startEmbeddedStack } from '../services/stack/index.js';

const PLANNER_SHORTLIST = 4;
const INT8 = 'int8_static_minmax';

interface PolicyOutcome {
  variant: string | null;
  p95Ms: number | null;
  ratioToOracle: number | null;
  /** Why it is not a usable choice, when it is not (over the budget, failed). */
  problem: string | null;
}

interface ClassResult {
  hardwareClass: string;
  measured: { variant: string; p95Ms: number | null; accuracy: number | null; verdict: string }[];
  oracle: PolicyOutcome;
  planner: PolicyOutcome & { shortlist: string[] };
  alwaysInt8: PolicyOutcome;
  alwaysFp32: PolicyOutcome;
}

const QUALIFIED = new Set(['won', 'slower']);

function policies(cls: ClassStatus): ClassResult {
  const outcomes = cls.candidates.filter((c) => c.verdict !== 'reference');
  const p95 = (variant: string) =>
    outcomes.find((o) => o.variant === variant)?.onDevice?.p95Ms ?? null;
  const best = (variants: string[]) =>
    outcomes
      .filter((o) => variants.includes(o.variant) && QUALIFIED.has(o.verdict))
      .sort((a, b) => a.onDevice!.p95Ms - b.onDevice!.p95Ms)[0]?.variant ?? null;
  const oracleVariant = best(outcomes.map((o) => o.variant));
  const oracleP95 = oracleVariant ? p95(oracleVariant) : null;
  const policy = (variant: string | null): PolicyOutcome => {
    const outcome = outcomes.find((o) => o.variant === variant);
    const value = variant ? p95(variant) : null;
    return {
      variant,
      p95Ms: value,
      ratioToOracle: value !== null && oracleP95 ? value / oracleP95 : null,
      problem: !outcome ? 'not measured' : QUALIFIED.has(outcome.verdict) ? null : outcome.reason,
    };
  };
  // Candidates come in the planner's order; those it would have left out say so.
  const shortlist = [
    ...outcomes
      .filter((o) => o.variant !== 'fp32' && !o.planReasons[0]?.startsWith('requested in the spec'))
      .slice(0, PLANNER_SHORTLIST)
      .map((o) => o.variant),
    'fp32',
  ];
  return {
    hardwareClass: cls.hardwareClass,
    measured: outcomes.map((o) => ({
      variant: o.variant,
      p95Ms: o.onDevice?.devices ? o.onDevice.p95Ms : null,
      accuracy: o.onDevice?.accuracy ?? null,
      verdict: o.verdict,
    })),
    oracle: policy(oracleVariant),
    planner: { ...policy(best(shortlist)), shortlist },
    alwaysInt8: policy(INT8),
    alwaysFp32: policy('fp32'),
  };
}

const ratio = (p: PolicyOutcome) =>
  p.ratioToOracle === null
    ? 'n/a'
    : `${p.ratioToOracle.toFixed(2)}×${p.problem ? ' (breaks a gate)' : ''}`;

function markdown(results: ClassResult[], spec: string): string {
  const rows = results.map(
    (r) =>
      `| ${r.hardwareClass} | ${r.oracle.variant} ${r.oracle.p95Ms?.toFixed(3)} ms | ` +
      `${r.planner.variant} ${ratio(r.planner)} | ${ratio(r.alwaysInt8)} | ${ratio(r.alwaysFp32)} |`,
  );
  return [
    `# Planner benchmark (${new Date().toISOString()})`,
    '',
    spec,
    '',
    '| class | oracle (best measured) | planner | always int8 static | always fp32 |',
    '|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

export async function runPlannerBenchmark(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      dataset: { type: 'string', default: 'fashion_mnist' },
      samples: { type: 'string', default: '6000' },
      runs: { type: 'string', default: '300' },
    },
  });
  const toolchain = loadToolchain();
  const dataDir = await mkdtemp(join(tmpdir(), 'edgeforge-bench-planner-'));
  const say = (m: string) => process.stderr.write(`[planner] ${m}\n`);
  const stack = await startEmbeddedStack({ toolchain, dataDir, onProgress: say });
  let agents: RunningDemoAgent[] = [];
  try {
    const { endpoints } = stack;
    agents = await startDemoAgents({
      devices: DEMO_DEVICES,
      dir: dataDir,
      controlPlane: endpoints.controlPlaneAddress,
      enrollmentToken: (await readFile(endpoints.enrollmentTokenFile, 'utf8')).trim(),
      logDir: endpoints.logDir,
      onProgress: say,
    });
    const dataset =
      values.dataset === 'digits'
        ? { source: 'digits' }
        : { source: 'fashion_mnist', max_train_samples: Number(values.samples) };
    const training = { epochs: 2, batch_size: 128 };
    const spec = parseRolloutSpec({
      rolloutId: `bench-planner-${Date.now()}`,
      dataset,
      source: {
        kind: 'distill',
        teacher: { source: 'train', architecture: 'small_cnn', training },
        student: { architecture: 'small_cnn', distill: { training } },
      },
      accuracyBudget: 0.01,
      formats: VARIANTS.filter((v) => v !== 'fp32'),
      maxCandidates: VARIANTS.length,
      canaries: 1,
      waves: { percents: [100], bakeSeconds: 1, maxFailedShare: 1, maxP95Regression: 100 },
      benchmark: { warmupRuns: 20, minRuns: Number(values.runs), minSeconds: 1, threads: 0 },
      reportTimeoutSeconds: 1800,
    });
    const connection = await Connection.connect({ address: endpoints.temporalAddress });
    say(`rollout ${spec.rolloutId}: every format on a canary of each class`);
    const status = await new Client({ connection }).workflow.execute<typeof rolloutWorkflow>(
      ROLLOUT_WORKFLOW_TYPE,
      {
        taskQueue: TASK_QUEUES.orchestrator,
        workflowId: rolloutWorkflowId(spec.rolloutId),
        args: [spec],
      },
    );
    await connection.close();
    const results = status.classes.map(policies);
    const description =
      `${values.dataset} (${values.dataset === 'digits' ? 'all' : values.samples} training images), ` +
      `small_cnn distilled 2 epochs, accuracy budget 1 point; the demo's four simulated devices ` +
      `(one canary per class, benchmarks of ${values.runs}+ runs and 1+ s, batch 1, the profile's threads); ` +
      'all on one 2-core machine (the agents take turns at timed runs through a shared-host ' +
      'lock), so the classes differ by thread count and by which formats the planner ' +
      'shortlists, not by silicon.';
    const out = join(REPO_ROOT, 'bench-results');
    await mkdir(out, { recursive: true });
    const stamp = new Date().toISOString().replaceAll(':', '-');
    await writeFile(join(out, `planner-${stamp}.json`), JSON.stringify({ spec, results }, null, 2));
    const md = markdown(results, description);
    await writeFile(join(out, `planner-${stamp}.md`), md);
    process.stdout.write(md);
  } finally {
    await Promise.all(agents.map((a) => a.process.stop()));
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
