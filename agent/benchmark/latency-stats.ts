import { median } from '../../common/median.js';

/** Latency of the timed runs, as ReportBenchmark's LatencyStats carries it. */
export interface LatencySummary {
  p50Ms: number;
  p90Ms: number;
  p95Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Coefficient of variation: standard deviation / mean; how steady the runs were. */
  cv: number;
  runs: number;
  /** The p95 of each round, in round order (one entry for a single round). */
  roundP95Ms: number[];
}

/**
 * The p-th percentile (0 < p ≤ 100) of ascending `sorted` by the nearest-rank method, as MLPerf's
 * loadgen reports it: the smallest sample that at least p% of the samples do not exceed. It is
 * always a measured value, never an interpolation between two runs.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no samples');
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile ${p} is not in (0, 100]`);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[rank - 1]!;
}

/** Percentiles, mean and coefficient of variation (population standard deviation) of runs. */
export function summarizeLatencies(latenciesMs: readonly number[]): LatencySummary {
  if (latenciesMs.length === 0) throw new RangeError('no timed runs to summarize');
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const runs = sorted.length;
  const meanMs = sorted.reduce((sum, v) => sum + v, 0) / runs;
  const variance = sorted.reduce((sum, v) => sum + (v - meanMs) ** 2, 0) / runs;
  return {
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    meanMs,
    cv: meanMs > 0 ? Math.sqrt(variance) / meanMs : 0,
    runs,
    roundP95Ms: [percentile(sorted, 95)],
  };
}

/**
 * Combines the runs of several rounds of one model. The percentiles are the medians of the
 * rounds' percentiles, so one round that a burst of background load hit does not move them; mean
 * and coefficient of variation are over all runs; roundP95Ms keeps each round's p95, whose spread
 * says how far two models' p95s must differ to be a real difference.
 */
export function summarizeRounds(rounds: readonly (readonly number[])[]): LatencySummary {
  if (rounds.length === 0) throw new RangeError('no rounds to summarize');
  const perRound = rounds.map((r) => summarizeLatencies(r));
  const pooled = summarizeLatencies(rounds.flat());
  const medianOf = (pick: (s: LatencySummary) => number) => median(perRound.map(pick))!;
  return {
    p50Ms: medianOf((s) => s.p50Ms),
    p90Ms: medianOf((s) => s.p90Ms),
    p95Ms: medianOf((s) => s.p95Ms),
    p99Ms: medianOf((s) => s.p99Ms),
    meanMs: pooled.meanMs,
    cv: pooled.cv,
    runs: pooled.runs,
    roundP95Ms: perRound.map((s) => s.p95Ms),
  };
}
