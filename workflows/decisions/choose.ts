import type {
  BenchmarkReportSignal,
  CandidateOutcome,
  OnDeviceResult,
} from '../../common/rollout.js';
import { median } from '../../common/median.js';

/**
 * Picks a hardware class's variant from what its canaries measured. Pure and deterministic
 * (workflow code). The winner met the accuracy budget ON THE DEVICE and the latency SLO, with the
 * lowest p95; a variant that failed any gate is never chosen.
 *
 * Two p95s closer than the measurement's own noise (how far the benchmark rounds of one variant
 * fell apart) are a tie, not a ranking: among the variants tied with the fastest, the clearly
 * smaller file wins (less to download, less memory), then the higher on-device accuracy (int8
 * calibrations share one graph and differ in exactly that), then the lower p95. A tie never
 * gives up more than MAX_TIE_SHARE of the fastest p95.
 */

export const FP32 = 'fp32';
/** The most p95 a tie may give up for a smaller or more accurate model: 3% of the fastest. */
export const MAX_TIE_SHARE = 0.03;
/** Files within 10% of the smallest tied one count as the same size. */
const SAME_SIZE = 1.1;

export interface CandidateInput {
  variant: string;
  planReasons: string[];
  /** What the gpu worker said about it. */
  central: {
    status: 'accepted' | 'rejected' | 'not_applicable';
    reason: string;
    sizeBytes: number | null;
    centralAccuracy: number | null;
  };
  /** Benchmarked only as the speedup reference (the fp32 teacher): never chosen. */
  reference?: boolean;
}

export interface ChoiceInput {
  candidates: CandidateInput[];
  reports: BenchmarkReportSignal[];
  /** Largest accuracy loss against the fp32 student (0.01 = 1 point). */
  accuracyBudget: number;
  latencySloMs: number | null;
  /** The fp32 student's holdout accuracy on the gpu worker: the base when no device measured it. */
  centralFp32HoldoutAccuracy: number | null;
}

export interface Choice {
  outcomes: CandidateOutcome[];
  /** Null when nothing qualified. */
  winner: string | null;
  /** Why it won, or why nothing did. */
  reason: string;
  /** The fp32 student won because every quantized candidate failed a gate. */
  fellBack: boolean;
}

// Reports are a few canaries per variant: medians resist one noisy device.
function medianOrNull(values: (number | null)[]): number | null {
  return median(values.filter((v): v is number => v !== null));
}

/**
 * How far repeated measurements of one p95 fall apart: the median absolute deviation of the round
 * p95s from their median, scaled (× 1.4826) to a standard deviation. Like the median p95 itself it
 * ignores one round that a burst of background load hit; 0 with fewer than two rounds.
 */
export function roundNoise(roundP95Ms: readonly number[]): number {
  if (roundP95Ms.length < 2) return 0;
  const mid = median([...roundP95Ms])!;
  return 1.4826 * median(roundP95Ms.map((v) => Math.abs(v - mid)))!;
}

/** Round i's p95: the median of the devices' round-i p95s. */
function roundByRound(reports: BenchmarkReportSignal[]): number[] {
  const rounds = Math.min(...reports.map((r) => r.roundP95Ms?.length ?? 0));
  if (!Number.isFinite(rounds)) return [];
  return Array.from({ length: rounds }, (_, i) => median(reports.map((r) => r.roundP95Ms![i]!))!);
}

function summarizeReports(reports: BenchmarkReportSignal[]): OnDeviceResult | null {
  if (reports.length === 0) return null;
  const ok = reports.filter((r) => !r.error);
  const errors = Object.fromEntries(
    reports.filter((r) => r.error).map((r) => [r.deviceId, r.error!]),
  );
  return {
    devices: ok.length,
    p50Ms: median(ok.map((r) => r.p50Ms)) ?? 0,
    p95Ms: median(ok.map((r) => r.p95Ms)) ?? 0,
    p99Ms: median(ok.map((r) => r.p99Ms)) ?? 0,
    cv: median(ok.map((r) => r.cv)) ?? 0,
    p95NoiseMs: median(ok.map((r) => roundNoise(r.roundP95Ms ?? []))) ?? 0,
    roundP95Ms: roundByRound(ok),
    accuracy: medianOrNull(ok.map((r) => r.accuracy)),
    agreement: medianOrNull(ok.map((r) => r.agreement)),
    errors,
  };
}

