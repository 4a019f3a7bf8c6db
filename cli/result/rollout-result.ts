/**
 * The result of a rollout as a reader wants it: per hardware class the chosen variant and why,
 * its size, on-device latency and accuracy, how it compares with the fp32 teacher, and every
 * variant that lost with the reason. Derived from the workflow's RolloutStatus; pure.
 */
import type {
  CandidateVerdict,
  ChosenVariant,
  ClassPhase,
  ModelSummary,
  RolloutPhase,
  RolloutStatus,
  WaveState,
} from '../../common/rollout.js';

/** The variant name the workflow gives the fp32 teacher, benchmarked as the speedup reference. */
export const TEACHER_REFERENCE = 'teacher_fp32';

export interface VariantResult {
  variant: string;
  verdict: CandidateVerdict;
  sizeBytes: number | null;
  /** Canaries that measured it. */
  devices: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  /** On the devices' holdout run; null when not measured there. */
  accuracy: number | null;
  /** On the gpu worker's test split. */
  centralAccuracy: number | null;
  /** Why it won or lost, in words. */
  why: string;
  /** Why the planner proposed it. */
  planReasons: string[];
}

/** The chosen variant as the workflow reported it, with its reason as `why` like the others. */
export type ChosenResult = Omit<ChosenVariant, 'reason' | 'version' | 'sha256'> & { why: string };

export interface ClassResult {
  hardwareClass: string;
  phase: ClassPhase;
  devicesTotal: number;
  devicesDone: number;
  devicesFailed: number;
  /** Why the class ended as it did (or what it is doing). */
  reason: string;
  chosen: ChosenResult | null;
  /** The winner first, then the others by on-device p95 (unmeasured last), the teacher last. */
  variants: VariantResult[];
  waves: { index: number; devices: number; state: WaveState; activated: number; failed: number }[];
}

export interface RolloutResult {
  rolloutId: string;
  modelId: string | null;
  phase: RolloutPhase;
  detail: string;
  startedAt: string;
  finishedAt: string | null;
  /** Wall time from start to finish (or to the last update while running). */
  durationSeconds: number | null;
  dataset: { source: string; name: string; maxTrainSamples: number | null };
  accuracyBudget: number;
  latencySloMs: number | null;
  teacher: ModelSummary | null;
  student: ModelSummary | null;
  classes: ClassResult[];
  skippedClasses: { hardwareClass: string; reason: string }[];
  error: string | null;
}

const DATASET_NAMES: Record<string, string> = {
  fashion_mnist: 'Fashion-MNIST',
  digits: "digits (scikit-learn's 8×8)",
  npz: '.npz arrays',
  image_folder: 'image folder',
};

/** Lower is listed first: the winner, the qualified, the rejected, the reference. */
const VERDICT_ORDER: Record<CandidateVerdict, number> = {
  won: 0,
  slower: 1,
  over_latency_slo: 2,
  over_accuracy_budget_on_device: 3,
  failed_on_device: 4,
  rejected_centrally: 5,
  not_applicable: 6,
  reference: 7,
};

/**
 * The result view of a status. `now` (ms) is when a running rollout's duration is measured to;
 * without it, to its last update.
 */
export function rolloutResult(status: RolloutStatus, now?: number): RolloutResult {
  const end = status.finishedAt
    ? Date.parse(status.finishedAt)
    : (now ?? Date.parse(status.updatedAt));
  const duration = (end - Date.parse(status.startedAt)) / 1000;
  const dataset = status.spec.dataset;
  return {
    rolloutId: status.rolloutId,
    modelId: status.modelId,
    phase: status.phase,
    detail: status.detail,
    startedAt: status.startedAt,
    finishedAt: status.finishedAt,
    durationSeconds: Number.isFinite(duration) ? duration : null,
    dataset: {
      source: dataset.source,
      name: DATASET_NAMES[dataset.source] ?? dataset.source,
      maxTrainSamples: dataset.max_train_samples ?? null,
    },
    accuracyBudget: status.spec.accuracyBudget,
    latencySloMs: status.spec.latencySloMs,
    teacher: status.teacher,
    student: status.student,
    classes: status.classes.map((c): ClassResult => {
      const variants = c.candidates.map((o): VariantResult => ({
        variant: o.variant,
        verdict: o.verdict,
        sizeBytes: o.sizeBytes,
        devices: o.onDevice?.devices ?? 0,
        p50Ms: o.onDevice?.devices ? o.onDevice.p50Ms : null,
        p95Ms: o.onDevice?.devices ? o.onDevice.p95Ms : null,
        p99Ms: o.onDevice?.devices ? o.onDevice.p99Ms : null,
        accuracy: o.onDevice?.devices ? o.onDevice.accuracy : null,
        centralAccuracy: o.centralAccuracy,
        why: o.verdict === 'won' && c.chosen ? c.chosen.reason : o.reason,
        planReasons: o.planReasons,
      }));
      variants.sort(
        (a, b) =>
          VERDICT_ORDER[a.verdict] - VERDICT_ORDER[b.verdict] ||
          (a.p95Ms ?? Infinity) - (b.p95Ms ?? Infinity) ||
          a.variant.localeCompare(b.variant),
      );
      return {
        hardwareClass: c.hardwareClass,
        phase: c.phase,
        devicesTotal: c.devicesTotal,
        devicesDone: c.devicesDone,
        devicesFailed: c.devicesFailed,
        reason: c.reason,
        chosen: c.chosen ? chosenResult(c.chosen) : null,
        variants,
        waves: c.waves.map((w) => ({
          index: w.index,
          devices: w.devices,
          state: w.state,
          activated: w.activated,
          failed: w.failed,
        })),
      };
    }),
    skippedClasses: status.skippedClasses,
    error: status.error,
  };
}

/** The verdict in a few words, for tables. */
export function verdictLabel(verdict: CandidateVerdict): string {
  switch (verdict) {
    case 'won':
      return 'chosen';
    case 'slower':
      return 'slower';
    case 'rejected_centrally':
      return 'rejected centrally';
    case 'not_applicable':
      return 'not applicable';
    case 'over_accuracy_budget_on_device':
      return 'over accuracy budget';
    case 'over_latency_slo':
      return 'over latency SLO';
    case 'failed_on_device':
      return 'failed on device';
    case 'reference':
      return 'reference (teacher)';
  }
}

function chosenResult(chosen: ChosenVariant): ChosenResult {
  return {
    variant: chosen.variant,
    why: chosen.reason,
    sizeBytes: chosen.sizeBytes,
    p50Ms: chosen.p50Ms,
    p95Ms: chosen.p95Ms,
    p99Ms: chosen.p99Ms,
    accuracy: chosen.accuracy,
    speedupVsTeacher: chosen.speedupVsTeacher,
    speedupVsFp32: chosen.speedupVsFp32,
    sizeRatioVsTeacher: chosen.sizeRatioVsTeacher,
  };
}
