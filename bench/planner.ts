/**
 * `npm run bench -- planner`: how close the planner's shortlist comes to the best variant each
 * class could have had. One real rollout on the embedded stack benchmarks EVERY format on a
 * canary of each simulated class (the demo's four devices), in interleaved rounds; then, per
 * class, on those same measurements:
 *   oracle    the lowest on-device p95 of all variants that passed the gates;
 *   planner   what the class workflow's choice (workflows/decisions/choose.ts, ties within the
 *             measurement noise included) picks from the planner's shortlist (its top
 *             `maxCandidates` + fp32);
 *   int8      always int8 static (MinMax), whatever it costs in accuracy;
 *   fp32      never quantize.
 * Reported as p95 ratios to the oracle, measured in the one run. The held-out column guards
 * against the oracle being merely the luckiest measurement: the planner chooses on the odd
 * rounds and is judged, with the oracle, on the even rounds it never saw.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { TASK_QUEUES } from '../common/names.js';
import { parseRolloutSpec } from '../common/rollout-spec.js';
import {
  ROLLOUT_QUERIES,
  ROLLOUT_WORKFLOW_TYPE,
  rolloutWorkflowId,
  type ClassStatus,
  type RolloutStatus,
} from '../common/rollout.js';
import { median } from '../common/median.js';
import { VARIANTS } from '../common/variants.js';
import {
  pickAmongQualified,
  roundNoise,
  type QualifiedVariant,
} from '../workflows/decisions/choose.js';
import type { rolloutWorkflow } from '../workflows/definitions/index.js';
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

interface HeldOut {
  variant: string;
  oracle: string;
  ratioToOracle: number;
}

interface ClassResult {
  hardwareClass: string;
  measured: {
    variant: string;
    p95Ms: number | null;
    p95NoiseMs: number | null;
    roundP95Ms: number[];
    accuracy: number | null;
    verdict: string;
  }[];
  oracle: PolicyOutcome;
  planner: PolicyOutcome & { shortlist: string[] };
  heldOut: HeldOut | null;
  alwaysInt8: PolicyOutcome;
  alwaysFp32: PolicyOutcome;
}

const QUALIFIED = new Set(['won', 'slower']);

type Outcome = ClassStatus['candidates'][number];

/** A qualified outcome as the choice sees it, on all rounds or on the rounds `keep` selects. */
function asQualified(o: Outcome, keep?: (round: number) => boolean): QualifiedVariant {
  const rounds = o.onDevice!.roundP95Ms.filter((_, i) => keep?.(i) ?? true);
  return {
    variant: o.variant,
    p95: keep ? median(rounds)! : o.onDevice!.p95Ms,
    noise: keep ? roundNoise(rounds) : o.onDevice!.p95NoiseMs,
    size: o.sizeBytes ?? Infinity,
    accuracy: o.onDevice!.accuracy,
  };
}

function policies(cls: ClassStatus): ClassResult {
  const outcomes = cls.candidates.filter((c) => c.verdict !== 'reference');
  const qualified = outcomes.filter((o) => QUALIFIED.has(o.verdict));
  const p95 = (variant: string) =>
    outcomes.find((o) => o.variant === variant)?.onDevice?.p95Ms ?? null;
  const oracleVariant =
    [...qualified].sort((a, b) => a.onDevice!.p95Ms - b.onDevice!.p95Ms)[0]?.variant ?? null;
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
  const inShortlist = qualified.filter((o) => shortlist.includes(o.variant));
  const plannerPick = pickAmongQualified(inShortlist.map((o) => asQualified(o))).best;
  return {
    hardwareClass: cls.hardwareClass,
    measured: outcomes.map((o) => ({
      variant: o.variant,
      p95Ms: o.onDevice?.devices ? o.onDevice.p95Ms : null,
      p95NoiseMs: o.onDevice?.devices ? o.onDevice.p95NoiseMs : null,
      roundP95Ms: o.onDevice?.roundP95Ms ?? [],
      accuracy: o.onDevice?.accuracy ?? null,
      verdict: o.verdict,
    })),
    oracle: policy(oracleVariant),
    planner: { ...policy(plannerPick?.variant ?? null), shortlist },
    heldOut: heldOut(qualified, inShortlist),
    alwaysInt8: policy(INT8),
    alwaysFp32: policy('fp32'),
  };
}

/**
 * The planner's choice made on the odd rounds (1st, 3rd, ...), judged on the even ones against
 * the best of every qualified variant there. Null with fewer than two rounds.
 */
function heldOut(qualified: Outcome[], inShortlist: Outcome[]): HeldOut | null {
  const rounds = Math.min(...qualified.map((o) => o.onDevice!.roundP95Ms.length));
  if (!(rounds >= 2) || inShortlist.length === 0) return null;
  const choose = (i: number) => i % 2 === 0;
  const judge = (i: number) => i % 2 === 1;
  const pick = pickAmongQualified(inShortlist.map((o) => asQualified(o, choose))).best!;
  const judged = qualified.map((o) => asQualified(o, judge));
  const oracle = judged.reduce((a, b) => (b.p95 < a.p95 ? b : a));
  const picked = judged.find((q) => q.variant === pick.variant)!;
  return {
    variant: pick.variant,
    oracle: oracle.variant,
    ratioToOracle: picked.p95 / oracle.p95,
  };
}

