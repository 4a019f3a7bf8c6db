import { sleep } from '@temporalio/workflow';
import { COHORTS, cohortOf, cohortsIn, type CohortRange } from '../../../common/cohorts.js';
import { FAILURE_EVENTS, deviceEventOf } from '../../../common/census.js';
import type { SignedManifest } from '../../../common/manifest.js';
import type { ClassStatus, DeviceEvent, WaveStatus } from '../../../common/rollout.js';
import { median } from '../../../common/median.js';
import { judgeWave, planWaves, type WaveJudgement } from '../../decisions/waves.js';
import { orchestrator, orchestratorLong } from '../proxies.js';
import type { ClassRolloutInput } from './input.js';

/** Serving requests a device (or a wave, pooled) must have answered before its p95 is judged. */
export const MIN_SERVING_SAMPLES = 20;
/** How long the census may take to follow a new lease target (the control plane's interval). */
const CENSUS_WAIT_SECONDS = 60;

export interface WavesContext {
  input: ClassRolloutInput;
  status: ClassStatus;
  model: SignedManifest;
  /** Canaries that answered the benchmark: wave 0. */
  canaries: string[];
  report: () => Promise<void>;
  /** Cohorts whose track this rollout moved: what a cancellation must restore. */
  moved: Set<number>;
  restoreTracks: (cohorts: number[]) => Promise<{ restored: number; cleared: number }>;
  /** Hands the canaries back to their tracks' earlier release (see class-rollout.ts). */
  restoreCanaries: () => Promise<void>;
}

export type WavesOutcome = { passed: true } | { passed: false; reason: string };

/**
 * Wave 0: the canaries run the winner through their own entries. Then waves move cohorts of the
 * class's release track to it, each judged from the census after its bake; a wave that fails is
 * moved back. The run state every wave writes is the same signed manifest, so a canary whose
 * own entry is later removed finds the very build it runs on its track.
 */
