export { createOrchestratorWorker, type OrchestratorWorkerOptions } from './worker.js';
export { createOrchestratorActivities, type OrchestratorActivities } from './activities/index.js';
