/**
 * Hardware faults a simulated device pretends to have, from the `simulate` section of its profile
 * override file. For tests and the demo only: a device without an override file has none.
 */
export interface SimulatedFaults {
  accuracyFaults: AccuracyFault[];
  /**
   * Devices simulated on one host share its CPU: with this lock file they take turns at timed
   * benchmarks, so one device's runs do not slow down another's measurements.
   */
  sharedHostLock?: string;
  /**
   * A device slower than its class (thermal throttling, a busy neighbour process): every request
   * to the serving endpoint takes this many milliseconds longer, and is measured so.
   */
  servingDelayMs?: number;
}

/**
 * An int8 kernel that loses accuracy on this hardware (as u8s8 kernels saturate on x86 CPUs
 * without VNNI): for matching variants, a share of the top-1 predictions on the holdout is
 * moved to the next class, in the benchmark and in the activation health check.
 */
export interface AccuracyFault {
  /** Glob over the manifest's variant: `*` any run of characters, `?` one character. */
  variants: string;
  /** Share of holdout samples whose top-1 prediction is flipped, in [0, 1]. */
  flipShare: number;
}

/** The share of predictions to flip for `variant`: the first matching fault's, 0 when none. */
export function flipShareFor(faults: SimulatedFaults | undefined, variant: string): number {
  const fault = faults?.accuracyFaults.find((f) => globMatches(f.variants, variant));
  return fault?.flipShare ?? 0;
}

/**
 * Whether holdout sample `sample` is one of the flipped ones. Of n samples exactly
 * floor(n × share) are, spread evenly (share 0.5: every second sample), and always the same ones,
 * so two runs of one model on one device score alike.
 */
export function isFlipped(sample: number, share: number): boolean {
  // The epsilon keeps products that are whole numbers in decimal (0.57 × 100) from rounding down.
  const flippedBefore = (k: number) => Math.floor(k * share + 1e-9);
  return flippedBefore(sample + 1) > flippedBefore(sample);
}

/** Whether `value` matches `glob` as a whole; only `*` and `?` are special. */
export function globMatches(glob: string, value: string): boolean {
  const pattern = glob
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  return new RegExp(`^${pattern}$`, 's').test(value);
}