export async function rollOutInWaves(ctx: WavesContext): Promise<WavesOutcome> {
  const { input, status, model } = ctx;
  const { spec, rolloutId, hardwareClass } = input;
  const sha256 = model.manifest.model.sha256;
  const run = { kind: 'run' as const, rolloutId, model, issuedAt: new Date().toISOString() };
  const until = () => new Date(Date.now() + spec.reportTimeoutSeconds * 1000).toISOString();

  await orchestrator.setLeaseTarget({ rolloutId, hardwareClass, targetSha256: sha256 });
  // Before any device runs the winner: what every cohort ran, to go back to.
  await orchestrator.snapshotTracks({ rolloutId, hardwareClass });
  const canaryWave = newWave(0, null, ctx.canaries.length);
  status.waves = [canaryWave];

  // Wave 0: the canaries.
  canaryWave.state = 'activating';
  await ctx.report();
  await orchestrator.writeDeviceStates({ deviceIds: ctx.canaries, state: run });
  await orchestratorLong.awaitDevicesSettled({
    rolloutId,
    variant: model.manifest.variant,
    deviceIds: ctx.canaries,
    until: until(),
    minServingSamples: MIN_SERVING_SAMPLES,
  });
  canaryWave.state = 'baking';
  await ctx.report();
  await sleep(`${spec.waves.bakeSeconds} seconds`);
  const states = await orchestrator.deviceModelStates({
    deviceIds: ctx.canaries,
    minServingSamples: MIN_SERVING_SAMPLES,
  });
  const serving = states.filter((s) => s.activeSha256 === sha256);
  const baselineP95 = median(
    serving.map((s) => s.servingP95Ms).filter((p): p is number => p !== null),
  );
  const canaryJudged = judgeWave({
    expected: ctx.canaries.length,
    succeeded: serving.length,
    failed: states.filter(
      (s) =>
        s.activeSha256 !== sha256 &&
        s.lastStatus?.rolloutId === rolloutId &&
        FAILURE_EVENTS.has(deviceEventOf(s.lastStatus.event) as DeviceEvent),
    ).length,
    servingP95Ms: baselineP95,
    baselineP95Ms: null,
    ...gates(input),
  });
  // Devices running the winner: the canaries, until their cohorts' waves count them.
  const servingCanaries = serving.map((s) => s.deviceId);
  let doneInWaves = 0;
  const passed: CohortRange[] = [];
  const countDone = () => {
    const inPassed = (d: string) => passed.some((r) => cohortOf(d) >= r.from && cohortOf(d) < r.to);
    status.devicesDone = doneInWaves + servingCanaries.filter((d) => !inPassed(d)).length;
  };
  if (!conclude(canaryWave, canaryJudged, status)) {
    await ctx.restoreCanaries();
    return { passed: false, reason: `wave 0 rolled back: ${canaryWave.reason}` };
  }
  countDone();
  await ctx.report();

  // The waves over the track, planned from how many devices each cohort has online now.
  const online =
    (await orchestratorLong.cohortsOnline({
      rolloutId,
      hardwareClass,
      waitSeconds: CENSUS_WAIT_SECONDS,
    })) ?? new Array<number>(COHORTS).fill(0);
  const planned = planWaves(spec.waves.percents, online);
  status.waves.push(...planned.map((w, i) => newWave(i + 1, w.range, w.online)));
  for (const wave of status.waves.slice(1)) {
    const range = wave.cohorts!;
    wave.state = 'activating';
    await ctx.report();
    const cohorts = cohortsIn(range);
    cohorts.forEach((c) => ctx.moved.add(c));
    await orchestrator.writeTracks({ hardwareClass, cohorts, state: run });
    await orchestratorLong.awaitWave({
      rolloutId,
      hardwareClass,
      range,
      targetSha256: sha256,
      expected: wave.devices,
      until: until(),
      minServingSamples: MIN_SERVING_SAMPLES,
    });
    wave.state = 'baking';
    await ctx.report();
    await sleep(`${spec.waves.bakeSeconds} seconds`);
    // After the bake, what the registry says wins: a device that activated and then fell back
    // (crash loop, a later health check) no longer serves the new model.
    const counts = await orchestratorLong.readWave({
      rolloutId,
      hardwareClass,
      range,
      targetSha256: sha256,
      minServingSamples: MIN_SERVING_SAMPLES,
      waitSeconds: CENSUS_WAIT_SECONDS,
    });
    const judged = judgeWave({
      expected: wave.devices,
      succeeded: counts?.servingTarget ?? 0,
      failed: counts?.failed ?? 0,
      servingP95Ms: counts?.servingP95Ms ?? null,
      baselineP95Ms: baselineP95,
      ...gates(input),
    });
    wave.failures = counts?.failures ?? [];
    if (!conclude(wave, judged, status)) {
      const { cleared } = await ctx.restoreTracks(cohorts);
      cohorts.forEach((c) => ctx.moved.delete(c));
      if (cleared > 0) {
        wave.reason += `; ${cleared} cohort(s) had no earlier release: their devices keep the new model`;
      }
      return { passed: false, reason: `wave ${wave.index} rolled back: ${wave.reason}` };
    }
    doneInWaves += judged.activated;
    passed.push(range);
    countDone();
    await ctx.report();
  }
  // Every cohort's track holds the winner now: the canaries follow it like everyone else.
  await orchestrator.writeDeviceStates({ deviceIds: ctx.canaries, state: null });
  return { passed: true };
}

function newWave(index: number, cohorts: CohortRange | null, devices: number): WaveStatus {
  return {
    index,
    cohorts,
    devices,
    state: 'pending',
    activated: 0,
    failed: 0,
    unresponsive: 0,
    servingP95Ms: null,
  };
}

function gates(input: ClassRolloutInput) {
  const w = input.spec.waves;
  return {
    // Specs recorded before the quorum existed have none: they keep their old rule.
    minSuccessShare: w.minSuccessShare ?? 0,
    maxFailedShare: w.maxFailedShare,
    maxP95Regression: w.maxP95Regression,
  };
}

/** Writes the judgement into the wave and the class; whether the wave passed. */
function conclude(wave: WaveStatus, judged: WaveJudgement, status: ClassStatus): boolean {
  Object.assign(wave, {
    activated: judged.activated,
    failed: judged.failed,
    unresponsive: judged.unresponsive,
    servingP95Ms: judged.servingP95Ms,
    reason: judged.reason,
    state: judged.passed ? 'passed' : 'rolled_back',
  });
  status.devicesFailed += judged.failed;
  status.unresponsiveCount += judged.unresponsive;
  return judged.passed;
}
