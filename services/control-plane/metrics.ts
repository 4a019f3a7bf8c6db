import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { EDGE_LATENCY_BUCKETS } from '../../common/latency-histogram.js';
import { collectProcessMetrics } from '../../common/process-metrics.js';
import { StatusEvent, type ReportBenchmarkRequest } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { DeltaHistogram } from './metrics/delta-histogram.js';
import { RolloutMetrics } from './metrics/rollout-metrics.js';
import type { DeviceRegistry } from './registry/device-registry.js';
import {
  connectivityOf,
  type Connectivity,
  type ConnectivityThresholds,
  type LatencyDelta,
} from './registry/device-record.js';

export type ControlPlaneMetrics = ReturnType<typeof createControlPlaneMetrics>;

/** A label value for a device's active model, or for a hardware class the caller did not know. */
const UNKNOWN = 'unknown';

/** "STATUS_EVENT_ROLLED_BACK" → "rolled_back", the agent's and the rollout contract's names. */
const eventName = (event: StatusEvent) =>
  (StatusEvent[event] ?? UNKNOWN).replace(/^STATUS_EVENT_/, '').toLowerCase();

const seriesKey = (hardwareClass: string, model: string, variant: string) =>
  `${hardwareClass}\u0000${model}\u0000${variant}`;

const STATUS_EVENTS = Object.keys(StatusEvent)
  .filter((name) => /^STATUS_EVENT_/.test(name) && name !== 'STATUS_EVENT_UNSPECIFIED')
  .map((name) => name.replace(/^STATUS_EVENT_/, '').toLowerCase());

/**
 * The control plane's Prometheus metrics. No per-device label anywhere: the fleet gauge is by
 * hardware class and connectivity, so its cardinality is classes × 4 whatever the fleet size;
 * docs/observability.md states the budget of every series.
 */
