/**
 * Starts the real services as child processes: the embedded stack (`edgeforge up`) and the test
 * harness both use this, so tests run exactly what users run.
 */
export { loadToolchain, REPO_ROOT, type Toolchain } from './toolchain.js';
export {
  ManagedProcess,
  freePort,
  waitForTcp,
  type ManagedProcessOptions,
} from './managed-process.js';
export {
  startNatsServer,
  generateNatsServerSecrets,
  natsServerEnvironment,
  NATS_DEV_CONFIG,
  type NatsServerSecrets,
  type RunningNatsServer,
} from './nats-server.js';
export { startTemporalDevServer, type RunningTemporalDevServer } from './temporal-dev-server.js';
export { startGpuWorker, GPU_WORKER_DIR } from './gpu-worker.js';
export {
  startEmbeddedStack,
  startNodeService,
  controlPlaneNatsEnvironment,
  type EmbeddedStack,
  type EmbeddedStackOptions,
  type StackEndpoints,
} from './embedded-stack.js';
export {
  startPrometheus,
  prometheusConfig,
  addAgentMetricsTargets,
  PROMETHEUS_DIR,
  PROMETHEUS_JOBS,
  type RunningPrometheus,
  type PrometheusOptions,
  type PrometheusTargets,
} from './prometheus.js';
