/**
 * Latency histograms as the agents count them and heartbeats carry them: upper bounds in seconds,
 * one count per bound plus one for +Inf, counts per bucket (not cumulative). Pure functions: the
 * control plane aggregates with them, the rollout workflow reads quantiles with them.
 */

/**
 * Upper bounds (seconds) of the edge inference latency histogram, in the agents' /metrics and
 * heartbeats and in the control plane's histogram, so a heartbeat's counts add bucket for bucket:
 * from half a millisecond (a small model on a server CPU) to seconds (a large one on a Pi).
 */
export const EDGE_LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/**
 * The q-quantile (0 ≤ q ≤ 1) of a histogram, interpolating linearly inside the bucket it falls in,
 * exactly as PromQL's histogram_quantile: NaN when the histogram is empty, the highest finite bound
 * when the quantile falls in the +Inf bucket, and 0 as the lower edge of the first bucket.
 * `counts` has one entry per bound plus one for +Inf, each the count of that bucket alone.
 */
export function histogramQuantile(
  bounds: readonly number[],
  counts: readonly number[],
  q: number,
): number {
  if (counts.length !== bounds.length + 1) {
    throw new RangeError(
      `a histogram with ${bounds.length} bounds has ${bounds.length + 1} counts, not ${counts.length}`,
    );
  }
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  if (bounds.length === 0) return NaN;
  const cumulative: number[] = [];
  counts.reduce((sum, c, i) => (cumulative[i] = sum + c), 0);
  const observations = cumulative.at(-1)!;
  if (observations === 0) return NaN;
  let rank = q * observations;
  // The first finite bucket whose cumulative count reaches the rank; +Inf when none does.
  let b = cumulative.findIndex((c, i) => i < bounds.length && c >= rank);
  if (b === -1) b = bounds.length;
  if (b === bounds.length) return bounds.at(-1)!;
  if (b === 0 && bounds[0]! <= 0) return bounds[0]!;
  let start = 0;
  let count = cumulative[b]!;
  if (b > 0) {
    start = bounds[b - 1]!;
    count -= cumulative[b - 1]!;
    rank -= cumulative[b - 1]!;
  }
  return start + (bounds[b]! - start) * (rank / count);
}

/**
 * Moves per-bucket counts from one set of bounds onto another: each source bucket lands in the
 * first target bucket whose bound is at least its own (+Inf when none is). Exact when every source
 * bound is also a target bound (the agents' buckets are the control plane's); otherwise a count
 * may land one bucket higher than its value, never lower, so cumulative counts stay true bounds.
 */
export function rebucket(
  fromBounds: readonly number[],
  fromCounts: readonly number[],
  toBounds: readonly number[],
): number[] {
  if (fromCounts.length !== fromBounds.length + 1) {
    throw new RangeError(
      `a histogram with ${fromBounds.length} bounds has ${fromBounds.length + 1} counts, not ${fromCounts.length}`,
    );
  }
  const out = new Array<number>(toBounds.length + 1).fill(0);
  fromCounts.forEach((count, i) => {
    if (count === 0) return;
    const bound = i < fromBounds.length ? fromBounds[i]! : Infinity;
    const j = toBounds.findIndex((b) => b >= bound);
    out[j === -1 ? toBounds.length : j]! += count;
  });
  return out;
}
