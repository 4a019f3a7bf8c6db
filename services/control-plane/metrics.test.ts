import { describe, expect, it } from 'vitest';
import { EDGE_LATENCY_BUCKETS } from '../../common/latency-histogram.js';
import { StatusEvent, type ReportBenchmarkRequest } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { createControlPlaneMetrics } from './metrics.js';
import type { DeviceRegistry } from './registry/device-registry.js';
import { connectivityThresholds, type DeviceRecord } from './registry/device-record.js';

const PI4 = 'aarch64-neon-nofp16-cpu-4g';

function device(id: string, model: { modelId: string; variant: string } | null): DeviceRecord {
  return {
    deviceId: id,
    hardwareClass: PI4,
    lastSeenAt: new Date().toISOString(),
    activeModel: model && { ...model, version: 1, sha256: 'a'.repeat(64) },
  } as DeviceRecord;
}

/** A registry double: the metrics only list its records. */
const registryOf = (records: DeviceRecord[]) => ({ list: () => records }) as DeviceRegistry;

const lines = async (metrics: ReturnType<typeof createControlPlaneMetrics>, prefix: string) =>
  (await metrics.register.metrics()).split('\n').filter((l) => l.startsWith(prefix));

function delta(counts: Record<number, number>, sumSeconds: number) {
  const bucketCounts = new Array<number>(EDGE_LATENCY_BUCKETS.length + 1).fill(0);
  for (const [i, c] of Object.entries(counts)) bucketCounts[Number(i)] = c;
  const count = bucketCounts.reduce((n, c) => n + c, 0);
  return { bucketUpperBounds: [...EDGE_LATENCY_BUCKETS], bucketCounts, sumSeconds, count };
}

describe('control plane metrics', () => {
  it('count devices by class and connectivity, zeros included, in one pass per scrape', async () => {
    const metrics = createControlPlaneMetrics();
    // A revoked device counts as revoked, never online, however fresh its last heartbeat.
    const records = [
      device('d-1', null),
      device('d-2', null),
      { ...device('d-3', null), revokedAt: new Date().toISOString() },
    ];
    let passes = 0;
    const registry = {
      list: () => {
        passes += 1;
        return records;
      },
    } as DeviceRegistry;
    metrics.trackFleet(registry, connectivityThresholds(1000));
    expect(await lines(metrics, 'edgeforge_fleet_devices')).toEqual([
      `edgeforge_fleet_devices{hardware_class="${PI4}",connectivity="online"} 2`,
      `edgeforge_fleet_devices{hardware_class="${PI4}",connectivity="stale"} 0`,
      `edgeforge_fleet_devices{hardware_class="${PI4}",connectivity="offline"} 0`,
      `edgeforge_fleet_devices{hardware_class="${PI4}",connectivity="revoked"} 1`,
    ]);
    expect(passes).toBe(1);
  });

  it('sum heartbeat latencies per class, model and variant while a device runs them', async () => {
    const metrics = createControlPlaneMetrics({ fleetScanReuseMs: 0 });
    const records = [device('d-1', { modelId: 'm', variant: 'int8' })];
    metrics.trackFleet(registryOf(records), connectivityThresholds(1000));
    const model = { modelId: 'm', variant: 'int8' };
    metrics.recordEdgeLatency(PI4, model, delta({ 2: 3 }, 0.006));
    metrics.recordEdgeLatency(PI4, model, delta({ 2: 1, 5: 1 }, 0.03));
    metrics.recordEdgeLatency(PI4, null, delta({ 2: 1 }, 0.002));
    metrics.recordEdgeLatency(PI4, model, null);
    const series = `hardware_class="${PI4}",model="m",variant="int8"`;
    expect(await lines(metrics, 'edgeforge_edge_inference_latency_seconds')).toEqual(
      expect.arrayContaining([
        `edgeforge_edge_inference_latency_seconds_bucket{le="0.0025",${series}} 4`,
        `edgeforge_edge_inference_latency_seconds_bucket{le="0.025",${series}} 5`,
        `edgeforge_edge_inference_latency_seconds_count{${series}} 5`,
        `edgeforge_edge_inference_latency_seconds_sum{${series}} 0.036`,
      ]),
    );
    // The device moved on to another variant: the old series goes, the new one is there.
    records[0] = device('d-1', { modelId: 'm', variant: 'fp16' });
    metrics.recordEdgeLatency(PI4, { modelId: 'm', variant: 'fp16' }, delta({ 1: 1 }, 0.001));
    const after = await lines(metrics, 'edgeforge_edge_inference_latency_seconds_count');
    expect(after).toEqual([
      `edgeforge_edge_inference_latency_seconds_count{hardware_class="${PI4}",model="m",variant="fp16"} 1`,
    ]);
  });

  it('keep the last benchmark per class and variant, and count reports and model events', async () => {
    const metrics = createControlPlaneMetrics({ fleetScanReuseMs: 0 });
    metrics.trackFleet(registryOf([device('d-1', null)]), connectivityThresholds(1000));
    const report = (p95Ms: number, accuracy: number, extra: Partial<ReportBenchmarkRequest> = {}) =>
      ({
        rolloutId: 'r',
        variant: 'int8_dynamic',
        latency: { p50Ms: 1, p90Ms: 2, p95Ms, p99Ms: 9, meanMs: 1, cv: 0.1, runs: 20 },
        accuracy,
        top1Agreement: accuracy,
        error: '',
        ...extra,
      }) as ReportBenchmarkRequest;
    metrics.recordBenchmark(PI4, report(4, 0.9), true);
    metrics.recordBenchmark(PI4, report(2.5, 0.93), true);
    // A repeat is not counted; a report without a holdout score leaves the accuracy alone.
    metrics.recordBenchmark(PI4, report(99, 0.1), false);
    metrics.recordBenchmark(PI4, report(3, 0), true);
    metrics.recordBenchmark(
      PI4,
      report(0, 0, { error: 'session failed', latency: undefined }),
      true,
    );
    const labels = `hardware_class="${PI4}",variant="int8_dynamic"`;
    const out = await lines(metrics, 'edgeforge_benchmark_');
    expect(out).toEqual(
      expect.arrayContaining([
        `edgeforge_benchmark_p95_seconds{${labels}} 0.003`,
        `edgeforge_benchmark_accuracy{${labels}} 0.93`,
        `edgeforge_benchmark_reports_total{${labels},result="ok"} 3`,
        `edgeforge_benchmark_reports_total{${labels},result="error"} 1`,
      ]),
    );

    // Every event of a class in the fleet starts at 0, so that Prometheus sees the first one.
    expect(await lines(metrics, 'edgeforge_model_events_total')).toHaveLength(5);
    metrics.recordModelEvent(PI4, StatusEvent.STATUS_EVENT_ROLLED_BACK);
    expect(await lines(metrics, 'edgeforge_model_events_total')).toEqual(
      ['activated', 'health_check_failed', 'rolled_back', 'refused', 'download_failed'].map(
        (event) =>
          `edgeforge_model_events_total{hardware_class="${PI4}",event="${event}"} ${event === 'rolled_back' ? 1 : 0}`,
      ),
    );
  });
});
