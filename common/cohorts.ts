/**
 * Cohorts: every device of a hardware class falls into one of COHORTS buckets by a stable hash of
 * its id, and a release track holds one desired state per (class, cohort). A wave moves a range
 * of cohorts, so its writes are O(cohorts), never O(devices). Pure module: workflow code, the
 * agent and the control plane all use it and must agree.
 */

export const COHORTS = 100;

/** The cohort of a device: FNV-1a (32 bit) of its id, modulo COHORTS. Stable forever. */
export function cohortOf(deviceId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    hash ^= deviceId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % COHORTS;
}

/** A half-open range of cohorts [from, to). */
export interface CohortRange {
  from: number;
  to: number;
}

/**
 * The cohort ranges of waves that bring the class up to each cumulative percent: [10, 50, 100]
 * gives [0, 10), [10, 50), [50, 100). Percents that add no cohort are dropped.
 */
export function cohortRanges(percents: number[]): CohortRange[] {
  const ranges: CohortRange[] = [];
  let done = 0;
  for (const percent of percents) {
    const to = Math.min(COHORTS, Math.ceil((percent / 100) * COHORTS));
    if (to > done) ranges.push({ from: done, to });
    done = Math.max(done, to);
  }
  if (done < COHORTS) ranges.push({ from: done, to: COHORTS });
  return ranges;
}

/** The cohorts of a range, in order. */
export function cohortsIn(range: CohortRange): number[] {
  return Array.from({ length: range.to - range.from }, (_, i) => range.from + i);
}
