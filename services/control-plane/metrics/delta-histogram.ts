import { Histogram, type Registry } from 'prom-client';
import { rebucket } from '../../../common/latency-histogram.js';

type Labels<T extends string> = Record<T, string>;

interface Series<T extends string> {
  labels: Labels<T>;
  /** Per bucket, then +Inf; not cumulative. */
  counts: number[];
  sum: number;
  count: number;
}

/**
 * What prom-client's Histogram keeps per label set, and reads when it renders /metrics
 * (lib/histogram.js: hashMap values of { labels, bucketValues keyed by upper bound, sum, count }).
 * delta-histogram.test.ts renders the same observations through this and through observe() and
 * requires identical output, so a prom-client that changes this shape fails there, not in prod.
 */
interface HistogramInternals {
  hashMap: Record<
    string,
    {
      labels: Record<string, string>;
      bucketValues: Record<number, number>;
      sum: number;
      count: number;
    }
  >;
}

export interface DeltaHistogramOptions<T extends string> {
  name: string;
  help: string;
  labelNames: readonly T[];
  buckets: readonly number[];
  registers: Registry[];
}

/**
 * A Prometheus histogram fed with already-bucketed counts (what heartbeats carry) instead of
 * single observations: prom-client has no API to add bucket counts, so this keeps the series
 * itself and writes them into the histogram's storage just before each scrape renders it.
 */
export class DeltaHistogram<T extends string> {
  readonly histogram: Histogram<T>;
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series<T>>();
  readonly #labelNames: readonly T[];
  #retain: (() => (labels: Labels<T>) => boolean) | undefined;

  constructor(options: DeltaHistogramOptions<T>) {
    this.#bounds = [...options.buckets];
    this.#labelNames = options.labelNames;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- collect() runs with the Histogram as `this`
    const self = this;
    this.histogram = new Histogram<T>({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames,
      buckets: [...options.buckets],
      registers: options.registers,
      collect() {
        self.#render(this as unknown as HistogramInternals);
      },
    });
  }

  /** Adds per-bucket counts (one per bound, then +Inf) observed in `bounds`, with their sum. */
  add(
    labels: Labels<T>,
    delta: { bucketUpperBounds: number[]; bucketCounts: number[]; sumSeconds: number },
  ): void {
    const counts = rebucket(delta.bucketUpperBounds, delta.bucketCounts, this.#bounds);
    const key = this.#labelNames.map((n) => labels[n]).join('\u0000');
    let series = this.#series.get(key);
    if (!series) {
      series = {
        labels: { ...labels },
        counts: new Array<number>(this.#bounds.length + 1).fill(0),
        sum: 0,
        count: 0,
      };
      this.#series.set(key, series);
    }
    counts.forEach((c, i) => (series.counts[i]! += c));
    series.count += counts.reduce((n, c) => n + c, 0);
    series.sum += delta.sumSeconds;
  }

  /**
   * At each scrape, `keeper()` is called once and the series its predicate rejects are dropped
   * (one that comes back starts from zero: Prometheus's rate() reads that as a counter reset).
   * Bounds the series to label sets something still produces.
   */
  retainWhere(keeper: () => (labels: Labels<T>) => boolean): void {
    this.#retain = keeper;
  }

  get size(): number {
    return this.#series.size;
  }

  #render(target: HistogramInternals): void {
    const hashMap: HistogramInternals['hashMap'] = {};
    const keep = this.#retain?.();
    for (const [key, series] of this.#series) {
      if (keep && !keep(series.labels)) {
        this.#series.delete(key);
        continue;
      }
      const bucketValues: Record<number, number> = {};
      this.#bounds.forEach((bound, i) => (bucketValues[bound] = series.counts[i]!));
      hashMap[key] = { labels: series.labels, bucketValues, sum: series.sum, count: series.count };
    }
    target.hashMap = hashMap;
  }
}
