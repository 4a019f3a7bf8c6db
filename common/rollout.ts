/**
 * The rollout contract shared by the workflows, the control plane and the CLI: what a rollout is
 * asked to do (RolloutSpec), what it reports while it runs and when it ends (RolloutStatus), and
 * the device reports the control plane forwards to it as signals. Pure module: workflow code
 * imports it.
 */
import type { BenchmarkSettings } from './desired-state.js';
import type { DatasetSpec, DistillConfig, FileRef, TeacherConfig } from './gpu-contracts.js';
import type { DeviceFailure } from './census.js';
import type { CohortRange } from './cohorts.js';
import type { VariantName } from './variants.js';

/** Where the model to roll out comes from. */
export type ModelSource =
  | {
      /** Get a teacher (train, checkpoint or ONNX) and distill a student from it. */
      kind: 'distill';
      teacher: TeacherConfig;
      student: { architecture: string; distill?: DistillConfig };
    }
  | {
      /** Bring your own model: an already trained ONNX classifier; no teacher, no distillation. */
      kind: 'onnx';
      model: FileRef;
    };

export interface WavePlan {
  /**
   * Cumulative share of each class's devices that runs the new model after each wave, in
   * percent, after the canaries: [10, 50, 100] means canaries → 10% → 50% → everyone.
   */
  percents: number[];
  /** How long each wave runs before its health is judged. */
  bakeSeconds: number;
  /** A wave whose share of failed devices (health check, refusal) is above this is rolled back. */
  maxFailedShare: number;
  /**
   * Share of a wave's online devices that must serve the new model after the bake (the quorum);
   * a device that stays silent counts against it.
   */
  minSuccessShare: number;
  /**
   * A wave whose median serving p95 exceeds the canaries' by more than this share (0.25 = 25%)
   * is rolled back. Judged only when both have served enough requests to tell.
   */
  maxP95Regression: number;
}

export interface RolloutSpec {
  /** [A-Za-z0-9_-]{1,64}; names the workflow, the objects and the records. */
  rolloutId: string;
  /** The model id in the manifests; default `<rolloutId>-<architecture>`. */
  modelId?: string;
  dataset: DatasetSpec;
  source: ModelSource;
  /**
   * Largest accuracy loss against the fp32 student (0.01 = 1 point), judged centrally on the test
   * split and again on each device's holdout run.
   */
  accuracyBudget: number;
  /** On-device p95 a variant must meet; null for no SLO. */
  latencySloMs: number | null;
  /**
   * Benchmark exactly these formats (and the fp32 baseline) on every class, in the planner's
   * order, even ones the planner would leave out; what the planner proposes when absent.
   */
  formats?: VariantName[];
  /** Candidates per class besides the fp32 baseline. */
  maxCandidates: number;
  /** Canary devices per class that benchmark every candidate. */
  canaries: number;
  /**
   * Devices to use as canaries (those of each class that are online), before any drawn ones.
   * Absent: drawn at random from each class's healthy online devices, spread over cohorts.
   */
  canaryDevices?: string[];
  /** Seed of the canary draw; absent: a random one (recorded in the class's status). */
  canarySeed?: number;
  waves: WavePlan;
  benchmark: BenchmarkSettings;
  /** A device that has not reported this long after it was asked is left out as unresponsive. */
  reportTimeoutSeconds: number;
  /** Only these hardware classes; every class with online devices when absent. */
  hardwareClasses?: string[];
  /** How long signed manifests stay valid. */
  manifestTtlHours: number;
}

/** Defaults for the optional knobs, so a spec file need only say what matters to it. */
export const ROLLOUT_DEFAULTS = {
  accuracyBudget: 0.01,
  latencySloMs: null,
  maxCandidates: 4,
  canaries: 1,
  waves: {
    percents: [10, 50, 100],
    bakeSeconds: 60,
    maxFailedShare: 0.2,
    minSuccessShare: 0.9,
    maxP95Regression: 0.25,
  },
  benchmark: { warmupRuns: 10, minRuns: 100, minSeconds: 1, threads: 0, rounds: 3 },
  reportTimeoutSeconds: 600,
  manifestTtlHours: 24 * 30,
} satisfies Partial<RolloutSpec>;

