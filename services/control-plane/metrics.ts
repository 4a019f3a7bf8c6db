import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeviceRegistry } from './registry/device-registry.js';
import { connectivityOf, type ConnectivityThresholds } from './registry/device-record.js';

export type ControlPlaneMetrics = ReturnType<typeof createControlPlaneMetrics>;

/**
 * The control plane's Prometheus metrics. No per-device label anywhere: the fleet gauge is by
 * hardware class and connectivity, so its cardinality is classes × 3 whatever the fleet size.
 */
export function createControlPlaneMetrics() {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'edgeforge_control_plane_' });

  /** Counts the registry's devices by class and connectivity at every scrape. */
  const trackFleet = (devices: DeviceRegistry, thresholds: ConnectivityThresholds) =>
    new Gauge({
      name: 'edgeforge_fleet_devices',
      help: 'Enrolled devices by hardware class and connectivity (online, stale, offline)',
      labelNames: ['hardware_class', 'connectivity'] as const,
      registers: [register],
      collect() {
        this.reset();
        const now = Date.now();
        const counts = new Map<string, number>();
        for (const device of devices.list()) {
          const key = `${device.hardwareClass}|${connectivityOf(device, now, thresholds)}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const [key, n] of counts) {
          const [hardwareClass = '', connectivity = ''] = key.split('|');
          this.set({ hardware_class: hardwareClass, connectivity }, n);
        }
      },
    });

  return {
    register,
    trackFleet,
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
    registryConflicts: new Counter({
      name: 'edgeforge_registry_cas_conflicts_total',
      help: 'Registry writes that lost a compare-and-swap race and were re-applied',
      registers: [register],
    }),
  };
}
