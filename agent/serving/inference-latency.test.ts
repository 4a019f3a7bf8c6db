import { describe, expect, it } from 'vitest';
import { AgentMetrics, INFERENCE_LATENCY_BUCKETS } from '../metrics.js';
import { InferenceLatency } from './inference-latency.js';

const LABELS = { model: 'm', variant: 'int8', hardwareClass: 'x86_64-vnni-nofp16-cpu-8g' };

describe('InferenceLatency', () => {
  it('counts into the bucket of the first bound at or above the latency, +Inf last', () => {
    const latency = new InferenceLatency(new AgentMetrics('0').inferenceLatency);
    expect(latency.pending()).toBeUndefined();
    latency.observe(0.001, LABELS); // exactly on a bound: that bucket
    latency.observe(0.003, LABELS);
    latency.observe(60, LABELS);
    const delta = latency.pending()!;
    expect(delta.bucketUpperBounds).toEqual(INFERENCE_LATENCY_BUCKETS);
    expect(delta.bucketCounts).toHaveLength(INFERENCE_LATENCY_BUCKETS.length + 1);
    expect(delta.bucketCounts[1]).toBe(1);
    expect(delta.bucketCounts[3]).toBe(1);
    expect(delta.bucketCounts.at(-1)).toBe(1);
    expect(delta).toMatchObject({ count: 3, sumSeconds: 60.004 });
  });

  it('keeps counts until a beat carrying them is accepted, and only those', () => {
    const latency = new InferenceLatency(new AgentMetrics('0').inferenceLatency);
    latency.observe(0.002, LABELS);
    const failedBeat = latency.pending()!;
    // The beat failed: nothing is taken off; the next beat carries it again with what came since.
    latency.observe(0.2, LABELS);
    const nextBeat = latency.pending()!;
    expect(nextBeat.count).toBe(2);
    expect(failedBeat.count).toBe(1);

    latency.observe(0.02, LABELS); // arrives while the beat is in flight
    latency.accepted(nextBeat);
    const left = latency.pending()!;
    expect(left.count).toBe(1);
    expect(left.sumSeconds).toBeCloseTo(0.02, 9);
    latency.accepted(latency.pending()!);
    expect(latency.pending()).toBeUndefined();
  });

  it('feeds the prom-client histogram labelled by model, variant and class', async () => {
    const metrics = new AgentMetrics('0');
    new InferenceLatency(metrics.inferenceLatency).observe(0.004, LABELS);
    expect(await metrics.registry.metrics()).toContain(
      'edgeforge_agent_inference_latency_seconds_count{model="m",variant="int8",hardware_class="x86_64-vnni-nofp16-cpu-8g"} 1',
    );
  });
});
