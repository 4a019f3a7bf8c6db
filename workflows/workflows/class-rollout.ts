import {
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { SignedManifest } from '../../common/manifest.js';
import type { StoredObject, VariantResult } from '../../common/gpu-contracts.js';
import type {
  BenchmarkReportSignal,
  ChosenVariant,
  ClassStatus,
  DeviceStatusSignal,
  RolloutSpec,
  WaveStatus,
} from '../../common/rollout.js';
import { chooseVariant, FP32, type CandidateInput } from '../rollout/choose.js';
import type { ManifestParts } from '../rollout/manifests.js';
import { judgeWave, splitWaves, type DeviceOutcome } from '../rollout/waves.js';
import { benchmarkReported, classProgress, deviceStatus } from './definitions.js';
import { orchestrator } from './proxies.js';

/** The variant name devices report for the fp32 teacher, benchmarked as the speedup reference. */
export const TEACHER_REFERENCE = 'teacher_fp32';
/** Serving requests a device must have answered before its p95 is judged. */
const MIN_SERVING_SAMPLES = 20;
const TERMINAL_EVENTS = new Set(['activated', 'health_check_failed', 'rolled_back', 'refused']);

export interface ClassCandidate {
  variant: string;
  planReasons: string[];
  built: VariantResult;
}

export interface ClassRolloutInput {
  rolloutId: string;
  spec: RolloutSpec;
  hardwareClass: string;
  /** Online devices of the class, in a stable order; the first `spec.canaries` are canaries. */
  devices: string[];
  architecture: string;
  /** Ranked by the planner, fp32 last; each as the gpu worker built it. */
  candidates: ClassCandidate[];
  /** The fp32 teacher, manifest-ready, when there is one. */
  teacherReference: VariantResult | null;
  holdout: StoredObject;
  /** The fp32 student's holdout accuracy on the gpu worker. */
  fp32HoldoutAccuracy: number | null;
  teacherSizeBytes: number | null;
}

/**
 * One hardware class of a rollout: canaries benchmark every candidate on their own hardware, the
 * best qualifying variant is chosen, then rolled out in waves, each judged after its bake time.
 * Every device this workflow changes goes back to its earlier desired state when a wave is
 * rolled back (that wave) or the rollout is cancelled (all of them).
 */
export async function classRolloutWorkflow(input: ClassRolloutInput): Promise<ClassStatus> {
  const { spec, rolloutId, hardwareClass } = input;
  const members = new Set(input.devices);
  const reports = new Map<string, BenchmarkReportSignal>();
  const events = new Map<string, DeviceStatusSignal>();
  setHandler(benchmarkReported, (r) => {
    if (members.has(r.deviceId)) reports.set(`${r.deviceId}|${r.variant}`, r);
  });
  setHandler(deviceStatus, (s) => {
    if (members.has(s.deviceId)) events.set(s.deviceId, s);
  });

  const canaries = input.devices.slice(0, Math.min(spec.canaries, input.devices.length));
  const status: ClassStatus = {
    hardwareClass,
    phase: 'publishing',
    devicesTotal: input.devices.length,
    devicesDone: 0,
    devicesFailed: 0,
    unresponsive: [],
    canaries,
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
    await report();
    log.info('class finished', { rolloutId, hardwareClass, phase, reason });
    return status;
  };

  const expiresAt = () => new Date(Date.now() + spec.manifestTtlHours * 3_600_000).toISOString();
  const touched = new Set<string>();
  const restore = (deviceIds: string[]) =>
    orchestrator.restoreDesiredStates({
      rolloutId,
      deviceIds,
      version: Date.now(),
      expiresAt: expiresAt(),
    });

  try {
    await orchestrator.saveDesiredStateSnapshot({ rolloutId, deviceIds: input.devices });
    await report();

    // Publish: sign every candidate the gpu worker accepted (and the teacher, for speedups).
    const version = Date.now();
    const publishable = input.candidates.filter((c) => c.built.status === 'accepted');
    const toSign: { variant: string; built: VariantResult }[] = publishable.map((c) => ({
      variant: c.variant,
      built: c.built,
    }));
    if (input.teacherReference?.manifest) {
      toSign.push({ variant: TEACHER_REFERENCE, built: input.teacherReference });
    }
    const signed = await orchestrator.signManifests({
      manifests: toSign.map(({ variant, built }): ManifestParts => ({
        rolloutId,
        variant,
        unsigned: built.manifest!,
        holdout: input.holdout,
        hardwareClasses: [hardwareClass],
        version,
        expiresAt: expiresAt(),
      })),
    });
    const manifestOf = new Map(signed.map((s) => [s.manifest.variant, s]));

    // Canaries benchmark every candidate on their own hardware.
    status.phase = 'benchmarking';
    await report();
    canaries.forEach((d) => touched.add(d));
    await orchestrator.writeDesiredState({
      deviceIds: canaries,
      state: {
        kind: 'benchmark',
        rolloutId,
        candidates: signed,
        settings: spec.benchmark,
        issuedAt: new Date().toISOString(),
      },
    });
    const variants = signed.map((s) => s.manifest.variant);
    const allReported = () =>
      canaries.every((d) => variants.every((v) => reports.has(`${d}|${v}`)));
    if (!(await condition(allReported, `${spec.reportTimeoutSeconds} seconds`))) {
      // Signals may have been lost (control plane restarted): the bucket has every report.
      for (const r of await orchestrator.collectBenchmarks({
        rolloutId,
        variants,
        deviceIds: canaries,
      })) {
        reports.set(`${r.deviceId}|${r.variant}`, r);
      }
    }
    const silent = canaries.filter((d) => !variants.some((v) => reports.has(`${d}|${v}`)));
    status.unresponsive.push(...silent);

    status.phase = 'choosing';
    const candidateInputs: CandidateInput[] = input.candidates.map((c) => ({
      variant: c.variant,
      planReasons: c.planReasons,
      central: {
        status: c.built.status as CandidateInput['central']['status'],
        reason: c.built.reason,
        sizeBytes: c.built.metrics?.size_bytes ?? null,
        centralAccuracy: c.built.metrics?.test_accuracy ?? null,
      },
    }));
    if (manifestOf.has(TEACHER_REFERENCE)) {
      candidateInputs.push({
        variant: TEACHER_REFERENCE,
        planReasons: ['the fp32 teacher: measured as the speedup reference, never rolled out'],
        central: {
          status: 'accepted',
          reason: '',
          sizeBytes: input.teacherReference?.metrics?.size_bytes ?? null,
          centralAccuracy: input.teacherReference?.metrics?.test_accuracy ?? null,
        },
        reference: true,
      });
    }
    const choice = chooseVariant({
      candidates: candidateInputs,
      reports: [...reports.values()],
      accuracyBudget: spec.accuracyBudget,
      latencySloMs: spec.latencySloMs,
      centralFp32HoldoutAccuracy: input.fp32HoldoutAccuracy,
    });
    status.candidates = choice.outcomes;
    await orchestrator.saveMeasurements({
      architecture: input.architecture,
      hardwareClass,
      measurements: choice.outcomes
        .filter((o) => o.onDevice && o.onDevice.devices > 0 && o.verdict !== 'reference')
        .map((o) => ({
          variant: o.variant as never,
          rolloutId,
          p95Ms: o.onDevice!.p95Ms,
          accuracyDelta:
            o.onDevice!.accuracy !== null && input.fp32HoldoutAccuracy !== null
              ? o.onDevice!.accuracy - input.fp32HoldoutAccuracy
              : 0,
          metBudget: o.verdict !== 'over_accuracy_budget_on_device',
        })),
    });
    if (!choice.winner) {
      await restore(canaries);
      const why =
        silent.length === canaries.length ? 'no canary reported within the timeout' : choice.reason;
      return await finish('failed', `no device was changed: ${why}`);
    }

    const winner = manifestOf.get(choice.winner)!;
    status.chosen = chosenVariant(choice.winner, choice.reason, winner, choice.outcomes, input);

    // Waves: the canaries first, then growing shares of the class.
    status.phase = 'rolling_out';
    const responsiveCanaries = canaries.filter((d) => !silent.includes(d));
    const waves = splitWaves(
      input.devices.filter((d) => !silent.includes(d)),
      responsiveCanaries,
      spec.waves.percents,
    );
    status.waves = waves.map((devices, index): WaveStatus => ({
      index,
      devices,
      state: 'pending',
      activated: 0,
      failed: 0,
      unresponsive: 0,
      servingP95Ms: null,
    }));
    let baselineP95: number | null = null;
    for (const wave of status.waves) {
      const outcome = await runWave(wave, winner);
      if (wave.index === 0) baselineP95 = outcome.servingP95Ms;
      if (!outcome.passed) {
        const { cleared } = await restore(wave.devices);
        wave.state = 'rolled_back';
        wave.reason =
          outcome.reason +
          (cleared.length
            ? `; ${cleared.length} device(s) had no earlier model to return to and keep the new one`
            : '');
        status.devicesFailed += outcome.failed;
        return await finish('rolled_back', `wave ${wave.index} rolled back: ${wave.reason}`);
      }
      wave.state = 'passed';
      wave.reason = outcome.reason;
      status.devicesDone += outcome.activated;
      status.devicesFailed += outcome.failed;
      await report();
    }
    return await finish(
      choice.fellBack ? 'fell_back' : 'succeeded',
      `${status.chosen.variant} on ${status.devicesDone} of ${status.devicesTotal} devices: ${choice.reason}`,
    );

    async function runWave(wave: WaveStatus, model: SignedManifest) {
      wave.state = 'activating';
      await report();
      for (const d of wave.devices) events.delete(d);
      wave.devices.forEach((d) => touched.add(d));
      await orchestrator.writeDesiredState({
        deviceIds: wave.devices,
        state: { kind: 'run', rolloutId, model, issuedAt: new Date().toISOString() },
      });
      const settled = (d: string) => {
        const e = events.get(d);
        return (
          e !== undefined && e.variant === model.manifest.variant && TERMINAL_EVENTS.has(e.event)
        );
      };
      await condition(() => wave.devices.every(settled), `${spec.reportTimeoutSeconds} seconds`);

      wave.state = 'baking';
      await report();
      await sleep(`${spec.waves.bakeSeconds} seconds`);
      // After the bake, what the registry says wins: a device that activated and then fell back
      // (crash loop, a later health check) no longer serves the new model.
      const states = await orchestrator.deviceModelStates({
        deviceIds: wave.devices,
        minServingSamples: MIN_SERVING_SAMPLES,
      });
      const outcomes: Record<string, DeviceOutcome> = {};
      const servingP95Ms: Record<string, number> = {};
      for (const state of states) {
        const event = events.get(state.deviceId);
        const serving = state.activeSha256 === model.manifest.model.sha256;
        outcomes[state.deviceId] = serving
          ? 'activated'
          : (event && TERMINAL_EVENTS.has(event.event)) || state.lastStatus?.rolloutId === rolloutId
            ? 'failed'
            : 'unresponsive';
        if (serving && state.servingP95Ms !== null)
          servingP95Ms[state.deviceId] = state.servingP95Ms;
      }
      for (const d of wave.devices) outcomes[d] ??= 'unresponsive';
      const judged = judgeWave({
        outcomes,
        servingP95Ms,
        baselineP95Ms: baselineP95,
        maxFailedShare: spec.waves.maxFailedShare,
        maxP95Regression: spec.waves.maxP95Regression,
      });
      Object.assign(wave, {
        activated: judged.activated,
        failed: judged.failed,
        unresponsive: judged.unresponsive,
        servingP95Ms: judged.servingP95Ms,
      });
      status.unresponsive.push(
        ...Object.entries(outcomes)
          .filter(([, o]) => o === 'unresponsive')
          .map(([d]) => d),
      );
      return judged;
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled: every device this class touched goes back to what it ran before.
    await CancellationScope.nonCancellable(async () => {
      await restore([...members].filter((d) => touched.has(d)));
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
