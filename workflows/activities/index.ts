import type { ManifestSigningKey } from '../../common/manifest-key-set.js';
import type { NatsConnection } from '../../common/nats.js';
import { createCensusActivities } from './census.js';
import { createFleetActivities } from './fleet.js';
import { createKvProbeActivity } from './kv-probe.js';
import { createLeaseActivities } from './leases.js';
import { createPublishingActivities } from './publishing.js';
import { createRecordActivities } from './records.js';

export interface OrchestratorDependencies {
  nats: NatsConnection;
  /**
   * The fleet's manifest signing key (the control plane creates it; see docs/architecture.md):
   * fixed, or read from the key set at each signing so that a rotation takes effect at once.
   */
  manifestKey: ManifestSigningKey;
  /** A device heard from within this long counts as online; default 60 s. */
  onlineWithinMs?: number;
  /** How often waiting activities read the census or the canaries again; default 1 s. */
  pollMs?: number;
}

/** The TypeScript activities of the orchestrator, built from their dependencies. */
export function createOrchestratorActivities(deps: OrchestratorDependencies) {
  return {
    probeKeyValue: createKvProbeActivity(deps.nats),
    ...createFleetActivities(deps.nats, {
      onlineWithinMs: deps.onlineWithinMs ?? 60_000,
      pollMs: deps.pollMs ?? 1_000,
    }),
    ...createPublishingActivities(deps.nats, deps.manifestKey),
    ...createLeaseActivities(deps.nats),
    ...createCensusActivities(deps.nats, { pollMs: deps.pollMs ?? 1_000 }),
    ...createRecordActivities(deps.nats),
  };
}

export type OrchestratorActivities = ReturnType<typeof createOrchestratorActivities>;
