import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { serveMetrics, type MetricsServer } from '../common/metrics-server.js';

/**
 * The agent's own metrics, in a registry of its own (not prom-client's global one) so that two
 * agents in one process, as in tests, never mix their series.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  /** Heartbeat calls by outcome: "ok" or the gRPC status in lower case ("unavailable"). */
  readonly heartbeats = new Counter({
    name: 'edgeforge_agent_heartbeats_total',
    help: 'Heartbeat calls to the control plane, by result (ok or the gRPC status)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly heartbeatDuration = new Histogram({
    name: 'edgeforge_agent_heartbeat_duration_seconds',
    help: 'Duration of heartbeat calls to the control plane, failed ones included',
    registers: [this.registry],
  });
  readonly enrollments = new Counter({
    name: 'edgeforge_agent_enrollments_total',
    help: 'Successful enrollments with the control plane, re-enrollments included',
    registers: [this.registry],
  });
  readonly #info = new Gauge({
    name: 'edgeforge_agent_info',
    help: 'Always 1; the labels say which device, hardware class and agent version this is',
    labelNames: ['device_id', 'hardware_class', 'agent_version'] as const,
    registers: [this.registry],
  });
  readonly #agentVersion: string;
  #server: MetricsServer | undefined;

  constructor(agentVersion: string) {
    this.#agentVersion = agentVersion;
    collectDefaultMetrics({ register: this.registry });
  }

  /** Relabels the info series; a device's own endpoint may name the device. */
  setDevice(deviceId: string, hardwareClass: string): void {
    this.#info.reset();
    this.#info.set(
      { device_id: deviceId, hardware_class: hardwareClass, agent_version: this.#agentVersion },
      1,
    );
  }

  /** Serves GET /metrics on host:port; returns its URL with the port actually bound. */
  async listen(address: string): Promise<string> {
    this.#server = await serveMetrics(this.registry, address);
    return this.#server.url;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    await server?.close();
  }
}