const ratio = (p: PolicyOutcome) =>
  p.ratioToOracle === null
    ? 'n/a'
    : `${p.ratioToOracle.toFixed(2)}×${p.problem ? ' (breaks a gate)' : ''}`;

function markdown(results: ClassResult[], spec: string): string {
  const noise = (r: ClassResult) =>
    r.measured.find((m) => m.variant === r.oracle.variant)?.p95NoiseMs ?? 0;
  const rows = results.map(
    (r) =>
      `| ${r.hardwareClass} | ${r.oracle.variant} ${r.oracle.p95Ms?.toFixed(3)} ± ${noise(r).toFixed(3)} ms | ` +
      `${r.planner.variant} ${ratio(r.planner)} | ` +
      (r.heldOut
        ? `${r.heldOut.variant} ${r.heldOut.ratioToOracle.toFixed(2)}× (oracle there: ${r.heldOut.oracle})`
        : 'n/a') +
      ` | ${ratio(r.alwaysInt8)} | ${ratio(r.alwaysFp32)} |`,
  );
  return [
    `# Planner benchmark (${new Date().toISOString()})`,
    '',
    spec,
    '',
    '| class | oracle (best measured, p95 ± round noise) | planner | planner, held-out rounds | always int8 static | always fp32 |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

/** Writes the policies' table and the whole rollout status (to analyze again) to bench-results/. */
async function report(run: { description: string; status: RolloutStatus }): Promise<void> {
  const results = run.status.classes.map(policies);
  const out = join(REPO_ROOT, 'bench-results');
  await mkdir(out, { recursive: true });
  const stamp = new Date().toISOString().replaceAll(':', '-');
  await writeFile(join(out, `planner-${stamp}.json`), JSON.stringify({ ...run, results }, null, 2));
  const md = markdown(results, run.description);
  await writeFile(join(out, `planner-${stamp}.md`), md);
  process.stdout.write(md);
}

export async function runPlannerBenchmark(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      /** A planner-*.json of an earlier run: recompute its table with this code's policies. */
      analyze: { type: 'string' },
      dataset: { type: 'string', default: 'fashion_mnist' },
      samples: { type: 'string', default: '6000' },
      runs: { type: 'string', default: '400' },
      rounds: { type: 'string', default: '4' },
      teacher: { type: 'string', default: 'small_cnn' },
      student: { type: 'string', default: 'small_cnn' },
    },
  });
  if (values.analyze) {
    const saved = JSON.parse(await readFile(values.analyze, 'utf8')) as {
      description: string;
      status: RolloutStatus;
    };
    await report({ ...saved, description: `${saved.description} (analyzed again)` });
    return;
  }
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
        teacher: { source: 'train', architecture: values.teacher, training },
        student: { architecture: values.student, distill: { training } },
      },
      accuracyBudget: 0.01,
      formats: VARIANTS.filter((v) => v !== 'fp32'),
      maxCandidates: VARIANTS.length,
      canaries: 1,
      waves: { percents: [100], bakeSeconds: 1, maxFailedShare: 1, maxP95Regression: 100 },
      benchmark: {
        warmupRuns: 20,
        minRuns: Number(values.runs),
        minSeconds: 1,
        threads: 0,
        rounds: Number(values.rounds),
      },
      reportTimeoutSeconds: 1800,
    });
    const connection = await Connection.connect({ address: endpoints.temporalAddress });
    say(`rollout ${spec.rolloutId}: every format on a canary of each class`);
    const handle = await new Client({ connection }).workflow.start<typeof rolloutWorkflow>(
      ROLLOUT_WORKFLOW_TYPE,
      {
        taskQueue: TASK_QUEUES.orchestrator,
        workflowId: rolloutWorkflowId(spec.rolloutId),
        args: [spec],
      },
    );
    const progress = setInterval(() => {
      handle
        .query<RolloutStatus>(ROLLOUT_QUERIES.status)
        .then((s) =>
          say(`${s.phase}: ${s.classes.map((c) => `${c.hardwareClass} ${c.phase}`).join(', ')}`),
        )
        .catch(() => {});
    }, 30_000);
    const status = await handle.result().finally(() => clearInterval(progress));
    await connection.close();
    const description =
      `${values.dataset} (${values.dataset === 'digits' ? 'all' : values.samples} training images), ` +
      `teacher ${values.teacher}, student ${values.student} distilled 2 epochs, accuracy budget ` +
      `1 point; the demo's four simulated devices (one canary per class, benchmarks of ` +
      `${values.runs}+ runs and 1+ s in ${values.rounds} interleaved rounds, batch 1, the ` +
      `profile's threads); ` +
      'all on one 2-core machine (the agents take turns at timed runs through a shared-host ' +
      'lock), so the classes differ by thread count and by which formats the planner ' +
      'shortlists, not by silicon.';
    await report({ description, status });
  } finally {
    await Promise.all(agents.map((a) => a.process.stop()));
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
