import {
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { cohortOf } from '../../common/cohorts.js';
import type { SignedManifest } from '../../common/manifest.js';
import type { BenchmarkReportSignal, ChosenVariant, ClassStatus } from '../../common/rollout.js';
import { FP32 } from '../decisions/choose.js';
import { benchmarkOnCanaries, TEACHER_REFERENCE } from './class/benchmark-phase.js';
import type { ClassRolloutInput } from './class/input.js';
import { rollOutInWaves } from './class/waves-phase.js';
import { benchmarkReported, classProgress } from './definitions.js';
import { orchestrator, orchestratorLong } from './proxies.js';

export type { ClassCandidate, ClassRolloutInput } from './class/input.js';
export { TEACHER_REFERENCE } from './class/benchmark-phase.js';

/**
 * One hardware class of a rollout, in phases: take the class's lease (one rollout per class),
 * draw the canaries, have them benchmark every candidate and choose (class/benchmark-phase.ts),
 * then roll the winner out in waves over the class's release track (class/waves-phase.ts). What
 * this workflow holds is bounded by the canaries and the cohorts, never by the class's size.
 * A rolled-back wave's cohorts go back to their earlier release; a cancellation puts back every
 * cohort it moved and every canary.
 */
export async function classRolloutWorkflow(input: ClassRolloutInput): Promise<ClassStatus> {
  const { spec, rolloutId, hardwareClass } = input;
  const reports = new Map<string, BenchmarkReportSignal>();
  let canaries = new Set<string>();
  setHandler(benchmarkReported, (r) => {
    if (canaries.has(r.deviceId)) reports.set(`${r.deviceId}|${r.variant}`, r);
  });

  const status: ClassStatus = {
    hardwareClass,
    phase: 'publishing',
    devicesTotal: input.onlineDevices,
    devicesDone: 0,
    devicesFailed: 0,
    unresponsive: [],
    unresponsiveCount: 0,
    canaries: [],
    // Temporal's Math.random is seeded per workflow run and replays alike; no device can know it.
    canarySeed: spec.canarySeed ?? Math.floor(Math.random() * 2 ** 31),
    candidates: [],
    chosen: null,
    waves: [],
    reason: '',
    updatedAt: new Date().toISOString(),
  };
  const parent = workflowInfo().parent;
  const report = async () => {
    status.updatedAt = new Date().toISOString();
    if (!parent) return;
    // The parent may be gone (terminated); the class still finishes its work.
    await getExternalWorkflowHandle(parent.workflowId)
      .signal(classProgress, status)
      .catch((err: unknown) => log.warn('cannot report progress to the rollout', { err }));
  };
  const finish = async (phase: ClassStatus['phase'], reason: string) => {
    status.phase = phase;
    status.reason = reason;
    await CancellationScope.nonCancellable(() =>
      orchestrator.releaseClassLease({ rolloutId, hardwareClass }),
    );
    await report();
    log.info('class finished', { rolloutId, hardwareClass, phase, reason });
    return status;
  };

  const expiresAt = () => new Date(Date.now() + spec.manifestTtlHours * 3_600_000).toISOString();
  const moved = new Set<number>();
  const restoreTracks = (cohorts: number[]) =>
    orchestrator.restoreTracks({
      rolloutId,
      hardwareClass,
      cohorts,
      version: Date.now(),
      expiresAt: expiresAt(),
    });
  /**
   * Removes the canaries' own entries. Once they ran the winner, their tracks' earlier release is
   * older than what they run, and devices never go back to an older version: their cohorts get
   * that release signed again, newer.
   */
  const restoreCanaries = async () => {
    await orchestrator.writeDeviceStates({ deviceIds: status.canaries, state: null });
    const activated = status.waves.length > 0 && status.waves[0]!.state !== 'pending';
    if (!activated) return;
    const cohorts = [...new Set(status.canaries.map(cohortOf))].filter((c) => !moved.has(c));
    if (cohorts.length > 0) await restoreTracks(cohorts.sort((a, b) => a - b));
  };

  try {
    const lease = await orchestrator.acquireClassLease({ rolloutId, hardwareClass });
    if (!lease.acquired) {
      return await finish(
        'failed',
        `no device was changed: rollout ${lease.heldBy} is rolling out to this class; ` +
          'wait for it to end or cancel it',
      );
    }
    const drawn = await orchestratorLong.pickCanaries({
      hardwareClass,
      count: spec.canaries,
      seed: status.canarySeed,
      named: spec.canaryDevices,
    });
    if (drawn.missingNamed.length > 0) {
      log.warn('named canaries not online in the class, drawn instead', {
        rolloutId,
        hardwareClass,
        missing: drawn.missingNamed,
      });
    }
    status.canaries = drawn.canaries;
    canaries = new Set(drawn.canaries);
    if (status.canaries.length === 0) {
      return await finish(
        'failed',
        'no device was changed: no healthy online device to be a canary',
      );
    }
    await report();

    const { choice, manifests, silent } = await benchmarkOnCanaries(
      input,
      status,
      reports,
      expiresAt,
      report,
    );
    status.unresponsive.push(...silent);
    status.candidates = choice.outcomes;
    if (!choice.winner) {
      await orchestrator.writeDeviceStates({ deviceIds: status.canaries, state: null });
      const why =
        silent.length === status.canaries.length
          ? 'no canary reported within the timeout'
          : choice.reason;
      return await finish('failed', `no device was changed: ${why}`);
    }
    const winner = manifests.get(choice.winner)!;
    status.chosen = chosenVariant(choice.winner, choice.reason, winner, choice.outcomes, input);

    status.phase = 'rolling_out';
    const outcome = await rollOutInWaves({
      input,
      status,
      model: winner,
      canaries: status.canaries.filter((d) => !silent.includes(d)),
      report,
      moved,
      restoreTracks,
      restoreCanaries,
    });
    if (!outcome.passed) return await finish('rolled_back', outcome.reason);
    return await finish(
      choice.fellBack ? 'fell_back' : 'succeeded',
      `${status.chosen.variant} on ${status.devicesDone} of ${status.devicesTotal} devices: ${choice.reason}`,
    );
  } catch (err) {
    if (!isCancellation(err)) {
      await CancellationScope.nonCancellable(() =>
        orchestrator.releaseClassLease({ rolloutId, hardwareClass }),
      );
      throw err;
    }
    // Cancelled: every cohort and canary this class changed goes back to what it ran before.
    await CancellationScope.nonCancellable(async () => {
      await restoreCanaries();
      if (moved.size > 0) await restoreTracks([...moved].sort((a, b) => a - b));
      for (const wave of status.waves) if (wave.state !== 'pending') wave.state = 'rolled_back';
      await finish(
        'cancelled',
        'the rollout was cancelled: devices restored to their earlier models',
      );
    });
    throw err;
  }
}

function chosenVariant(
  variant: string,
  reason: string,
  manifest: SignedManifest,
  outcomes: ClassStatus['candidates'],
  input: ClassRolloutInput,
): ChosenVariant {
  const onDevice = (name: string) => outcomes.find((o) => o.variant === name)?.onDevice ?? null;
  const won = onDevice(variant)!;
  const ratio = (reference: number | null | undefined) =>
    reference && won.p95Ms > 0 ? reference / won.p95Ms : null;
  const teacherP95 = onDevice(TEACHER_REFERENCE);
  const fp32P95 = onDevice(FP32);
  return {
    variant,
    reason,
    version: manifest.manifest.version,
    sha256: manifest.manifest.model.sha256,
    sizeBytes: manifest.manifest.model.size,
    p50Ms: won.p50Ms,
    p95Ms: won.p95Ms,
    p99Ms: won.p99Ms,
    accuracy: won.accuracy,
    speedupVsTeacher: ratio(teacherP95?.devices ? teacherP95.p95Ms : null),
    speedupVsFp32: ratio(fp32P95?.devices ? fp32P95.p95Ms : null),
    sizeRatioVsTeacher:
      input.teacherSizeBytes && manifest.manifest.model.size
        ? input.teacherSizeBytes / manifest.manifest.model.size
        : null,
  };
}
