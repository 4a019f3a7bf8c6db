/**
 * `npm run bench -- rollout-scale --devices 1000,10000`: does a rollout's cost stay flat in the
 * fleet's size? For each N, on a fresh stack of real processes on 127.0.0.1 (nats-server with
 * JetStream, the Temporal dev server, the control plane, the gpu worker, the orchestrator
 * worker; bench/rollout-scale/stack.ts), N simulated devices (bench/fleet-sim) in two hardware
 * classes enroll, heartbeat and watch their desired state; then a real rollout (digits,
 * small_cnn teacher and student, canaries 2 per class, waves [10, 50, 100]) runs to the end.
 * Measured per N: each phase's wall time; every workflow's history length and size
 * (DescribeWorkflowExecution); desired-state KV writes per wave (the stream's own count, every
 * write as nats-server saw it, and the write activities' own counts from the histories);
 * nats-server's consumers (peak) and connections; the control plane's CPU per device report.
 * Then two scenarios: 200 devices enroll after the rollout (how many heartbeat intervals until
 * they serve their class's model), and a second rollout with 20% of the devices silent (its
 * first wave must fail the quorum and be rolled back, its cohorts' tracks back on the earlier
 * release). Results: bench-results/rollout-scale-<time>.json and .md; docs/scale.md reads them.
 *
 * nats-server runs deploy/nats/dev.conf as deployed (a copy, with the monitoring port added),
 * which lifts JetStream's default limit of 1,000 consumers per stream (nats-server 2.15): one
 * watch per device reached it at 1,000 devices. `--nats-default-max-consumers N` sets it to N
 * (`1000`: the server's default, as deployed before; `unlimited`).
 * `--census-cost 10000,100000,1000000` only times census rounds (no stack).
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Kvm } from '@nats-io/kv';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { DesiredState } from '../common/desired-state.js';
import { deviceDesiredKey, KV_BUCKETS, TASK_QUEUES, trackKey } from '../common/names.js';
import { connectNats, type NatsConnection } from '../common/nats.js';
import { parseRolloutSpec } from '../common/rollout-spec.js';
import {
  classWorkflowId,
  ROLLOUT_QUERIES,
  ROLLOUT_WORKFLOW_TYPE,
  rolloutWorkflowId,
  type RolloutSpec,
  type RolloutStatus,
} from '../common/rollout.js';
import type { VariantName } from '../common/variants.js';
import type { rolloutWorkflow } from '../workflows/definitions/index.js';
import { loadToolchain, REPO_ROOT } from '../services/stack/index.js';
import {
  FLEET_PROFILES,
  FleetSim,
  type DeviceOutcome,
  type DeviceSpec,
  type SimCounters,
} from './fleet-sim/fleet-sim.js';
import {
  CensusReader,
  controlPlaneCounts,
  DESIRED_STREAM,
  DesiredWrites,
  jetstreamManager,
  sampleNats,
  streamConfigMaxConsumers,
  streamState,
  workflowSize,
  type DesiredWrite,
  type NatsSample,
  type WorkflowSize,
} from './rollout-scale/observe.js';
import { censusCost } from './rollout-scale/census-cost.js';
import { cpuSnapshot, rssMiB, startScaleStack, type ScaleStack } from './rollout-scale/stack.js';

const PROFILE_NAMES = Object.keys(FLEET_PROFILES);
const POLL_MS = 2_000;
const PROGRESS_MS = 10_000;

interface Options {
  intervalFor: (n: number) => number;
  threads: number;
  bakeFor: (interval: number) => number;
  reportTimeoutFor: (n: number) => number;
  silentReportTimeoutFor: (n: number) => number;
  formats: VariantName[];
  newDevices: number;
  silentShare: number;
  skipNewDevices: boolean;
  skipSilent: boolean;
  /** Unset: the product's deploy/nats/dev.conf as it is. */
  natsDefaultMaxConsumers: number | undefined;
  keepData: boolean;
  out: string;
  stamp: string;
}

// --- cleanup on Ctrl-C ------------------------------------------------------------------------

const cleanups: (() => Promise<void>)[] = [];
let interrupted = false;

function onInterrupt(signal: NodeJS.Signals): void {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write(`\n[rollout-scale] ${signal}: stopping everything it started\n`);
  void (async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
    process.exit(130);
  })();
}

async function withCleanup<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  cleanups.push(cleanup);
  try {
    return await body();
  } finally {
    const at = cleanups.indexOf(cleanup);
    if (at >= 0) cleanups.splice(at, 1);
    await cleanup();
  }
}

