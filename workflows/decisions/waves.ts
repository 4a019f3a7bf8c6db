import { cohortRanges, type CohortRange } from '../../common/cohorts.js';

/**
 * Wave planning and judgement for one hardware class. Pure and deterministic (workflow code).
 * Waves move cohorts of the class's release track, never lists of devices.
 */

export interface PlannedWave {
  range: CohortRange;
  /** Online devices in the range when the waves were planned. */
  online: number;
}

/**
 * The cohort ranges of `percents` (cohortRanges), with the online devices of each. A range with
 * no online device cannot be judged: it joins the next wave (the last one joins the one before),
 * so every cohort is still moved, and every wave has devices to judge it by. No online device at
 * all: one wave over every cohort.
 */
export function planWaves(percents: number[], onlinePerCohort: readonly number[]): PlannedWave[] {
  const online = (r: CohortRange) => onlinePerCohort.slice(r.from, r.to).reduce((n, c) => n + c, 0);
  const waves: PlannedWave[] = [];
  let pendingFrom: number | null = null;
  for (const range of cohortRanges(percents)) {
    const from: number = pendingFrom ?? range.from;
    const merged = { from, to: range.to };
    if (online(merged) === 0) {
      pendingFrom = from;
      continue;
    }
    pendingFrom = null;
    waves.push({ range: merged, online: online(merged) });
  }
  if (pendingFrom !== null) {
    const last = waves.pop();
    const range = { from: last?.range.from ?? pendingFrom, to: onlinePerCohort.length };
    waves.push({ range, online: online(range) });
  }
  return waves;
}

export interface WaveJudgementInput {
  /** Online devices of the wave when it started: each owes an answer. */
  expected: number;
  /** Devices serving the new model when the wave is judged. */
  succeeded: number;
  /** Devices whose last report for the rollout was a failure (health check, refusal, rollback). */
  failed: number;
  /** The wave's serving p95 of the new model; null when it did not serve enough to tell. */
  servingP95Ms: number | null;
  /** The canaries' serving p95; null when they did not serve enough to tell. */
  baselineP95Ms: number | null;
  /** Share of `expected` that must succeed (the quorum): silence counts against it. */
  minSuccessShare: number;
  maxFailedShare: number;
  maxP95Regression: number;
}

export interface WaveJudgement {
  activated: number;
  failed: number;
  unresponsive: number;
  servingP95Ms: number | null;
  passed: boolean;
  reason: string;
}

const pct = (share: number) => `${(share * 100).toFixed(0)}%`;

/**
 * A wave passes when at least minSuccessShare of its online devices serve the new model (a silent
 * device counts against it), at most maxFailedShare of those that answered failed, and its serving
 * p95 did not regress against the canaries' by more than maxP95Regression.
 */
export function judgeWave(input: WaveJudgementInput): WaveJudgement {
  const activated = input.succeeded;
  const failed = input.failed;
  const unresponsive = Math.max(0, input.expected - activated - failed);
  const base = { activated, failed, unresponsive, servingP95Ms: input.servingP95Ms };
  const responsive = activated + failed;
  if (input.expected === 0 && responsive === 0) {
    return { ...base, passed: false, reason: 'no device of the wave was online to judge it by' };
  }
  if (responsive > 0 && failed / responsive > input.maxFailedShare) {
    return {
      ...base,
      passed: false,
      reason:
        `${failed} of ${responsive} devices failed (${pct(failed / responsive)}, ` +
        `the limit is ${pct(input.maxFailedShare)})`,
    };
  }
  const expected = Math.max(input.expected, responsive);
  if (activated / expected < input.minSuccessShare) {
    return {
      ...base,
      passed: false,
      reason:
        `${activated} of ${expected} online devices serve the new model (${pct(activated / expected)}; ` +
        `${unresponsive} did not answer), the quorum is ${pct(input.minSuccessShare)}`,
    };
  }
  const { servingP95Ms, baselineP95Ms } = input;
  if (servingP95Ms !== null && baselineP95Ms !== null && baselineP95Ms > 0) {
    const regression = servingP95Ms / baselineP95Ms - 1;
    if (regression > input.maxP95Regression) {
      return {
        ...base,
        passed: false,
        reason:
          `serving p95 ${servingP95Ms.toFixed(2)} ms is ${pct(regression)} over the ` +
          `canaries' ${baselineP95Ms.toFixed(2)} ms (the limit is ${pct(input.maxP95Regression)})`,
      };
    }
  }
  const latency =
    servingP95Ms === null
      ? 'no serving latency to compare yet'
      : `serving p95 ${servingP95Ms.toFixed(2)} ms`;
  return {
    ...base,
    passed: true,
    reason: `${activated} activated, ${failed} failed, ${unresponsive} unresponsive; ${latency}`,
  };
}
