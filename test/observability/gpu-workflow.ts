// A workflow for the observability test: runs gpu activities on the real gpu worker (task queue
// edgeforge-gpu) so that its training and activity metrics have data. Deterministic code only.
import { proxyActivities } from '@temporalio/workflow';
import type { GpuActivities, PrepareTeacherInput } from '../../common/gpu-contracts.js';
import { TASK_QUEUES } from '../../common/names.js';

const gpu = proxyActivities<GpuActivities>({
  taskQueue: TASK_QUEUES.gpu,
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 1 },
});

/** describe_environment, then a tiny teacher training (two epochs on the 8×8 digits). */
export async function gpuMetricsWorkflow(input: PrepareTeacherInput): Promise<number> {
  await gpu.describe_environment();
  const teacher = await gpu.prepare_teacher(input);
  return teacher.training?.epochs.length ?? 0;
}