export function createControlPlaneMetrics(
  options: {
    /** How long one pass over the registry serves the collectors of a scrape. */
    fleetScanReuseMs?: number;
  } = {},
) {
  const scanReuseMs = options.fleetScanReuseMs ?? 200;
  const register = new Registry();
  collectProcessMetrics(register, 'edgeforge_control_plane_');

  /** Real serving latency from the agents' heartbeats: the fleet's edge latency. */
  const edgeLatency = new DeltaHistogram({
    name: 'edgeforge_edge_inference_latency_seconds',
    help:
      'Inference latency served on edge devices (the model run), summed from heartbeats over ' +
      'the devices of a hardware class running a model variant',
    labelNames: ['hardware_class', 'model', 'variant'] as const,
    buckets: EDGE_LATENCY_BUCKETS,
    registers: [register],
  });
  const benchmarkP95 = new Gauge({
    name: 'edgeforge_benchmark_p95_seconds',
    help: 'p95 latency of the last on-device benchmark reported, by hardware class and variant',
    labelNames: ['hardware_class', 'variant'] as const,
    registers: [register],
  });
  const benchmarkAccuracy = new Gauge({
    name: 'edgeforge_benchmark_accuracy',
    help:
      'Holdout accuracy (0-1) of the last on-device benchmark reported with a holdout, by ' +
      'hardware class and variant',
    labelNames: ['hardware_class', 'variant'] as const,
    registers: [register],
  });
  const benchmarkReports = new Counter({
    name: 'edgeforge_benchmark_reports_total',
    help: 'On-device benchmark reports recorded, by hardware class, variant and result (ok, error)',
    labelNames: ['hardware_class', 'variant', 'result'] as const,
    registers: [register],
  });
  const modelEvents = new Counter({
    name: 'edgeforge_model_events_total',
    help:
      'Model status events devices reported (activated, health_check_failed, rolled_back, ' +
      'refused, download_failed), by hardware class',
    labelNames: ['hardware_class', 'event'] as const,
    registers: [register],
  });
  const rollouts = new RolloutMetrics(register);

  /**
   * Counts the registry's devices by class and connectivity at every scrape (0 included), and
   * keeps the edge latency series of the (class, model, variant) some registered device runs,
   * dropping the rest.
   */
  const trackFleet = (devices: DeviceRegistry, thresholds: ConnectivityThresholds) => {
    // One pass over the registry serves both collectors of a scrape (they run milliseconds
    // apart); at 5,000 devices a pass is about a millisecond of the scrape.
    let last:
      | { at: number; byClass: Map<string, Record<Connectivity, number>>; running: Set<string> }
      | undefined;
    const scan = () => {
      const now = Date.now();
      if (last && now - last.at < scanReuseMs) return last;
      const byClass = new Map<string, Record<Connectivity, number>>();
      const running = new Set<string>();
      for (const device of devices.list()) {
        let counts = byClass.get(device.hardwareClass);
        if (!counts)
          byClass.set(
            device.hardwareClass,
            (counts = { online: 0, stale: 0, offline: 0, revoked: 0 }),
          );
        counts[connectivityOf(device, now, thresholds)] += 1;
        const model = device.activeModel;
        if (model) running.add(seriesKey(device.hardwareClass, model.modelId, model.variant));
      }
      last = { at: now, byClass, running };
      return last;
    };
    edgeLatency.retainWhere(() => {
      const { running } = scan();
      return (l) => running.has(seriesKey(l.hardware_class, l.model, l.variant));
    });
    return new Gauge({
      name: 'edgeforge_fleet_devices',
      help: 'Enrolled devices by hardware class and connectivity (online, stale, offline, revoked)',
      labelNames: ['hardware_class', 'connectivity'] as const,
      registers: [register],
      collect() {
        this.reset();
        for (const [hardwareClass, counts] of scan().byClass) {
          for (const [connectivity, n] of Object.entries(counts)) {
            this.set({ hardware_class: hardwareClass, connectivity }, n);
          }
          startEventsAtZero(hardwareClass);
        }
      },
    });
  };

  /**
   * A class's event counters exist from its first scrape, at 0: the first event is then an
   * increase Prometheus sees (a series born at 1 has none, so increase() would miss it).
   */
  const eventClasses = new Set<string>();
  const startEventsAtZero = (hardwareClass: string) => {
    if (eventClasses.has(hardwareClass)) return;
    eventClasses.add(hardwareClass);
    for (const event of STATUS_EVENTS) modelEvents.inc({ hardware_class: hardwareClass, event }, 0);
  };

  return {
    register,
    trackFleet,
    rollouts,
    /** Adds a heartbeat's serving latencies (since the beat before) to the edge histogram. */
    recordEdgeLatency(
      hardwareClass: string,
      activeModel: { modelId: string; variant: string } | null,
      latency: LatencyDelta | null,
    ): void {
      if (!activeModel || !latency || latency.count === 0) return;
      edgeLatency.add(
        { hardware_class: hardwareClass, model: activeModel.modelId, variant: activeModel.variant },
        latency,
      );
    },
    /**
     * A benchmark report the control plane received (recorded: not a repeat). The gauges keep the
     * last value per (class, variant); reports without a holdout score (accuracy and agreement
     * both 0) leave the accuracy gauge alone.
     */
    recordBenchmark(
      hardwareClass: string | undefined,
      report: ReportBenchmarkRequest,
      recorded: boolean,
    ): void {
      if (!recorded) return;
      const labels = { hardware_class: hardwareClass ?? UNKNOWN, variant: report.variant };
      benchmarkReports.inc({ ...labels, result: report.error ? 'error' : 'ok' });
      if (report.error || !report.latency) return;
      benchmarkP95.set(labels, report.latency.p95Ms / 1000);
      if (report.accuracy > 0 || report.top1Agreement > 0)
        benchmarkAccuracy.set(labels, report.accuracy);
    },
    /** A model status event a device reported (ReportStatus). */
    recordModelEvent(hardwareClass: string | undefined, event: StatusEvent): void {
      modelEvents.inc({ hardware_class: hardwareClass ?? UNKNOWN, event: eventName(event) });
    },
    grpcHandled: new Counter({
      name: 'edgeforge_grpc_server_handled_total',
      help: 'gRPC calls completed, by service, method and status code',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_code'] as const,
      registers: [register],
    }),
    grpcDuration: new Histogram({
      name: 'edgeforge_grpc_server_handling_seconds',
      help: 'Time to handle a gRPC call, by service and method',
      labelNames: ['grpc_service', 'grpc_method'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [register],
    }),
    enrollments: new Counter({
      name: 'edgeforge_fleet_enrollments_total',
      help: 'Enrollments, by whether the device was new or enrolled again',
      labelNames: ['kind'] as const,
      registers: [register],
    }),
    natsAuthorizations: new Counter({
      name: 'edgeforge_nats_authorizations_total',
      help: 'Device NATS connections the auth callout allowed or refused',
      labelNames: ['outcome'] as const,
      registers: [register],
    }),
    registryConflicts: new Counter({
      name: 'edgeforge_registry_cas_conflicts_total',
      help: 'Registry writes that lost a compare-and-swap race and were re-applied',
      registers: [register],
    }),
    censusRoundSeconds: new Histogram({
      name: 'edgeforge_census_round_seconds',
      help: 'Time to bring the census of every class under rollout up to date from the registry',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [register],
    }),
  };
}
