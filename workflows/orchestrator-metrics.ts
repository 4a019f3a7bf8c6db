import { Gauge, Registry } from 'prom-client';
import type { State, Worker } from '@temporalio/worker';
import { parseHostPort } from '../common/metrics-server.js';
import { collectProcessMetrics } from '../common/process-metrics.js';

const STATES: readonly State[] = [
  'INITIALIZED',
  'RUNNING',
  'STOPPING',
  'DRAINING',
  'DRAINED',
  'STOPPED',
  'FAILED',
];

/** Where the orchestrator serves /metrics and /healthz: EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN. */
export function orchestratorMetricsListen(env: NodeJS.ProcessEnv = process.env): string {
  const listen = env.EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN || '127.0.0.1:0';
  try {
    parseHostPort(listen);
  } catch (err) {
    throw new Error(`EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN: ${(err as Error).message}`);
  }
  return listen;
}

/** /healthz of the orchestrator worker: healthy while it runs (polls its task queue). */
export function orchestratorHealth(worker: Pick<Worker, 'getState'>): true | string {
  const state = worker.getState();
  return state === 'RUNNING' ? true : `the worker is ${state}`;
}

/**
 * The orchestrator worker's metrics: the process (prefix edgeforge_orchestrator_) and the
 * worker's state and load, read from the worker at every scrape. Rollout progress is exported by
 * the control plane, which watches the rollout records (services/control-plane/metrics).
 */
export function orchestratorMetrics(worker: Pick<Worker, 'getStatus'>): Registry {
  const register = new Registry();
  collectProcessMetrics(register, 'edgeforge_orchestrator_');
  new Gauge({
    name: 'edgeforge_orchestrator_worker_state',
    help: 'The Temporal worker run state: 1 for the current one',
    labelNames: ['state'] as const,
    registers: [register],
    collect() {
      const current = worker.getStatus().runState;
      for (const state of STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });
  const load = {
    edgeforge_orchestrator_inflight_workflow_activations: [
      'Workflow activations being processed',
      'numInFlightWorkflowActivations',
    ],
    edgeforge_orchestrator_inflight_activities: [
      'Activities running on this worker',
      'numInFlightActivities',
    ],
    edgeforge_orchestrator_cached_workflows: [
      'Workflow executions cached in memory',
      'numCachedWorkflows',
    ],
  } as const;
  for (const [name, [help, field]] of Object.entries(load)) {
    new Gauge({
      name,
      help,
      registers: [register],
      collect() {
        this.set(worker.getStatus()[field]);
      },
    });
  }
  return register;
}
