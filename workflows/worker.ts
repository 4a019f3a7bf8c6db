import { fileURLToPath } from 'node:url';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/names.js';
import { createOrchestratorActivities, type OrchestratorDependencies } from './activities/index.js';

const WORKFLOWS_PATH = fileURLToPath(new URL('./definitions/index.ts', import.meta.url));

export interface OrchestratorWorkerOptions extends OrchestratorDependencies {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
}

/** The orchestrator worker: runs the workflows and the TypeScript activities. */
export async function createOrchestratorWorker(
  options: OrchestratorWorkerOptions,
): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue ?? TASK_QUEUES.orchestrator,
    workflowsPath: WORKFLOWS_PATH,
    activities: createOrchestratorActivities(options),
  });
}