export type RolloutPhase =
  | 'preparing_teacher'
  | 'distilling'
  | 'importing_model'
  | 'planning'
  | 'building_variants'
  | 'rolling_out'
  | 'succeeded'
  | 'partially_succeeded'
  | 'failed'
  | 'cancelled';

export const FINISHED_PHASES: readonly RolloutPhase[] = [
  'succeeded',
  'partially_succeeded',
  'failed',
  'cancelled',
];

export type ClassPhase =
  | 'waiting'
  | 'publishing'
  | 'benchmarking'
  | 'choosing'
  | 'rolling_out'
  /** Ended with its chosen variant everywhere. */
  | 'succeeded'
  /** Ended on the fp32 student because no quantized variant qualified. */
  | 'fell_back'
  /** Nothing qualified, or no canary answered: no device was changed. */
  | 'failed'
  /** A wave regressed: rolled back and stopped. */
  | 'rolled_back'
  | 'cancelled';

/** What the canaries measured for one candidate, summarised over them (medians). */
export interface OnDeviceResult {
  devices: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  cv: number;
  /**
   * How far apart repeated measurements of this p95 fell (workflows/decisions/choose.ts roundNoise:
   * the robust standard deviation of a device's round p95s), the median over the devices; 0 when
   * measured in one round.
   */
  p95NoiseMs: number;
  /** The p95 of each benchmark round (the median over the devices, round by round). */
  roundP95Ms: number[];
  /** On the holdout bundle; null when the model shipped none. */
  accuracy: number | null;
  /** Top-1 agreement with the fp32 student on the holdout. */
  agreement: number | null;
  /** Failed runs, by device id. */
  errors: Record<string, string>;
}

export type CandidateVerdict =
  | 'won'
  /** Qualified but slower than the winner. */
  | 'slower'
  | 'rejected_centrally'
  | 'not_applicable'
  | 'over_accuracy_budget_on_device'
  | 'over_latency_slo'
  | 'failed_on_device'
  /** The fp32 teacher, benchmarked only as the speedup reference. */
  | 'reference';

export interface CandidateOutcome {
  variant: string;
  /** Why the planner proposed it. */
  planReasons: string[];
  sizeBytes: number | null;
  centralAccuracy: number | null;
  onDevice: OnDeviceResult | null;
  verdict: CandidateVerdict;
  reason: string;
}

export interface ChosenVariant {
  variant: string;
  /** Why it won, in words. */
  reason: string;
  version: number;
  sha256: string;
  sizeBytes: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  accuracy: number | null;
  /** On-device p95 of the fp32 teacher / the chosen variant's; null when not measured. */
  speedupVsTeacher: number | null;
  /** On-device p95 of the fp32 student / the chosen variant's. */
  speedupVsFp32: number | null;
  /** Teacher's model file size / the chosen variant's; null without a teacher. */
  sizeRatioVsTeacher: number | null;
}

export type WaveState = 'pending' | 'activating' | 'baking' | 'passed' | 'rolled_back';

export interface WaveStatus {
  /** 0 is the canaries. */
  index: number;
  /** The cohorts of the class's track this wave moves; null for the canaries' wave. */
  cohorts: CohortRange | null;
  /** Online devices of the wave when it started. */
  devices: number;
  state: WaveState;
  activated: number;
  failed: number;
  unresponsive: number;
  /** Serving p95 of the new model on the wave's devices, when they served enough requests. */
  servingP95Ms: number | null;
  reason?: string;
  /** A bounded sample of the devices that failed, with why. */
  failures?: DeviceFailure[];
}

export interface ClassStatus {
  hardwareClass: string;
  phase: ClassPhase;
  devicesTotal: number;
  /** Devices running the chosen variant. */
  devicesDone: number;
  devicesFailed: number;
  /** Canaries that did not report in time, left out (a bounded list: canaries only). */
  unresponsive: string[];
  /** Devices of the waves that did not answer in time. */
  unresponsiveCount: number;
  canaries: string[];
  /** The seed the canaries were drawn with. */
  canarySeed: number;
  candidates: CandidateOutcome[];
  chosen: ChosenVariant | null;
  waves: WaveStatus[];
  /** Why the class ended as it did. */
  reason: string;
  updatedAt: string;
}

export interface ModelSummary {
  architecture: string;
  sizeBytes: number;
  parameters: number | null;
  testAccuracy: number;
}

