import { describe, expect, it } from 'vitest';
import type { WorkerStatus } from '@temporalio/worker';
import {
  orchestratorHealth,
  orchestratorMetrics,
  orchestratorMetricsListen,
} from './orchestrator-metrics.js';

const status = (runState: WorkerStatus['runState']) =>
  ({
    runState,
    numInFlightWorkflowActivations: 2,
    numInFlightActivities: 1,
    numCachedWorkflows: 5,
  }) as WorkerStatus;

describe('orchestrator metrics', () => {
  it('export the worker state and load at scrape time', async () => {
    let runState: WorkerStatus['runState'] = 'RUNNING';
    const text = () => orchestratorMetrics({ getStatus: () => status(runState) }).metrics();
    const running = await text();
    expect(running).toContain('edgeforge_orchestrator_worker_state{state="RUNNING"} 1');
    expect(running).toContain('edgeforge_orchestrator_worker_state{state="FAILED"} 0');
    expect(running).toContain('edgeforge_orchestrator_inflight_activities 1');
    expect(running).toContain('edgeforge_orchestrator_cached_workflows 5');
    expect(running).toContain('edgeforge_orchestrator_process_cpu_seconds_total');
    runState = 'FAILED';
    expect(await text()).toContain('edgeforge_orchestrator_worker_state{state="FAILED"} 1');
  });

  it('are healthy while the worker runs', () => {
    expect(orchestratorHealth({ getState: () => 'RUNNING' })).toBe(true);
    expect(orchestratorHealth({ getState: () => 'DRAINING' })).toBe('the worker is DRAINING');
  });

  it('listen where EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN says, on a free loopback port by default', () => {
    expect(orchestratorMetricsListen({})).toBe('127.0.0.1:0');
    expect(
      orchestratorMetricsListen({ EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN: '0.0.0.0:9467' }),
    ).toBe('0.0.0.0:9467');
    expect(() =>
      orchestratorMetricsListen({ EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN: '9467' }),
    ).toThrow(/EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN: "9467" is not host:port/);
  });
});
