import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DeltaHistogram } from './delta-histogram.js';

const BOUNDS = [0.001, 0.01, 0.1];
const LABELS = ['hardware_class', 'model'] as const;

/** Per-bucket counts (one per bound, then +Inf) of `values`, as an agent's heartbeat carries them. */
function deltaOf(values: number[]) {
  const bucketCounts = new Array<number>(BOUNDS.length + 1).fill(0);
  for (const v of values) {
    const i = BOUNDS.findIndex((b) => v <= b);
    bucketCounts[i === -1 ? BOUNDS.length : i]! += 1;
  }
  return { bucketUpperBounds: BOUNDS, bucketCounts, sumSeconds: values.reduce((s, v) => s + v, 0) };
}

const exposition = (text: string) => text.replace(/^# .*\n/gm, '');

describe('DeltaHistogram', () => {
  it('renders bucketed deltas exactly as prom-client renders the same observations', async () => {
    const observed = new Registry();
    const reference = new Histogram({
      name: 'latency_seconds',
      help: 'h',
      labelNames: LABELS,
      buckets: BOUNDS,
      registers: [observed],
    });
    const added = new Registry();
    const delta = new DeltaHistogram({
      name: 'latency_seconds',
      help: 'h',
      labelNames: LABELS,
      buckets: BOUNDS,
      registers: [added],
    });
    const beats: [Record<(typeof LABELS)[number], string>, number[]][] = [
      [{ hardware_class: 'a', model: 'm' }, [0.0004, 0.002, 0.002, 0.05, 3]],
      [{ hardware_class: 'b', model: 'm' }, [0.02]],
      [{ hardware_class: 'a', model: 'm' }, [0.001, 0.1, 0.2]],
    ];
    for (const [labels, values] of beats) {
      for (const v of values) reference.observe(labels, v);
      delta.add(labels, deltaOf(values));
    }
    const expected = await observed.metrics();
    expect(expected).toContain('latency_seconds_bucket{le="+Inf",hardware_class="a",model="m"} 8');
    expect(await added.metrics()).toBe(expected);
    // Twice: rendering must not add anything.
    expect(await added.metrics()).toBe(expected);
    expect((await delta.histogram.get()).values).toEqual((await reference.get()).values);
  });

  it('moves counts from other bounds to the next bound up', async () => {
    const register = new Registry();
    const delta = new DeltaHistogram({
      name: 'x_seconds',
      help: 'h',
      labelNames: ['model'] as const,
      buckets: BOUNDS,
      registers: [register],
    });
    delta.add(
      { model: 'm' },
      { bucketUpperBounds: [0.005, 1], bucketCounts: [2, 3, 1], sumSeconds: 2 },
    );
    expect(exposition(await register.metrics())).toBe(
      [
        'x_seconds_bucket{le="0.001",model="m"} 0',
        'x_seconds_bucket{le="0.01",model="m"} 2',
        'x_seconds_bucket{le="0.1",model="m"} 2',
        'x_seconds_bucket{le="+Inf",model="m"} 6',
        'x_seconds_sum{model="m"} 2',
        'x_seconds_count{model="m"} 6',
        '',
      ].join('\n'),
    );
  });

  it('drops the series its retention predicate rejects, at scrape time', async () => {
    const register = new Registry();
    const delta = new DeltaHistogram({
      name: 'x_seconds',
      help: 'h',
      labelNames: ['model'] as const,
      buckets: BOUNDS,
      registers: [register],
    });
    delta.add({ model: 'old' }, deltaOf([0.005]));
    delta.add({ model: 'new' }, deltaOf([0.005]));
    delta.retainWhere(() => (labels) => labels.model !== 'old');
    const text = await register.metrics();
    expect(text).toContain('model="new"');
    expect(text).not.toContain('model="old"');
    expect(delta.size).toBe(1);
    // A series that comes back starts from zero.
    delta.retainWhere(() => () => true);
    delta.add({ model: 'old' }, deltaOf([0.5]));
    expect(await register.metrics()).toContain('x_seconds_count{model="old"} 1');
  });
});
