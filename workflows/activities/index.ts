import type { NatsConnection } from '../../common/nats.js';
import { createKvProbeActivity } from './kv-probe.js';

export interface OrchestratorDependencies {
  nats: NatsConnection;
}

/** The TypeScript activities of the orchestrator, built from their dependencies. */
export function createOrchestratorActivities(deps: OrchestratorDependencies) {
  return {
    probeKeyValue: createKvProbeActivity(deps.nats),
  };
}

export type OrchestratorActivities = ReturnType<typeof createOrchestratorActivities>;
