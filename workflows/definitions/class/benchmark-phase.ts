import { condition } from '@temporalio/workflow';
import type { SignedManifest } from '../../../common/manifest.js';
import type { BenchmarkReportSignal, ClassStatus } from '../../../common/rollout.js';
import { chooseVariant, type Choice, type CandidateInput } from '../../decisions/choose.js';
import type { ManifestParts } from '../../decisions/manifests.js';
import { orchestrator, orchestratorLong } from '../proxies.js';
import type { ClassRolloutInput } from './input.js';

/** The variant name devices report for the fp32 teacher, benchmarked as the speedup reference. */
export const TEACHER_REFERENCE = 'teacher_fp32';

export interface BenchmarkOutcome {
  choice: Choice;
  /** Every signed candidate (and the teacher), by variant. */
  manifests: Map<string, SignedManifest>;
  /** Canaries that reported nothing within the timeout. */
  silent: string[];
}

/**
 * Signs every candidate the gpu worker accepted (and the teacher, for speedups), has the canaries
 * benchmark them all on their own hardware, and chooses the variant from their reports.
 * `reports` fills from the benchmarkReported signal; what did not arrive is re-read from the
 * benchmarks bucket.
 */
export async function benchmarkOnCanaries(
  input: ClassRolloutInput,
  status: ClassStatus,
  reports: Map<string, BenchmarkReportSignal>,
  expiresAt: () => string,
  report: () => Promise<void>,
): Promise<BenchmarkOutcome> {
  const { spec, rolloutId, hardwareClass } = input;
  const canaries = status.canaries;
  const version = Date.now();
  const toSign = input.candidates
    .filter((c) => c.built.status === 'accepted')
    .map((c) => ({ variant: c.variant, built: c.built }));
  if (input.teacherReference?.manifest) {
    toSign.push({ variant: TEACHER_REFERENCE, built: input.teacherReference });
  }
  // Long: it copies every candidate's files into the class's release bucket first.
  const signed = await orchestratorLong.signManifests({
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
  const manifests = new Map(signed.map((s) => [s.manifest.variant, s]));

  status.phase = 'benchmarking';
  await report();
  await orchestrator.writeDeviceStates({
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
  const allReported = () => canaries.every((d) => variants.every((v) => reports.has(`${d}|${v}`)));
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
  if (manifests.has(TEACHER_REFERENCE)) {
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
  return { choice, manifests, silent };
}