export interface RolloutStatus {
  rolloutId: string;
  modelId: string | null;
  phase: RolloutPhase;
  /** What the current phase is doing, e.g. "distilling: epoch 3/10". */
  detail: string;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
  spec: RolloutSpec;
  teacher: ModelSummary | null;
  student: ModelSummary | null;
  /** The dataset's labels, or the imported model's own predictions (agreement = accuracy). */
  labels: 'dataset' | 'model_predictions' | null;
  classes: ClassStatus[];
  /** Classes left out, with why (no online device, filtered). */
  skippedClasses: { hardwareClass: string; reason: string }[];
  error: string | null;
}

/** A benchmark report from a device, as the control plane forwards it to the class workflow. */
export interface BenchmarkReportSignal {
  deviceId: string;
  variant: string;
  modelSha256: string;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  cv: number;
  runs: number;
  /**
   * The p95 of each interleaved benchmark round. Absent in reports from before rounds existed
   * (and in their recorded histories): the noise is then unknown and taken as 0.
   */
  roundP95Ms?: number[];
  /** Holdout accuracy; null when the model shipped no holdout. */
  accuracy: number | null;
  agreement: number | null;
  /** Set when the benchmark could not run. */
  error: string | null;
}

type LatencyField = 'p50Ms' | 'p95Ms' | 'p99Ms' | 'cv' | 'runs' | 'roundP95Ms';

/** What ReportBenchmark carries (proto ReportBenchmarkRequest), as far as a signal needs it. */
export interface BenchmarkReportFields {
  variant: string;
  modelSha256: string;
  latency?: Pick<BenchmarkReportSignal, LatencyField> | undefined;
  accuracy: number;
  top1Agreement: number;
  error: string;
}

/**
 * A device's benchmark report as the class workflow sees it, whether it came as a signal from
 * the control plane or was re-read from the benchmarks bucket. A failed run has no accuracy.
 */
export function benchmarkSignal(deviceId: string, r: BenchmarkReportFields): BenchmarkReportSignal {
  const failed = Boolean(r.error);
  return {
    deviceId,
    variant: r.variant,
    modelSha256: r.modelSha256,
    p50Ms: r.latency?.p50Ms ?? 0,
    p95Ms: r.latency?.p95Ms ?? 0,
    p99Ms: r.latency?.p99Ms ?? 0,
    cv: r.latency?.cv ?? 0,
    runs: r.latency?.runs ?? 0,
    roundP95Ms: r.latency?.roundP95Ms ?? [],
    accuracy: failed ? null : r.accuracy,
    agreement: failed ? null : r.top1Agreement,
    error: r.error || null,
  };
}

export type DeviceEvent =
  'activated' | 'health_check_failed' | 'rolled_back' | 'refused' | 'download_failed';

/** The rollout workflow's type name (workflows/definitions/rollout.ts), for clients that start it. */
export const ROLLOUT_WORKFLOW_TYPE = 'rolloutWorkflow';

/** Signal names, shared by the workflows (handlers) and the control plane (senders). */
export const ROLLOUT_SIGNALS = {
  benchmarkReported: 'benchmarkReported',
  /** Why the rollout is being cancelled, sent just before the cancellation request. */
  cancelReason: 'cancelReason',
} as const;

export const ROLLOUT_QUERIES = {
  status: 'status',
} as const;

const ROLLOUT_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function isRolloutId(id: string): boolean {
  return ROLLOUT_ID.test(id);
}

/** Temporal workflow id of a rollout. */
export function rolloutWorkflowId(rolloutId: string): string {
  return `rollout-${rolloutId}`;
}

/** Temporal workflow id of one hardware class of a rollout (a child workflow). */
export function classWorkflowId(rolloutId: string, hardwareClass: string): string {
  return `rollout-${rolloutId}-class-${hardwareClass}`;
}

/** Key of a rollout's status record in the rollouts KV bucket. */
export function rolloutRecordKey(rolloutId: string): string {
  return `rollout.${rolloutId}`;
}

/** Key of the measurements kept per (architecture, class) in the rollouts KV bucket. */
export function measurementsKey(architecture: string, hardwareClass: string): string {
  return `measurements.${architecture.replace(/[^A-Za-z0-9_-]/g, '_')}.${hardwareClass}`;
}
