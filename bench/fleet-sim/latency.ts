/**
 * Synthetic numbers for simulated devices. Nothing here is a measurement: the simulator loads no
 * model (onnxruntime for 10,000 devices does not fit on two cores), so what a device reports as
 * its benchmark and serving latency comes from a lognormal distribution around a class-specific
 * median, scaled by a per-variant factor and a per-device factor drawn once from its name. The
 * devices enroll with agentVersion FLEET_SIM_VERSION, so every registry record says so.
 */
import { EDGE_LATENCY_BUCKETS } from '../../common/latency-histogram.js';
import type { LatencyStats } from '../../proto/gen/edgeforge/v1/fleet.pb.js';

/**
 * What simulated devices send as their agent version (the control plane's pattern:
 * [0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}): marks every record they leave as synthetic.
 */
export const FLEET_SIM_VERSION = 'fleet-sim+synthetic-latencies.no-model-loaded';

/**
 * The simulator's two hardware classes: real /proc/cpuinfo fixtures (test/fixtures/cpuinfo), each
 * with the median inference latency of the fp32 model a device of that class reports. Chosen so
 * that the variant the canaries pick (int8_dynamic, 0.7×) serves well inside one bucket of
 * EDGE_LATENCY_BUCKETS (3.5 ms in (2.5, 5], 0.7 ms in (0.5, 1]): a p95 read from a bucketed
 * histogram of a few dozen requests then does not jump with which side of a bound a few
 * requests fell on. (With a median near a bound and sigma 0.25, two canaries' ~30 requests each
 * gave a baseline 31% under the wave's pooled p95, and the latency gate rolled the wave back.)
 */
export const FLEET_PROFILES: Record<string, { medianMs: number }> = {
  'raspberry-pi-4': { medianMs: 5.0 },
  'intel-xeon-gold-6242-cascade-lake': { medianMs: 1.0 },
};

/** Spread of one device's requests around its median (sigma of ln latency). */
const REQUEST_SIGMA = 0.1;
/** Spread of devices' medians within a class. */
const DEVICE_SIGMA = 0.05;

/** How much faster or slower than fp32 a variant is, as the simulator pretends. */
export function variantFactor(variant: string): number {
  if (variant === 'teacher_fp32') return 1.6;
  if (variant === 'fp32') return 1;
  if (variant === 'fp16') return 0.95;
  if (variant === 'int8_dynamic') return 0.7;
  if (variant.startsWith('int8_static')) return 0.6;
  return 0.85;
}

/** A small seeded generator (mulberry32), so a device's numbers follow from its name. */
export function seededRandom(seed: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
  let a = h;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** One device's synthetic latencies. */
export class SyntheticLatency {
  readonly #random: () => number;
  /** The device's fp32 median, seconds. */
  readonly #medianSeconds: number;

  constructor(deviceName: string, profile: string) {
    this.#random = seededRandom(deviceName);
    const medianMs = FLEET_PROFILES[profile]?.medianMs ?? 1;
    this.#medianSeconds = (medianMs / 1000) * Math.exp(DEVICE_SIGMA * normal(this.#random));
  }

  /** `count` serving requests of `variant` as a heartbeat's histogram delta. */
  servingDelta(variant: string, count: number) {
    const median = this.#medianSeconds * variantFactor(variant);
    const counts = new Array<number>(EDGE_LATENCY_BUCKETS.length + 1).fill(0);
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const seconds = median * Math.exp(REQUEST_SIGMA * normal(this.#random));
      sum += seconds;
      const bucket = EDGE_LATENCY_BUCKETS.findIndex((b) => seconds <= b);
      counts[bucket === -1 ? EDGE_LATENCY_BUCKETS.length : bucket]! += 1;
    }
    return {
      bucketUpperBounds: [...EDGE_LATENCY_BUCKETS],
      bucketCounts: counts,
      sumSeconds: sum,
      count,
    };
  }

  /** What a benchmark of `variant` in `rounds` rounds of `runs` runs would report. */
  benchmark(variant: string, rounds: number, runs: number): LatencyStats {
    const p50Ms = this.#medianSeconds * 1000 * variantFactor(variant);
    const p95Ms = p50Ms * Math.exp(1.645 * REQUEST_SIGMA);
    const roundP95Ms = Array.from(
      { length: Math.max(1, rounds) },
      () => p95Ms * (1 + 0.02 * normal(this.#random)),
    );
    return {
      p50Ms,
      p90Ms: p50Ms * Math.exp(1.2816 * REQUEST_SIGMA),
      p95Ms,
      p99Ms: p50Ms * Math.exp(2.326 * REQUEST_SIGMA),
      meanMs: p50Ms * Math.exp((REQUEST_SIGMA * REQUEST_SIGMA) / 2),
      cv: Math.sqrt(Math.exp(REQUEST_SIGMA * REQUEST_SIGMA) - 1),
      runs,
      roundP95Ms,
    };
  }

  /** A uniform number in [0, 1), from the device's own sequence. */
  random(): number {
    return this.#random();
  }
}
