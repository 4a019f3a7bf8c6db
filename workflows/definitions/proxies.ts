import { proxyActivities } from '@temporalio/workflow';
import type { GpuActivities } from '../../common/gpu-contracts.js';
import { TASK_QUEUES } from '../../common/names.js';
import type { OrchestratorActivities } from '../activities/index.js';

/**
 * The fleet, publishing and record activities (TypeScript, this worker's task queue). Each is a
 * few KV reads or writes, O(cohorts) or O(canaries) at most: a minute is plenty, a worker that
 * died mid-call is retried soon, and a call that keeps failing fails the rollout instead of
 * retrying forever.
 */
export const orchestrator = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

/**
 * Activities that read the whole registry once (fleetSummary, pickCanaries: O(devices), streamed)
 * or wait for devices (awaitWave, awaitDevicesSettled, readWave). They heartbeat, so a dead worker
 * is noticed within a minute and another one carries on.
 */
export const orchestratorLong = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

// Training and quantization run for minutes to hours; they heartbeat progress, so a dead gpu
// worker is noticed within the heartbeat timeout and the activity resumes from its checkpoint.
export const gpu = proxyActivities<GpuActivities>({
  taskQueue: TASK_QUEUES.gpu,
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '2 minutes', maximumAttempts: 5 },
});