const points = (share: number) => `${(share * 100).toFixed(1)} points`;
const ms = (value: number) => `${value.toFixed(2)} ms`;

export function chooseVariant(input: ChoiceInput): Choice {
  const byVariant = new Map<string, BenchmarkReportSignal[]>();
  for (const r of input.reports) {
    byVariant.set(r.variant, [...(byVariant.get(r.variant) ?? []), r]);
  }
  const summaries = new Map(
    input.candidates.map((c) => [c.variant, summarizeReports(byVariant.get(c.variant) ?? [])]),
  );
  const fp32OnDevice = summaries.get(FP32)?.accuracy ?? null;
  const accuracyBase = fp32OnDevice ?? input.centralFp32HoldoutAccuracy;
  const baseName = fp32OnDevice !== null ? 'the fp32 student on the device' : 'the fp32 student';

  const qualified: QualifiedVariant[] = [];
  const outcomes: CandidateOutcome[] = input.candidates.map((c) => {
    const onDevice = summaries.get(c.variant) ?? null;
    const outcome = (verdict: CandidateOutcome['verdict'], reason: string): CandidateOutcome => ({
      variant: c.variant,
      planReasons: c.planReasons,
      sizeBytes: c.central.sizeBytes,
      centralAccuracy: c.central.centralAccuracy,
      onDevice,
      verdict,
      reason,
    });
    if (c.central.status === 'rejected') return outcome('rejected_centrally', c.central.reason);
    if (c.central.status === 'not_applicable') return outcome('not_applicable', c.central.reason);
    if (!onDevice || onDevice.devices === 0) {
      const errors = Object.entries(onDevice?.errors ?? {});
      return outcome(
        'failed_on_device',
        errors.length
          ? `failed on ${errors.map(([device, error]) => `${device}: ${error}`).join('; ')}`
          : 'no canary reported a benchmark for it',
      );
    }
    if (c.reference) {
      return outcome(
        'reference',
        `the fp32 teacher, measured for speedups: p95 ${ms(onDevice.p95Ms)}`,
      );
    }
    // Without a labelled holdout, agreement with the fp32 student is what can be judged.
    const accuracy = onDevice.accuracy;
    if (
      accuracy !== null &&
      accuracyBase !== null &&
      accuracyBase - accuracy > input.accuracyBudget + 1e-9
    ) {
      return outcome(
        'over_accuracy_budget_on_device',
        `holdout accuracy ${points(accuracy)} on the device is ${points(accuracyBase - accuracy)} ` +
          `below ${baseName} (${points(accuracyBase)}); the budget is ${points(input.accuracyBudget)}`,
      );
    }
    if (input.latencySloMs !== null && onDevice.p95Ms > input.latencySloMs) {
      return outcome(
        'over_latency_slo',
        `p95 ${ms(onDevice.p95Ms)} on the device is over the SLO of ${ms(input.latencySloMs)}`,
      );
    }
    qualified.push({
      variant: c.variant,
      p95: onDevice.p95Ms,
      noise: onDevice.p95NoiseMs,
      size: c.central.sizeBytes ?? Infinity,
      accuracy: onDevice.accuracy,
    });
    return outcome('slower', '');
  });

  const { best, fastest, tied } = pickAmongQualified(qualified);
  for (const o of outcomes) {
    if (o.verdict !== 'slower') continue;
    if (o.variant === best?.variant) {
      o.verdict = 'won';
      continue;
    }
    const p95 = o.onDevice!.p95Ms;
    o.reason = tied.some((t) => t.variant === o.variant)
      ? `p95 ${ms(p95)}, a tie with ${best!.variant} (${ms(best!.p95)}) within the measurement noise; ${best!.variant} is ${tieBreak(
          best!,
          qualified.find((q) => q.variant === o.variant)!,
        )}`
      : `p95 ${ms(p95)}, slower than ${best!.variant} (${ms(best!.p95)})`;
  }
  if (!best) {
    return {
      outcomes,
      winner: null,
      reason:
        'no candidate met the accuracy budget and the latency SLO on the devices: ' +
        outcomes
          .filter((o) => o.verdict !== 'reference')
          .map((o) => `${o.variant}: ${o.reason}`)
          .join('; '),
      fellBack: false,
    };
  }
  const quantizedTried = outcomes.filter((o) => o.variant !== FP32 && o.verdict !== 'reference');
  // Falling back means no quantized variant qualified; fp32 that simply measured fastest won.
  const fellBack = best.variant === FP32 && !qualified.some((q) => q.variant !== FP32);
  const won = outcomes.find((o) => o.variant === best.variant)!;
  const accuracy = won.onDevice!.accuracy;
  const gates = [
    accuracy !== null && accuracyBase !== null
      ? `accuracy ${points(accuracy)} on the device (${points(Math.max(0, accuracyBase - accuracy))} below ${baseName}, budget ${points(input.accuracyBudget)})`
      : 'no labelled holdout: accuracy judged on the gpu worker only',
    input.latencySloMs !== null ? `p95 within the ${ms(input.latencySloMs)} SLO` : 'no latency SLO',
  ].join('; ');
  const reason = fellBack
    ? `fell back to the fp32 student (p95 ${ms(best.p95)}): no quantized variant passed the gates (` +
      quantizedTried.map((o) => `${o.variant}: ${o.reason}`).join('; ') +
      `); ${gates}`
    : (best === fastest
        ? `lowest on-device p95 of the qualifying variants: ${ms(best.p95)}` +
          (runnerUp(qualified, best) ?? '')
        : `p95 ${ms(best.p95)} ties the fastest, ${fastest!.variant} (${ms(fastest!.p95)}), ` +
          `within the measurement noise, and it is ${tieBreak(best, fastest!)}`) + `; ${gates}`;
  won.reason = reason;
  return { outcomes, winner: best.variant, reason, fellBack };
}