function check(): void {
  if (interrupted) throw new Error('interrupted');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const secondsSince = (t: number) => round((Date.now() - t) / 1000);

// --- one rollout, observed --------------------------------------------------------------------

interface Context {
  n: number;
  interval: number;
  stack: ScaleStack;
  nc: NatsConnection;
  jsm: Awaited<ReturnType<typeof jetstreamManager>>;
  client: Client;
  sim: FleetSim;
  census: CensusReader;
  writes: DesiredWrites;
  say: (m: string) => void;
}

interface Transition {
  what: string;
  at: number;
  desiredLastSeq: number;
}

interface WaveResult {
  index: number;
  cohorts: { from: number; to: number } | null;
  devices: number;
  state: string;
  activated: number;
  failed: number;
  unresponsive: number;
  servingP95Ms: number | null;
  reason: string;
  /** Between the status queries (every 2 s) that first saw the wave activating and baking. */
  activatingSeconds: number | null;
  /**
   * From the first desired-state write of the wave (nats-server's view) until the last of its
   * devices' ACTIVATED reports was acknowledged (the simulator's view).
   */
  activationSeconds: number | null;
  /** Devices of the wave whose ACTIVATED report of the target the control plane acknowledged. */
  simActivated: number;
  bakingSeconds: number | null;
  /** Writes nats-server received for this wave: track entries (or canaries' own entries). */
  kvWrites: number;
  /** What the write activities say they wrote for it (from the class workflow's history). */
  activityWrites: number;
}

interface ClassResult {
  hardwareClass: string;
  phase: string;
  reason: string;
  chosen: { variant: string; sha256: string; version: number } | null;
  devicesTotal: number;
  devicesDone: number;
  canaries: string[];
  waves: WaveResult[];
  kvWrites: {
    canaryEntries: { benchmark: number; run: number; delete: number };
    trackRuns: number;
    trackRestores: number;
  };
}

interface RolloutRun {
  rolloutId: string;
  phase: string;
  detail: string;
  error: string | null;
  wallSeconds: number;
  /** Wall seconds of each rollout phase, in order (from a status query every 2 s). */
  phases: { phase: string; seconds: number }[];
  classes: ClassResult[];
  workflows: WorkflowSize[];
  kv: {
    /** Messages the desired-state stream took in during the rollout (its last sequence). */
    streamMessagesAdded: number;
    /** Writes nats-server received on the bucket's subjects during the rollout. */
    writesSeen: number;
  };
  nats: {
    peakConsumers: number;
    peakDesiredConsumers: number;
    peakModelConsumers: number;
    /** While a class is rolling out (canaries' activation to the last wave). */
    peakDesiredConsumersDuringWaves: number;
    peakConnections: number;
    apiErrors: number;
    desiredStreamMaxConsumers: number;
  };
  cpu: {
    seconds: Record<string, number>;
    controlPlaneCalls: Record<string, number>;
    deviceReports: number;
    controlPlaneCpuMsPerReport: number;
    controlPlaneCpuPercent: number;
    controlPlanePeakRssMiB: number;
    censusRounds: number;
    /** Wall time of one census round (edgeforge_census_round_seconds). */
    censusRoundMs: number;
  };
  sim: SimCounters;
  transitions: Transition[];
}

function diffCounters(after: SimCounters, before: SimCounters): SimCounters {
  const out = { ...after };
  for (const k of Object.keys(out) as (keyof SimCounters)[]) {
    if (k !== 'watchesRunning') out[k] = after[k] - before[k];
  }
  return out;
}

async function runRollout(ctx: Context, spec: RolloutSpec, label: string): Promise<RolloutRun> {
  const { stack, client, sim, say } = ctx;
  const started = Date.now();
  const cpuBefore = await cpuSnapshot(stack.pids);
  const callsBefore = await controlPlaneCounts(stack.controlPlaneMetricsUrl);
  const seqBefore = (await streamState(ctx.jsm, DESIRED_STREAM)).lastSeq;
  const simBefore = sim.counters();
  const outcomes: DeviceOutcome[] = [];
  const off = sim.onOutcome((x) => {
    if (x.rolloutId === spec.rolloutId) outcomes.push(x);
  });
  say(`${label}: rollout ${spec.rolloutId}`);
  const handle: WorkflowHandle<typeof rolloutWorkflow> = await client.workflow.start<
    typeof rolloutWorkflow
  >(ROLLOUT_WORKFLOW_TYPE, {
    taskQueue: TASK_QUEUES.orchestrator,
    workflowId: rolloutWorkflowId(spec.rolloutId),
    args: [spec],
  });
  let finished = false;
  const result = handle.result().then(
    (status) => ({ status, error: null as string | null }),
    (err: unknown) => ({ status: null, error: (err as Error).message }),
  );
  void result.finally(() => (finished = true));

  const transitions: Transition[] = [];
  const seen = new Set<string>();
  const samples: NatsSample[] = [];
  let peakDuringWaves = 0;
  let peakRss = 0;
  let lastProgress = 0;
  let last: RolloutStatus | null = null;
  const mark = async (what: string) => {
    if (seen.has(what)) return;
    seen.add(what);
    const desiredLastSeq = await streamState(ctx.jsm, DESIRED_STREAM)
      .then((s) => s.lastSeq)
      .catch(() => NaN);
    transitions.push({ what, at: Date.now(), desiredLastSeq });
  };
  while (!finished) {
    check();
    try {
      const status = await handle.query<RolloutStatus>(ROLLOUT_QUERIES.status);
      last = status;
      await mark(`rollout ${status.phase}`);
      for (const c of status.classes) {
        await mark(`${c.hardwareClass} ${c.phase}`);
        for (const w of c.waves) await mark(`${c.hardwareClass} wave ${w.index} ${w.state}`);
      }
    } catch {
      // Not started yet, or finishing: the next poll tells.
    }
    try {
      const sample = await sampleNats(stack.natsMonitorUrl);
      samples.push(sample);
      if (last?.classes.some((c) => c.phase === 'rolling_out')) {
        peakDuringWaves = Math.max(peakDuringWaves, sample.desiredConsumers);
      }
    } catch {
      // The monitor answers again next time.
    }
    peakRss = Math.max(peakRss, await rssMiB(stack.pids['control-plane']));
    if (Date.now() - lastProgress >= PROGRESS_MS) {
      lastProgress = Date.now();
      say(`${label} ${secondsSince(started)} s: ${await progressLine(ctx, last)}`);
    }
    await Promise.race([result, sleep(POLL_MS)]);
  }
  const { status: final, error } = await result;
  const status = final ?? last;
  if (status) {
    await mark(`rollout ${status.phase}`);
    for (const c of status.classes) {
      await mark(`${c.hardwareClass} ${c.phase}`);
      for (const w of c.waves) await mark(`${c.hardwareClass} wave ${w.index} ${w.state}`);
    }
  }
  const ended = Date.now();
  const cpuAfter = await cpuSnapshot(stack.pids);
  const callsAfter = await controlPlaneCounts(stack.controlPlaneMetricsUrl);
  const seqAfter = (await streamState(ctx.jsm, DESIRED_STREAM)).lastSeq;
  // Outcomes and counters reach the main thread within a second.
  await sleep(1_500);
  off();
  const simDelta = diffCounters(sim.counters(), simBefore);
  const cpu = Object.fromEntries(
    Object.keys(cpuAfter).map((k) => [k, round(cpuAfter[k]! - cpuBefore[k]!, 2)]),
  );
  const calls = Object.fromEntries(
    Object.keys(callsAfter.calls).map((m) => [
      m,
      callsAfter.calls[m]! - (callsBefore.calls[m] ?? 0),
    ]),
  );
  const deviceReports =
    (calls.Heartbeat ?? 0) + (calls.ReportStatus ?? 0) + (calls.ReportBenchmark ?? 0);
  const cpCpu = cpu['control-plane']!;
  const censusRounds = callsAfter.censusRounds - callsBefore.censusRounds;
  const censusSeconds = callsAfter.censusSeconds - callsBefore.censusSeconds;

  const workflowIds = [
    rolloutWorkflowId(spec.rolloutId),
    ...(status?.classes ?? []).map((c) => classWorkflowId(spec.rolloutId, c.hardwareClass)),
  ];
  const workflows = await Promise.all(workflowIds.map((id) => workflowSize(client, id)));
  const writes = ctx.writes.writes.filter((w) => w.at >= started && w.at <= ended + 1_000);
  const classes = (status?.classes ?? []).map((c) =>
    classResult(ctx, c, { transitions, writes, workflows, outcomes }, spec.rolloutId),
  );
  const wallSeconds = round((ended - started) / 1000);
  const phases = phaseTimes(transitions, 'rollout ', ended);
  return {
    rolloutId: spec.rolloutId,
    phase: status?.phase ?? 'unknown',
    detail: status?.detail ?? '',
    error: error ?? status?.error ?? null,
    wallSeconds,
    phases,
    classes,
    workflows,
    kv: { streamMessagesAdded: seqAfter - seqBefore, writesSeen: writes.length },
    nats: {
      peakConsumers: Math.max(0, ...samples.map((s) => s.consumers)),
      peakDesiredConsumers: Math.max(0, ...samples.map((s) => s.desiredConsumers)),
      peakModelConsumers: Math.max(0, ...samples.map((s) => s.modelConsumers)),
      peakDesiredConsumersDuringWaves: peakDuringWaves,
      peakConnections: Math.max(0, ...samples.map((s) => s.connections)),
      apiErrors: (samples.at(-1)?.apiErrors ?? 0) - (samples[0]?.apiErrors ?? 0),
      desiredStreamMaxConsumers: await streamConfigMaxConsumers(ctx.jsm, DESIRED_STREAM),
    },
    cpu: {
      seconds: cpu,
      controlPlaneCalls: calls,
      deviceReports,
      controlPlaneCpuMsPerReport: round((1000 * cpCpu) / Math.max(1, deviceReports), 3),
      controlPlaneCpuPercent: round((100 * cpCpu) / wallSeconds),
      controlPlanePeakRssMiB: round(peakRss),
      censusRounds,
      censusRoundMs: round((1000 * censusSeconds) / Math.max(1, censusRounds), 2),
    },
    sim: simDelta,
    transitions,
  };
}

/** Seconds between a prefix's transitions ("rollout distilling" → the next "rollout …"). */
function phaseTimes(transitions: Transition[], prefix: string, end: number) {
  const mine = transitions.filter((t) => t.what.startsWith(prefix));
  return mine.map((t, i) => ({
    phase: t.what.slice(prefix.length),
    seconds: round(((mine[i + 1]?.at ?? end) - t.at) / 1000),
  }));
}

function classResult(
  ctx: Context,
  c: RolloutStatus['classes'][number],
  seen: {
    transitions: Transition[];
    writes: DesiredWrite[];
    workflows: WorkflowSize[];
    outcomes: DeviceOutcome[];
  },
  rolloutId: string,
): ClassResult {
  const { transitions, writes, workflows, outcomes } = seen;
  const at = (what: string) => transitions.find((t) => t.what === what)?.at;
  const classIds = new Set(
    [...ctx.sim.devices.values()]
      .filter((d) => d.hardwareClass === c.hardwareClass)
      .map((d) => d.deviceId),
  );
  const own = writes.filter(
    (w) => w.key.startsWith('device.') && classIds.has(w.key.slice('device.'.length)),
  );
  const prefix = `track.${c.hardwareClass}.`;
  const tracks = writes.filter((w) => w.key.startsWith(prefix));
  const target = c.chosen?.sha256;
  const cohortOfKey = (w: DesiredWrite) => Number(w.key.slice(prefix.length));
  const history = workflows.find(
    (w) => w.workflowId === classWorkflowId(rolloutId, c.hardwareClass),
  );
  const activityWrites = history?.writes ?? [];
  const canaries = new Set(c.canaries);
  const waves: WaveResult[] = c.waves.map((w, i) => {
    const previousDone =
      i === 0
        ? undefined
        : (at(`${c.hardwareClass} wave ${i - 1} passed`) ??
          at(`${c.hardwareClass} wave ${i - 1} rolled_back`));
    // A wave that activated within one poll was never seen activating: it started when the
    // wave before it ended.
    const activating = at(`${c.hardwareClass} wave ${w.index} activating`) ?? previousDone;
    const baking = at(`${c.hardwareClass} wave ${w.index} baking`);
    const done =
      at(`${c.hardwareClass} wave ${w.index} passed`) ??
      at(`${c.hardwareClass} wave ${w.index} rolled_back`);
    const range = w.cohorts;
    const kvWrites = range
      ? tracks.filter(
          (t) => t.sha256 === target && cohortOfKey(t) >= range.from && cohortOfKey(t) < range.to,
        ).length
      : own.filter((o) => o.kind === 'run' && o.sha256 === target).length;
    const waveWrites = range
      ? tracks.filter(
          (t) => t.sha256 === target && cohortOfKey(t) >= range.from && cohortOfKey(t) < range.to,
        )
      : own.filter((o) => o.kind === 'run' && o.sha256 === target);
    const inWave = (index: number) => {
      const d = ctx.sim.devices.get(index);
      if (!d || d.hardwareClass !== c.hardwareClass) return false;
      if (!range) return canaries.has(d.deviceId);
      return !canaries.has(d.deviceId) && d.cohort >= range.from && d.cohort < range.to;
    };
    const firstWrite = waveWrites[0]?.at;
    const activations = new Map<number, number>();
    for (const o of outcomes) {
      if (o.event !== 'activated' || o.sha256 !== target || !inWave(o.index)) continue;
      if (firstWrite && o.at >= firstWrite && !activations.has(o.index)) {
        activations.set(o.index, o.at);
      }
    }
    const lastActivation = Math.max(0, ...activations.values());
    const fromActivities = range
      ? activityWrites
          .filter(
            (a) =>
              a.activity === 'writeTracks' &&
              a.target.startsWith(`cohorts ${range.from}..${range.to - 1}:`),
          )
          .reduce((n, a) => n + a.written, 0)
      : activityWrites
          .filter((a) => a.activity === 'writeDeviceStates' && a.target.endsWith(': run'))
          .reduce((n, a) => n + a.written, 0);
    return {
      index: w.index,
      cohorts: w.cohorts,
      devices: w.devices,
      state: w.state,
      activated: w.activated,
      failed: w.failed,
      unresponsive: w.unresponsive,
      servingP95Ms: w.servingP95Ms,
      reason: w.reason ?? '',
      activatingSeconds: activating && baking ? round((baking - activating) / 1000) : null,
      activationSeconds:
        firstWrite && activations.size > 0 ? round((lastActivation - firstWrite) / 1000, 2) : null,
      simActivated: activations.size,
      bakingSeconds: baking && done ? round((done - baking) / 1000) : null,
      kvWrites,
      activityWrites: fromActivities,
    };
  });
  return {
    hardwareClass: c.hardwareClass,
    phase: c.phase,
    reason: c.reason,
    chosen: c.chosen
      ? { variant: c.chosen.variant, sha256: c.chosen.sha256, version: c.chosen.version }
      : null,
    devicesTotal: c.devicesTotal,
    devicesDone: c.devicesDone,
    canaries: c.canaries,
    waves,
    kvWrites: {
      canaryEntries: {
        benchmark: own.filter((o) => o.kind === 'benchmark').length,
        run: own.filter((o) => o.kind === 'run').length,
        delete: own.filter((o) => o.operation !== 'PUT').length,
      },
      trackRuns: tracks.filter((t) => t.sha256 === target).length,
      trackRestores: tracks.filter((t) => t.sha256 !== target).length,
    },
  };
}

/** One line: the rollout's phase, each class's wave and what its census counts. */
async function progressLine(ctx: Context, status: RolloutStatus | null): Promise<string> {
  const c = ctx.sim.counters();
  const sim = `sim: ${c.heartbeats} beats, ${c.statusReports} status, ${c.benchmarkReports} bench, ${c.downloads} downloads, ${c.watchesRunning} watches`;
  if (!status) return `starting; ${sim}`;
  const classes = await Promise.all(
    status.classes.map(async (cls) => {
      const wave = [...cls.waves].reverse().find((w) => w.state !== 'pending');
      let counts = '';
      if (wave?.cohorts && cls.phase === 'rolling_out') {
        const census = await ctx.census.read(status.rolloutId, cls.hardwareClass).catch(() => null);
        if (census) {
          const inRange = census.cohorts.slice(wave.cohorts.from, wave.cohorts.to);
          const activated = inRange.reduce((n, x) => n + (x.events.activated ?? 0), 0);
          const serving = inRange.reduce((n, x) => n + x.servingTarget, 0);
          counts = ` ${activated} activated, ${serving} serving of ${wave.devices}`;
        }
      }
      const w = wave ? ` wave ${wave.index} ${wave.state}${counts}` : '';
      return `${cls.hardwareClass.split('-').slice(0, 2).join('-')} ${cls.phase}${w}`;
    }),
  );
  return `${status.phase}${status.detail ? ` (${status.detail.slice(0, 60)})` : ''}; ${classes.join('; ')}; ${sim}`;
}

// --- the spec ---------------------------------------------------------------------------------

function scaleSpec(
  rolloutId: string,
  o: {
    bakeSeconds: number;
    reportTimeoutSeconds: number;
    formats: VariantName[];
    seed?: number;
    canaryDevices?: string[];
  },
): RolloutSpec {
  // As test/helpers/rollouts.ts tinySpecJson builds it (digits, small_cnn, 2 epochs), with the
  // bench's waves, canaries and timeouts.
  const training = { epochs: 2, batch_size: 64, ...(o.seed !== undefined ? { seed: o.seed } : {}) };
  return parseRolloutSpec({
    rolloutId,
    dataset: { source: 'digits' },
    source: {
      kind: 'distill',
      teacher: { source: 'train', architecture: 'small_cnn', training },
      student: { architecture: 'small_cnn', distill: { training } },
    },
    accuracyBudget: 0.05,
    formats: o.formats,
    maxCandidates: 2,
    canaries: 2,
    ...(o.canaryDevices ? { canaryDevices: o.canaryDevices } : {}),
    waves: { percents: [10, 50, 100], bakeSeconds: o.bakeSeconds },
    benchmark: { warmupRuns: 2, minRuns: 20, minSeconds: 0.05, threads: 1 },
    reportTimeoutSeconds: o.reportTimeoutSeconds,
  });
}

// --- the fleet at rest ------------------------------------------------------------------------

interface SteadyState {
  seconds: number;
  heartbeats: number;
  heartbeatsPerSecond: number;
  cpuSeconds: Record<string, number>;
  controlPlaneCpuMsPerHeartbeat: number;
  controlPlaneCpuPercent: number;
  natsServerCpuPercent: number;
  /** nats-server CPU per device and second at rest (its heartbeat writes, its idle consumer). */
  natsServerCpuMicrosPerDeviceSecond: number;
  controlPlaneRssMiB: number;
  natsServerRssMiB: number;
  nats: NatsSample | null;
}

async function steadyState(ctx: Context, seconds: number): Promise<SteadyState> {
  const { stack } = ctx;
  const cpuBefore = await cpuSnapshot(stack.pids);
  const callsBefore = await controlPlaneCounts(stack.controlPlaneMetricsUrl);
  const started = Date.now();
  await sleep(seconds * 1000);
  check();
  const cpuAfter = await cpuSnapshot(stack.pids);
  const callsAfter = await controlPlaneCounts(stack.controlPlaneMetricsUrl);
  const elapsed = (Date.now() - started) / 1000;
  const cpu = Object.fromEntries(
    Object.keys(cpuAfter).map((k) => [k, round(cpuAfter[k]! - cpuBefore[k]!, 2)]),
  );
  const heartbeats = (callsAfter.calls.Heartbeat ?? 0) - (callsBefore.calls.Heartbeat ?? 0);
  const devices = ctx.sim.devices.size;
  return {
    seconds: round(elapsed),
    heartbeats,
    heartbeatsPerSecond: round(heartbeats / elapsed),
    cpuSeconds: cpu,
    controlPlaneCpuMsPerHeartbeat: round(
      (1000 * cpu['control-plane']!) / Math.max(1, heartbeats),
      3,
    ),
    controlPlaneCpuPercent: round((100 * cpu['control-plane']!) / elapsed),
    natsServerCpuPercent: round((100 * cpu['nats-server']!) / elapsed),
    natsServerCpuMicrosPerDeviceSecond: round((1e6 * cpu['nats-server']!) / (devices * elapsed), 2),
    controlPlaneRssMiB: round(await rssMiB(stack.pids['control-plane'])),
    natsServerRssMiB: round(await rssMiB(stack.pids['nats-server'])),
    nats: await sampleNats(stack.natsMonitorUrl).catch(() => null),
  };
}

// --- scenario (a): devices that enroll after the rollout --------------------------------------

interface NewDevicesResult {
  count: number;
  enrolled: number;
  enrollSeconds: number;
  /** Devices whose ACTIVATED report of their class's model the control plane acknowledged. */
  serving: number;
  /** Seconds from the start of their enrollment until the last (p50) of them served. */
  secondsMax: number | null;
  secondsP50: number | null;
  intervalsMax: number | null;
  goalWithinTwoIntervals: boolean;
  /** Devices the registry shows serving the class's model at the end. */
  registryServing: number;
  watchesRunningAfter: number;
  timedOut: boolean;
  errors: string[];
}

async function newDevices(
  ctx: Context,
  first: number,
  count: number,
  expected: Map<string, string>,
): Promise<NewDevicesResult> {
  const { sim, say, interval } = ctx;
  const outcomes: DeviceOutcome[] = [];
  const off = sim.onOutcome((o) => {
    if (o.index >= first && o.event === 'activated') outcomes.push(o);
  });
  const specs = deviceSpecs(first, count);
  const started = Date.now();
  say(`new devices: ${count} enroll after the rollout`);
  const enrolled = await sim.enroll(specs);
  const enrollSeconds = secondsSince(started);
  const servingAt = () => {
    const at = new Map<number, number>();
    for (const o of outcomes) {
      const d = sim.devices.get(o.index);
      if (d && expected.get(d.hardwareClass) === o.sha256 && !at.has(o.index))
        at.set(o.index, o.at);
    }
    return at;
  };
  const deadline = started + Math.max(120_000, 10 * interval * 1000);
  let lastSay = Date.now();
  while (servingAt().size < enrolled.length && Date.now() < deadline) {
    check();
    await sleep(500);
    if (Date.now() - lastSay >= 5_000) {
      lastSay = Date.now();
      say(
        `new devices ${secondsSince(started)} s: ${servingAt().size}/${enrolled.length} serve their class's model; watches running ${sim.counters().watchesRunning}`,
      );
    }
  }
  off();
  const at = servingAt();
  const seconds = [...at.values()].map((t) => (t - started) / 1000).sort((a, b) => a - b);
  const secondsMax =
    seconds.length === enrolled.length && seconds.length > 0 ? seconds.at(-1)! : null;
  // The registry's word, not the simulator's.
  const kv = await new Kvm(ctx.nc).open(KV_BUCKETS.devices);
  let registryServing = 0;
  for (const d of enrolled) {
    const entry = await kv.get(d.deviceId);
    const record =
      entry?.operation === 'PUT' ? entry.json<{ activeModel?: { sha256: string } }>() : null;
    if (record?.activeModel?.sha256 === expected.get(d.hardwareClass)) registryServing++;
  }
  return {
    count,
    enrolled: enrolled.length,
    enrollSeconds,
    serving: at.size,
    secondsMax: secondsMax === null ? null : round(secondsMax),
    secondsP50: seconds.length ? round(seconds[Math.floor(seconds.length / 2)]!) : null,
    intervalsMax: secondsMax === null ? null : round(secondsMax / interval, 2),
    goalWithinTwoIntervals: secondsMax !== null && secondsMax <= 2 * interval,
    registryServing,
    watchesRunningAfter: sim.counters().watchesRunning,
    timedOut: at.size < enrolled.length,
    errors: sim.errors().slice(0, 6),
  };
}

// --- scenario (b): a rollout with silent devices ----------------------------------------------

interface SilentResult {
  silentShare: number;
  silentDevices: number;
  namedCanaries: string[];
  run: RolloutRun;
  checks: {
    hardwareClass: string;
    classPhase: string;
    classRolledBack: boolean;
    firstWave: { index: number; state: string; reason: string; cohorts: string } | null;
    firstWaveFailedOnQuorum: boolean;
    /** Cohorts of the rolled-back wave whose track holds the earlier release again. */
    rolledBackCohortsOnPrevious: string;
    /** Every cohort of the class on the earlier release. */
    allCohortsOnPrevious: boolean;
    /** The canaries' own entries after the rollout: what they were left with. */
    canaryEntries: string[];
    /** Devices of the rolled-back cohorts the bench silenced. */
    silentInWave: number;
    /** Devices of the rolled-back cohorts that took the new model, serving the earlier one again. */
    restoredDevices: string;
    restoreSeconds: number | null;
  }[];
  passed: boolean;
}

async function silentRollout(
  ctx: Context,
  o: Options,
  previous: Map<string, string>,
  stamp: string,
): Promise<SilentResult> {
  const { sim, say } = ctx;
  // Per class, in cohort order: an even 1 in 1/share silent, so every wave has its share.
  const byClass = new Map<string, { index: number; deviceId: string; cohort: number }[]>();
  for (const d of sim.devices.values()) {
    byClass.set(d.hardwareClass, [...(byClass.get(d.hardwareClass) ?? []), d]);
  }
  const silent: number[] = [];
  const canaries: string[] = [];
  for (const devices of byClass.values()) {
    devices.sort((a, b) => a.cohort - b.cohort || a.index - b.index);
    const named: string[] = [];
    devices.forEach((d, p) => {
      if (Math.floor((p + 1) * o.silentShare) > Math.floor(p * o.silentShare)) silent.push(d.index);
      else if (named.length < 2 && d.cohort >= 50) named.push(d.deviceId);
    });
    canaries.push(...named);
  }
  sim.silence(silent, true);
  say(`silent rollout: ${silent.length} of ${sim.devices.size} devices silent`);
  const since = Date.now();
  const outcomes: DeviceOutcome[] = [];
  const off = sim.onOutcome((x) => outcomes.push(x));
  const spec = scaleSpec(`scale-${ctx.n}-silent-${stamp}`, {
    bakeSeconds: o.bakeFor(ctx.interval),
    reportTimeoutSeconds: o.silentReportTimeoutFor(ctx.n),
    formats: o.formats,
    seed: 7,
    canaryDevices: canaries,
  });
  const run = await runRollout(ctx, spec, 'silent rollout');
  const silentSet = new Set(silent);
  const kv = await new Kvm(ctx.nc).open(KV_BUCKETS.desiredState);
  const readState = async (key: string) => {
    const e = await kv.get(key);
    return e?.operation === 'PUT' ? e.json<DesiredState>() : null;
  };
  const shaOf = (s: DesiredState | null) =>
    s?.kind === 'run' ? s.model.manifest.model.sha256 : null;
  const status = await ctx.client.workflow
    .getHandle(rolloutWorkflowId(spec.rolloutId))
    .query<RolloutStatus>(ROLLOUT_QUERIES.status)
    .catch(() => null);
  const checks: SilentResult['checks'] = [];
  for (const c of status?.classes ?? []) {
    const prev = previous.get(c.hardwareClass);
    const wave =
      c.waves.find((w) => w.index > 0 && w.state === 'rolled_back') ?? c.waves[1] ?? null;
    const range = wave?.cohorts ?? null;
    // The restore's re-activations: the devices of those cohorts that activated the rolled-back
    // model must serve the earlier one again.
    const target = c.chosen?.sha256;
    const tookTarget = new Set(
      outcomes.filter((x) => x.event === 'activated' && x.sha256 === target).map((x) => x.index),
    );
    const answering = [...sim.devices.values()].filter(
      (d) =>
        d.hardwareClass === c.hardwareClass &&
        range &&
        d.cohort >= range.from &&
        d.cohort < range.to &&
        tookTarget.has(d.index),
    );
    const silentInRange = [...sim.devices.values()].filter(
      (d) =>
        d.hardwareClass === c.hardwareClass &&
        range &&
        d.cohort >= range.from &&
        d.cohort < range.to &&
        silentSet.has(d.index),
    ).length;
    const restoreWrites = ctx.writes.writes.filter(
      (w) => w.at >= since && w.key.startsWith(`track.${c.hardwareClass}.`) && w.sha256 === prev,
    );
    const restoreAt = restoreWrites[0]?.at ?? null;
    const restoredWhen = () => {
      const when = new Map<number, number>();
      for (const x of outcomes) {
        if (x.event === 'activated' && x.sha256 === prev && restoreAt && x.at >= restoreAt) {
          if (!when.has(x.index)) when.set(x.index, x.at);
        }
      }
      return when;
    };
    const deadline = Date.now() + 3 * ctx.interval * 1000 + 30_000;
    let restored = restoredWhen();
    while (restoreAt && answering.some((d) => !restored.has(d.index)) && Date.now() < deadline) {
      await sleep(1_000);
      restored = restoredWhen();
    }
    const restoredCount = answering.filter((d) => restored.has(d.index)).length;
    const lastRestore = Math.max(0, ...answering.map((d) => restored.get(d.index) ?? 0));
    let onPrevious = 0;
    let all = true;
    for (let cohort = 0; cohort < 100; cohort++) {
      const sha = shaOf(await readState(trackKey(c.hardwareClass, cohort)));
      const inRange = range !== null && cohort >= range.from && cohort < range.to;
      if (inRange && sha === prev) onPrevious++;
      if (sha !== prev) all = false;
    }
    const canaryEntries = await Promise.all(
      c.canaries.map(async (id) => {
        const s = await readState(deviceDesiredKey(id));
        const sha = shaOf(s);
        return `${id}: ${s ? `${s.kind}${sha ? ` ${sha === prev ? 'earlier release' : sha === c.chosen?.sha256 ? 'the rolled-back model' : sha.slice(0, 12)}` : ''}` : 'no own entry (follows its track)'}`;
      }),
    );
    checks.push({
      hardwareClass: c.hardwareClass,
      classPhase: c.phase,
      classRolledBack: c.phase === 'rolled_back',
      firstWave: wave
        ? {
            index: wave.index,
            state: wave.state,
            reason: wave.reason ?? '',
            cohorts: range ? `${range.from}..${range.to - 1}` : '',
          }
        : null,
      firstWaveFailedOnQuorum:
        wave?.index === 1 && wave.state === 'rolled_back' && /quorum/.test(wave.reason ?? ''),
      rolledBackCohortsOnPrevious: range ? `${onPrevious}/${range.to - range.from}` : 'n/a',
      allCohortsOnPrevious: all,
      canaryEntries,
      silentInWave: silentInRange,
      restoredDevices: `${restoredCount}/${answering.length}`,
      restoreSeconds:
        restoreAt && restoredCount > 0 ? round((lastRestore - restoreAt) / 1000, 2) : null,
    });
  }
  off();
  sim.silence(silent, false);
  return {
    silentShare: o.silentShare,
    silentDevices: silent.length,
    namedCanaries: canaries,
    run,
    checks,
    passed:
      checks.length > 0 &&
      checks.every(
        (c) =>
          c.classRolledBack &&
          c.firstWaveFailedOnQuorum &&
          c.allCohortsOnPrevious &&
          c.restoredDevices.split('/')[0] === c.restoredDevices.split('/')[1],
      ),
  };
}

// --- one fleet size ---------------------------------------------------------------------------

function deviceSpecs(first: number, count: number): DeviceSpec[] {
  return Array.from({ length: count }, (_, k) => {
    const index = first + k;
    return { index, name: `sim-${index}`, profile: PROFILE_NAMES[index % PROFILE_NAMES.length]! };
  });
}

interface SizeResult {
  devices: number;
  heartbeatIntervalSeconds: number;
  threads: number;
  bakeSeconds: number;
  reportTimeoutSeconds: number;
  natsConfig: string;
  phases: { phase: string; seconds: number }[];
  enroll: {
    seconds: number;
    perSecond: number;
    failed: number;
    watchesRunning: number;
    watchesReadySeconds: number | null;
    errors: string[];
    controlPlaneCpuMsPerEnrollment: number;
    natsAfter: NatsSample | null;
  };
  /**
   * The fleet at rest between enrollment and the rollout (every device heartbeating and
   * watching, nothing to apply): what each device costs when nothing happens.
   */
  steady: SteadyState | null;
  rollout: RolloutRun | null;
  newDevices: NewDevicesResult | null;
  silent: SilentResult | null;
  failure: string | null;
}

async function runSize(n: number, o: Options): Promise<SizeResult> {
  const interval = o.intervalFor(n);
  const say = (m: string) => process.stderr.write(`[rollout-scale ${n}] ${m}\n`);
  const toolchain = loadToolchain();
  const dataDir = await mkdtemp(join(tmpdir(), `edgeforge-rollout-scale-${n}-`));
  const phases: { phase: string; seconds: number }[] = [];
  const timed = async <T>(phase: string, body: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await body();
    } finally {
      phases.push({ phase, seconds: secondsSince(t) });
    }
  };
  const result: SizeResult = {
    devices: n,
    heartbeatIntervalSeconds: interval,
    threads: o.threads,
    bakeSeconds: o.bakeFor(interval),
    reportTimeoutSeconds: o.reportTimeoutFor(n),
    natsConfig:
      o.natsDefaultMaxConsumers === undefined
        ? 'deploy/nats/dev.conf as it is'
        : `deploy/nats/dev.conf + jetstream.limits.default_max_consumers: ${o.natsDefaultMaxConsumers}`,
    phases,
    enroll: {
      seconds: 0,
      perSecond: 0,
      failed: 0,
      watchesRunning: 0,
      watchesReadySeconds: null,
      errors: [],
      controlPlaneCpuMsPerEnrollment: 0,
      natsAfter: null,
    },
    steady: null,
    rollout: null,
    newDevices: null,
    silent: null,
    failure: null,
  };
  const stopAll: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const s of stopAll.splice(0).reverse()) await s().catch(() => {});
    await cp(join(dataDir, 'logs'), join(o.out, `rollout-scale-${o.stamp}-logs-${n}`), {
      recursive: true,
    }).catch(() => {});
    if (!o.keepData) await rm(dataDir, { recursive: true, force: true });
  };
  await withCleanup(cleanup, async () => {
    try {
      const stack = await timed('start the stack', () =>
        startScaleStack({
          toolchain,
          dataDir,
          heartbeatIntervalSeconds: interval,
          say,
          natsDefaultMaxConsumers: o.natsDefaultMaxConsumers,
        }),
      );
      stopAll.push(() => stack.stop());
      const nc = await connectNats(stack.natsUrl, { name: 'bench-rollout-scale' });
      stopAll.push(() => nc.close());
      const writes = new DesiredWrites(nc);
      stopAll.push(() => Promise.resolve(writes.stop()));
      const connection = await Connection.connect({ address: stack.temporalAddress });
      stopAll.push(() => connection.close());
      const downloadDir = join(dataDir, 'downloads');
      await mkdir(downloadDir, { recursive: true });
      const sim = await FleetSim.start({
        controlPlane: stack.controlPlaneAddress,
        natsUrl: stack.natsUrl,
        enrollmentToken: stack.enrollmentToken,
        downloadDir,
        threads: o.threads,
      });
      stopAll.push(() => sim.stop());
      const ctx: Context = {
        n,
        interval,
        stack,
        nc,
        jsm: await jetstreamManager(nc),
        client: new Client({ connection }),
        sim,
        census: new CensusReader(nc),
        writes,
        say,
      };

      // Enrollment: every device enrolls, heartbeats and starts its watch.
      const cpuBefore = await cpuSnapshot(stack.pids);
      const enrollStart = Date.now();
      const enrolled = await timed('enroll', () =>
        sim.enroll(deviceSpecs(0, n), (done, failed) =>
          say(`enrolling: ${done}/${n}${failed ? `, ${failed} failed` : ''}`),
        ),
      );
      const cpuAfter = await cpuSnapshot(stack.pids);
      result.enroll.seconds = secondsSince(enrollStart);
      result.enroll.perSecond = round(enrolled.length / result.enroll.seconds);
      result.enroll.failed = n - enrolled.length;
      result.enroll.controlPlaneCpuMsPerEnrollment = round(
        (1000 * (cpuAfter['control-plane']! - cpuBefore['control-plane']!)) /
          Math.max(1, enrolled.length),
        3,
      );
      say(`${enrolled.length} enrolled in ${result.enroll.seconds} s; waiting for their watches`);
      await timed('watches ready', async () => {
        const deadline = Date.now() + Math.max(60_000, n * 10);
        let lastSay = Date.now();
        while (sim.counters().watchesRunning < enrolled.length && Date.now() < deadline) {
          check();
          await sleep(500);
          if (Date.now() - lastSay > 5_000) {
            lastSay = Date.now();
            say(`watches running: ${sim.counters().watchesRunning}/${enrolled.length}`);
          }
        }
        if (sim.counters().watchesRunning >= enrolled.length) {
          result.enroll.watchesReadySeconds = secondsSince(enrollStart);
        }
      });
      result.enroll.watchesRunning = sim.counters().watchesRunning;
      result.enroll.errors = sim.errors().slice(0, 6);
      result.enroll.natsAfter = await sampleNats(stack.natsMonitorUrl).catch(() => null);
      if (result.enroll.watchesRunning < enrolled.length) {
        say(
          `only ${result.enroll.watchesRunning} of ${enrolled.length} devices could start their ` +
            `desired-state watch: ${result.enroll.errors.join('; ')}`,
        );
      }
      // Heartbeats settle into their interval, then a quiet window is measured.
      await sleep(interval * 1000);
      result.steady = await timed('steady state', () =>
        steadyState(ctx, Math.max(2 * interval, 30)),
      );
      say(
        `at rest: control plane ${result.steady.controlPlaneCpuMsPerHeartbeat} ms CPU per heartbeat, ` +
          `nats-server ${result.steady.natsServerCpuPercent}% CPU, RSS ${result.steady.controlPlaneRssMiB} / ${result.steady.natsServerRssMiB} MiB`,
      );

      const stamp = Date.now().toString(36);
      const spec = scaleSpec(`scale-${n}-${stamp}`, {
        bakeSeconds: o.bakeFor(interval),
        reportTimeoutSeconds: o.reportTimeoutFor(n),
        formats: o.formats,
      });
      result.rollout = await timed('rollout', () => runRollout(ctx, spec, 'rollout'));
      const chosen = new Map(
        result.rollout.classes.flatMap((c) =>
          c.chosen ? [[c.hardwareClass, c.chosen.sha256]] : [],
        ),
      );
      say(
        `rollout ${result.rollout.phase} in ${result.rollout.wallSeconds} s: ` +
          result.rollout.classes.map((c) => `${c.hardwareClass} ${c.phase}`).join(', '),
      );
      if (!o.skipNewDevices && chosen.size > 0) {
        result.newDevices = await timed('new devices', () =>
          newDevices(ctx, n, o.newDevices, chosen),
        );
        say(
          `new devices: ${result.newDevices.serving}/${result.newDevices.enrolled} serve after ` +
            `${result.newDevices.secondsMax ?? 'n/a'} s (${result.newDevices.intervalsMax ?? 'n/a'} intervals)`,
        );
      }
      if (!o.skipSilent && chosen.size > 0) {
        result.silent = await timed('silent rollout', () => silentRollout(ctx, o, chosen, stamp));
        say(
          `silent rollout: ${result.silent.passed ? 'rolled back as it must' : 'NOT as expected'}: ` +
            result.silent.checks
              .map(
                (c) =>
                  `${c.hardwareClass} ${c.classPhase}, wave ${c.firstWave?.index} ${c.firstWave?.state}`,
              )
              .join('; '),
        );
      }
    } catch (err) {
      if (interrupted) throw err;
      result.failure = (err as Error).stack ?? String(err);
      say(`FAILED: ${(err as Error).message}`);
    }
  });
  return result;
}

