/** Returns a number in [0, 1), like Math.random; injected so tests can pin it. */
export type Random = () => number;

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  random?: Random;
}

/** The contract with the control plane: start at 1 s, never wait more than 60 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1_000, capMs: 60_000 };

/**
 * Exponential backoff with full jitter: the n-th consecutive failure waits a uniform random time
 * in [0, min(cap, base·2ⁿ)). Full jitter spreads a fleet that lost the control plane at the same
 * moment, so they do not all come back in the same second.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #capMs: number;
  readonly #random: Random;
  #failures = 0;

  constructor(options: BackoffOptions = DEFAULT_BACKOFF) {
    if (!(options.baseMs > 0 && options.capMs >= options.baseMs)) {
      throw new RangeError(
        `backoff needs 0 < baseMs <= capMs; got baseMs ${options.baseMs}, capMs ${options.capMs}`,
      );
    }
    this.#baseMs = options.baseMs;
    this.#capMs = options.capMs;
    this.#random = options.random ?? Math.random;
  }

  /** The longest wait there is. */
  get capMs(): number {
    return this.#capMs;
  }

  /** Consecutive failures so far. */
  get failures(): number {
    return this.#failures;
  }

  /** The wait after one more failure. */
  next(): number {
    // Past 2^32 the ceiling is the cap anyway; stop the exponent growing without bound.
    const ceiling = Math.min(this.#capMs, this.#baseMs * 2 ** Math.min(this.#failures, 32));
    this.#failures += 1;
    return this.#random() * ceiling;
  }

  /** After a success: the next failure waits at most baseMs again. */
  reset(): void {
    this.#failures = 0;
  }
}

/** `ms` moved by up to ±fraction, uniformly, so devices that started together drift apart. */
export function jitter(ms: number, fraction: number, random: Random = Math.random): number {
  return ms * (1 + fraction * (2 * random() - 1));
}