export interface QualifiedVariant {
  variant: string;
  p95: number;
  /** The noise of its round p95s (roundNoise; OnDeviceResult.p95NoiseMs). */
  noise: number;
  size: number;
  accuracy: number | null;
}

/**
 * The fastest, the variants tied with it, and the one of those that wins (see the top). Exported
 * for the planner benchmark, which replays the choice on other shortlists.
 */
export function pickAmongQualified(qualified: QualifiedVariant[]): {
  best: QualifiedVariant | undefined;
  fastest: QualifiedVariant | undefined;
  tied: QualifiedVariant[];
} {
  const byP95 = [...qualified].sort(
    (a, b) => a.p95 - b.p95 || a.size - b.size || a.variant.localeCompare(b.variant),
  );
  const fastest = byP95[0];
  if (!fastest) return { best: undefined, fastest, tied: [] };
  const tied = byP95.filter(
    (q) =>
      q.p95 - fastest.p95 <=
      Math.min(Math.max(q.noise, fastest.noise), MAX_TIE_SHARE * fastest.p95),
  );
  const smallest = Math.min(...tied.map((q) => q.size));
  const best = tied
    .filter((q) => q.size <= smallest * SAME_SIZE)
    .sort(
      (a, b) =>
        (b.accuracy ?? -1) - (a.accuracy ?? -1) ||
        a.p95 - b.p95 ||
        a.variant.localeCompare(b.variant),
    )[0]!;
  return { best, fastest, tied };
}

/** Why `winner` beat `other`, a variant it tied with on p95. */
function tieBreak(winner: QualifiedVariant, other: QualifiedVariant): string {
  if (winner.size * SAME_SIZE < other.size) {
    return `${(other.size / winner.size).toFixed(1)}× smaller`;
  }
  if ((winner.accuracy ?? -1) > (other.accuracy ?? -1)) {
    return `more accurate on the device (${points(winner.accuracy!)} against ${points(other.accuracy ?? 0)})`;
  }
  return other.p95 === winner.p95 ? 'as fast and not larger' : 'faster';
}

function runnerUp(qualified: QualifiedVariant[], best: QualifiedVariant): string | null {
  const next = qualified
    .filter((q) => q !== best)
    .sort((a, b) => a.p95 - b.p95 || a.variant.localeCompare(b.variant))[0];
  return next ? ` against ${ms(next.p95)} for ${next.variant}` : null;
}