// --- report -----------------------------------------------------------------------------------

function classHistory(r: SizeResult, i: number): WorkflowSize | undefined {
  return r.rollout?.workflows.filter((w) => w.workflowId.includes('-class-'))[i];
}

function markdown(results: SizeResult[], o: Options): string {
  const ok = results.filter((r) => r.rollout);
  const num = (x: number | null | undefined) =>
    x === null || x === undefined ? 'n/a' : x.toLocaleString('en-US');
  const lines = [
    `# Rollout scale (${new Date().toISOString()})`,
    '',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ` +
      `simulator: ${o.threads} worker threads in the bench process. Latencies are synthetic (bench/fleet-sim/latency.ts).`,
    '',
    '| devices | heartbeat | enroll | watches | rollout wall | parent history | class histories | KV writes per wave (canaries, w1, w2, w3) | stream msgs | peak consumers (desired) | CP CPU / report | new devices serve | silent rollout |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const roll = r.rollout;
    const parent = roll?.workflows[0];
    const classes = (roll?.workflows ?? []).slice(1);
    const waves = (roll?.classes ?? [])
      .filter((c) => c.waves.length > 0)
      .map((c) => c.waves.map((w) => w.kvWrites).join('/'))
      .join(' + ');
    const nd = r.newDevices;
    lines.push(
      `| ${num(r.devices)} | ${r.heartbeatIntervalSeconds} s | ${r.enroll.seconds} s (${num(r.enroll.perSecond)}/s) | ` +
        `${num(r.enroll.watchesRunning)} | ${roll ? `${roll.wallSeconds} s, ${roll.phase}` : (r.failure?.split('\n')[0] ?? 'n/a')} | ` +
        `${parent ? `${parent.historyLength} ev, ${num(parent.historySize)} B` : 'n/a'} | ` +
        `${classes.map((w) => `${w.historyLength} ev, ${num(w.historySize)} B`).join('; ') || 'n/a'} | ` +
        `${waves || 'n/a'} | ${roll?.kv.streamMessagesAdded ?? 'n/a'} | ` +
        `${roll ? `${roll.nats.peakConsumers} (${roll.nats.peakDesiredConsumersDuringWaves})` : 'n/a'} | ` +
        `${roll ? `${roll.cpu.controlPlaneCpuMsPerReport} ms` : 'n/a'} | ` +
        `${nd ? `${nd.serving}/${nd.enrolled} in ${nd.intervalsMax ?? 'n/a'} intervals` : 'skipped'} | ` +
        `${r.silent ? (r.silent.passed ? 'rolled back on the quorum, tracks restored' : 'NOT as expected') : 'skipped'} |`,
    );
  }
  lines.push(
    '',
    'At rest (after enrollment, before the rollout: heartbeats and idle watches only):',
    '',
    '| devices | heartbeats/s | CP CPU per heartbeat | CP CPU | CP RSS | nats-server CPU | nats-server CPU per device·s | nats-server RSS | JetStream consumers |',
    '|---|---|---|---|---|---|---|---|---|',
    ...results.map((r) => {
      const st = r.steady;
      return st
        ? `| ${num(r.devices)} | ${st.heartbeatsPerSecond} | ${st.controlPlaneCpuMsPerHeartbeat} ms | ${st.controlPlaneCpuPercent}% | ` +
            `${st.controlPlaneRssMiB} MiB | ${st.natsServerCpuPercent}% | ${st.natsServerCpuMicrosPerDeviceSecond} µs | ` +
            `${st.natsServerRssMiB} MiB | ${num(st.nats?.consumers)} |`
        : `| ${num(r.devices)} | n/a | | | | | | | |`;
    }),
  );
  if (ok.length >= 2) {
    const [small, large] = [ok[0]!, ok.at(-1)!];
    const ratio = (a?: number | null, b?: number | null) =>
      a && b ? `${round(b / a, 3)}×` : 'n/a';
    lines.push(
      '',
      `Ratios ${num(large.devices)} / ${num(small.devices)} devices (goal: within 1.2×):`,
      '',
      `- parent workflow: history events ${ratio(small.rollout!.workflows[0]?.historyLength, large.rollout!.workflows[0]?.historyLength)}, bytes ${ratio(small.rollout!.workflows[0]?.historySize, large.rollout!.workflows[0]?.historySize)}`,
      ...[0, 1].map(
        (i) =>
          `- class workflow ${i + 1}: history events ${ratio(classHistory(small, i)?.historyLength, classHistory(large, i)?.historyLength)}, bytes ${ratio(classHistory(small, i)?.historySize, classHistory(large, i)?.historySize)}`,
      ),
    );
  }
  lines.push('');
  return lines.join('\n');
}

function machine() {
  return {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGiB: round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

function parseOptions(args: string[]): {
  sizes: number[];
  options: Options;
  censusCost: number[] | null;
} {
  const { values } = parseArgs({
    args,
    options: {
      devices: { type: 'string', default: '1000,10000' },
      /** Heartbeat seconds: one number, one per size, or auto (10 s up to 2,000 devices, else 30 s). */
      interval: { type: 'string', default: 'auto' },
      threads: { type: 'string', default: '2' },
      bake: { type: 'string', default: 'auto' },
      'report-timeout': { type: 'string', default: 'auto' },
      'silent-report-timeout': { type: 'string', default: 'auto' },
      formats: { type: 'string', default: 'int8_dynamic' },
      'new-devices': { type: 'string', default: '200' },
      'silent-share': { type: 'string', default: '0.2' },
      'skip-new-devices': { type: 'boolean', default: false },
      'skip-silent': { type: 'boolean', default: false },
      /**
       * nats-server's JetStream default consumer limit per stream (2.15: 1000), `unlimited` for
       * -1 (none); unset: deploy/nats/dev.conf as deployed.
       */
      'nats-default-max-consumers': { type: 'string' },
      keep: { type: 'boolean', default: false },
      /** Only time census rounds over this many registry records each (no stack, no devices). */
      'census-cost': { type: 'string' },
    },
  });
  const sizes = values.devices.split(',').map(Number);
  const intervals = values.interval === 'auto' ? [] : values.interval.split(',').map(Number);
  const auto = (v: string, f: (x: number) => number) => (x: number) =>
    v === 'auto' ? f(x) : Number(v);
  return {
    censusCost: values['census-cost'] ? values['census-cost'].split(',').map(Number) : null,
    sizes,
    options: {
      intervalFor: (n) =>
        intervals.length === 0
          ? n <= 2_000
            ? 10
            : 30
          : (intervals[sizes.indexOf(n)] ?? intervals.at(-1)!),
      threads: Number(values.threads),
      bakeFor: auto(values.bake, (interval) => Math.ceil(1.2 * interval)),
      reportTimeoutFor: auto(values['report-timeout'], (n) => Math.max(120, Math.ceil(n / 25))),
      silentReportTimeoutFor: auto(values['silent-report-timeout'], (n) =>
        Math.max(60, Math.ceil(n / 100)),
      ),
      formats: values.formats.split(',').filter(Boolean) as VariantName[],
      newDevices: Number(values['new-devices']),
      silentShare: Number(values['silent-share']),
      skipNewDevices: values['skip-new-devices'],
      skipSilent: values['skip-silent'],
      natsDefaultMaxConsumers:
        values['nats-default-max-consumers'] === undefined
          ? undefined
          : values['nats-default-max-consumers'] === 'unlimited'
            ? -1
            : Number(values['nats-default-max-consumers']),
      keepData: values.keep,
      out: join(REPO_ROOT, 'bench-results'),
      stamp: new Date().toISOString().replace(/[:.]/g, '-'),
    },
  };
}

export async function runRolloutScaleBenchmark(args: string[]): Promise<void> {
  const { sizes, options, censusCost: censusSizes } = parseOptions(args);
  if (censusSizes) {
    const costs = censusSizes.map((n) => censusCost(n));
    console.table(costs);
    await mkdir(options.out, { recursive: true });
    const file = join(options.out, `rollout-scale-census-${options.stamp}.json`);
    await writeFile(
      file,
      JSON.stringify(
        { benchmark: 'rollout-scale --census-cost', machine: machine(), costs },
        null,
        2,
      ),
    );
    console.log(`results written to ${file}`);
    return;
  }
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onInterrupt);
  await mkdir(options.out, { recursive: true });
  const file = join(options.out, `rollout-scale-${options.stamp}.json`);
  const results: SizeResult[] = [];
  const save = async () => {
    const md = markdown(results, options);
    await writeFile(
      file,
      JSON.stringify(
        {
          benchmark: 'rollout-scale',
          command: `npm run bench -- rollout-scale ${args.join(' ')}`.trim(),
          machine: machine(),
          results,
          markdown: md,
        },
        null,
        2,
      ),
    );
    await writeFile(file.replace(/\.json$/, '.md'), md);
    return md;
  };
  for (const n of sizes) {
    results.push(await runSize(n, options));
    await save();
  }
  process.stdout.write(await save());
  console.log(`results written to ${file}`);
}
