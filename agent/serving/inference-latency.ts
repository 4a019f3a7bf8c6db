import type { Histogram } from 'prom-client';
import type { LatencyHistogramDelta } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { INFERENCE_LATENCY_BUCKETS } from '../metrics.js';

export interface LatencyLabels {
  model: string;
  variant: string;
  hardwareClass: string;
}

/**
 * Records each inference latency twice: in the prom-client histogram that /metrics serves, and in
 * counts that heartbeats carry to the control plane as a LatencyHistogramDelta. Counts leave the
 * pending delta only when the control plane accepted a beat carrying them, so a failed beat loses
 * nothing: the next one carries them again, with what came since.
 */
export class InferenceLatency {
  readonly #histogram: Histogram<'model' | 'variant' | 'hardware_class'>;
  readonly #bounds = INFERENCE_LATENCY_BUCKETS;
  /** One count per bound, then +Inf; not cumulative. */
  readonly #counts = new Array<number>(INFERENCE_LATENCY_BUCKETS.length + 1).fill(0);
  #sum = 0;

  constructor(histogram: Histogram<'model' | 'variant' | 'hardware_class'>) {
    this.#histogram = histogram;
  }

  observe(seconds: number, labels: LatencyLabels): void {
    this.#histogram.observe(
      { model: labels.model, variant: labels.variant, hardware_class: labels.hardwareClass },
      seconds,
    );
    const bucket = this.#bounds.findIndex((bound) => seconds <= bound);
    this.#counts[bucket === -1 ? this.#bounds.length : bucket]! += 1;
    this.#sum += seconds;
  }

  /** Everything observed since the last accepted beat; undefined when nothing was. */
  pending(): LatencyHistogramDelta | undefined {
    const count = this.#counts.reduce((n, c) => n + c, 0);
    if (count === 0) return undefined;
    return {
      bucketUpperBounds: [...this.#bounds],
      bucketCounts: [...this.#counts],
      sumSeconds: this.#sum,
      count,
    };
  }

  /** The control plane recorded `delta`: only what came after it stays pending. */
  accepted(delta: LatencyHistogramDelta): void {
    delta.bucketCounts.forEach((c, i) => (this.#counts[i]! -= c));
    // Float subtraction can leave a hair below zero once everything was sent.
    this.#sum = this.#counts.some((c) => c > 0) ? Math.max(0, this.#sum - delta.sumSeconds) : 0;
  }
}
