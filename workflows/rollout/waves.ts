import { median } from '../../common/median.js';

/**
 * Wave planning and judgement for one hardware class. Pure and deterministic (workflow code).
 */

/**
 * Wave 0 is the canaries; then the other devices in order, each wave bringing the class's
 * non-canary devices up to its cumulative percent (rounded up, so 10% of 3 devices is 1).
 * Waves that would add nobody are dropped.
 */
export function splitWaves(devices: string[], canaries: string[], percents: number[]): string[][] {
  const rest = devices.filter((d) => !canaries.includes(d));
  const waves: string[][] = canaries.length ? [canaries] : [];
  let done = 0;
  for (const percent of percents) {
    const upTo = Math.min(rest.length, Math.ceil((percent / 100) * rest.length));
    if (upTo > done) waves.push(rest.slice(done, upTo));
    done = Math.max(done, upTo);
  }
  if (done < rest.length) waves.push(rest.slice(done));
  return waves;
}

/** How one device came out of its wave. */
export type DeviceOutcome = 'activated' | 'failed' | 'unresponsive';

export interface WaveJudgementInput {
  outcomes: Record<string, DeviceOutcome>;
  /** Serving p95 per device that served enough requests since activation. */
  servingP95Ms: Record<string, number>;
  /** The canaries' median serving p95; null when they did not serve enough to tell. */
  baselineP95Ms: number | null;
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

/**
 * A wave fails when the share of its responsive devices that failed (health check, refusal,
 * crash loop) is above maxFailedShare, or when its median serving p95 regressed against the
 * canaries' by more than maxP95Regression. Unresponsive devices are left out of both.
 */
export function judgeWave(input: WaveJudgementInput): WaveJudgement {
  const outcomes = Object.values(input.outcomes);
  const activated = outcomes.filter((o) => o === 'activated').length;
  const failed = outcomes.filter((o) => o === 'failed').length;
  const unresponsive = outcomes.filter((o) => o === 'unresponsive').length;
  const responsive = activated + failed;
  const servingP95Ms = median(
    Object.entries(input.servingP95Ms)
      .filter(([device]) => input.outcomes[device] === 'activated')
      .map(([, p95]) => p95),
  );
  const base = { activated, failed, unresponsive, servingP95Ms };
  if (responsive === 0) {
    return { ...base, passed: false, reason: 'no device of the wave reported back' };
  }
  const failedShare = failed / responsive;
  if (failedShare > input.maxFailedShare) {
    return {
      ...base,
      passed: false,
      reason:
        `${failed} of ${responsive} devices failed (${(failedShare * 100).toFixed(0)}%, ` +
        `the limit is ${(input.maxFailedShare * 100).toFixed(0)}%)`,
    };
  }
  if (servingP95Ms !== null && input.baselineP95Ms !== null && input.baselineP95Ms > 0) {
    const regression = servingP95Ms / input.baselineP95Ms - 1;
    if (regression > input.maxP95Regression) {
      return {
        ...base,
        passed: false,
        reason:
          `serving p95 ${servingP95Ms.toFixed(2)} ms is ${(regression * 100).toFixed(0)}% over the ` +
          `canaries' ${input.baselineP95Ms.toFixed(2)} ms (the limit is ` +
          `${(input.maxP95Regression * 100).toFixed(0)}%)`,
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
