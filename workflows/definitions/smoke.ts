import { proxyActivities } from '@temporalio/workflow';
import type { GpuActivities, SmokeResult } from '../../common/temporal-api.js';
import { TASK_QUEUES } from '../../common/names.js';
import type { OrchestratorActivities } from '../activities/index.js';

const gpu = proxyActivities<GpuActivities>({
  taskQueue: TASK_QUEUES.gpu,
  // The first call imports torch, which takes seconds on a cold machine.
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 3 },
});

const orchestrator = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/**
 * Proves the stack end to end: a TypeScript workflow reaches the Python gpu worker (by activity
 * name, across languages) and NATS JetStream KV (through a TypeScript activity).
 */
export async function smokeWorkflow(probeKey: string): Promise<SmokeResult> {
  const [environment, kv] = await Promise.all([
    gpu.describe_environment(),
    orchestrator.probeKeyValue(probeKey),
  ]);
  return { gpu: environment, kv };
}
