import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { serveMetrics, type MetricsServer } from '../common/metrics-server.js';
import { EDGE_LATENCY_BUCKETS } from '../common/latency-histogram.js';
import { collectProcessMetrics } from '../common/process-metrics.js';

/** The inference latency histogram's bounds, shared with the control plane. */
export const INFERENCE_LATENCY_BUCKETS = [...EDGE_LATENCY_BUCKETS];

/** Outcomes of the model lifecycle that the agent counts, as ReportStatus and benchmarks. */
export type ModelEvent =
  | 'activated'
  | 'health_check_failed'
  | 'rolled_back'
  | 'refused'
  | 'download_failed'
  | 'benchmarked'
  | 'benchmark_failed';

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
  /** Real serving latency, model run only; labelled by model, not by device (cardinality). */
  readonly inferenceLatency = new Histogram({
    name: 'edgeforge_agent_inference_latency_seconds',
    help: 'Latency of inference requests served by the local endpoint (the model run itself)',
    labelNames: ['model', 'variant', 'hardware_class'] as const,
    buckets: INFERENCE_LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly inferenceRequests = new Counter({
    name: 'edgeforge_agent_inference_requests_total',
    help: 'Requests to the local inference endpoint, by HTTP status code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly modelEvents = new Counter({
    name: 'edgeforge_agent_model_events_total',
    help: 'Model lifecycle outcomes on this device (activations, refusals, rollbacks, benchmarks)',
    labelNames: ['event'] as const,
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
    collectProcessMetrics(this.registry);
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
