import { Kvm, type KV } from '@nats-io/kv';
import type { DesiredState } from '../../common/desired-state.js';
import { signManifest, type ManifestKeyPair, type SignedManifest } from '../../common/manifest.js';
import { desiredStateKey, KV_BUCKETS } from '../../common/names.js';
import { isRevisionConflict, type NatsConnection } from '../../common/nats.js';
import { toModelManifest, type ManifestParts } from '../rollout/manifests.js';

/**
 * Publishing: signs manifests with the fleet key and writes each device's desired state. Every
 * activity here is idempotent, so Temporal may retry any of them: signing is deterministic
 * (ed25519), and writing a desired state twice leaves the same value.
 */
export function createPublishingActivities(nats: NatsConnection, key: ManifestKeyPair) {
  let desired: Promise<KV> | undefined;
  let rollouts: Promise<KV> | undefined;
  const desiredBucket = () => (desired ??= new Kvm(nats).create(KV_BUCKETS.desiredState));
  const rolloutsBucket = () =>
    (rollouts ??= new Kvm(nats).create(KV_BUCKETS.rollouts, { history: 1 }));

  return {
    signManifests(input: { manifests: ManifestParts[] }): Promise<SignedManifest[]> {
      return Promise.resolve(
        input.manifests.map((parts) => signManifest(toModelManifest(parts), key.privateKey)),
      );
    },

    /**
     * Keeps each device's desired state as it was before this rollout touched it, in the
     * rollouts bucket, so that a rollback or a cancellation can restore it. Written once per
     * (rollout, device): a retry, or a later call for the same device, keeps the first copy.
     */
    async saveDesiredStateSnapshot(input: { rolloutId: string; deviceIds: string[] }) {
      const [kv, rollouts] = [await desiredBucket(), await rolloutsBucket()];
      for (const id of input.deviceIds) {
        const entry = await kv.get(desiredStateKey(id));
        const state = entry?.operation === 'PUT' ? entry.json<DesiredState>() : null;
        await rollouts
          .create(previousStateKey(input.rolloutId, id), JSON.stringify({ state }))
          .catch((err: unknown) => {
            if (!isRevisionConflict(err)) throw err;
          });
      }
    },

    /** Writes one desired state to many devices; null removes their entries. */
    async writeDesiredState(input: { deviceIds: string[]; state: DesiredState | null }) {
      const kv = await desiredBucket();
      const value = input.state && JSON.stringify(input.state);
      for (const id of input.deviceIds) {
        if (value) await kv.put(desiredStateKey(id), value);
        else await kv.delete(desiredStateKey(id));
      }
    },

    /**
     * Sends devices back to what they were told to run before the rollout: the earlier model,
     * signed again with `version` (devices refuse older versions than what they run). A device
     * that had no model to run before has its entry removed and keeps what it runs.
     */
    async restoreDesiredStates(input: {
      rolloutId: string;
      deviceIds: string[];
      version: number;
      expiresAt: string;
    }): Promise<{ restored: string[]; cleared: string[] }> {
      const [kv, rollouts] = [await desiredBucket(), await rolloutsBucket()];
      const restored: string[] = [];
      const cleared: string[] = [];
      for (const id of input.deviceIds) {
        const saved = await rollouts.get(previousStateKey(input.rolloutId, id));
        const previous =
          saved?.operation === 'PUT' ? saved.json<{ state: DesiredState | null }>().state : null;
        if (previous?.kind === 'run') {
          const { version, expiresAt, rolloutId } = input;
          const model = signManifest(
            { ...previous.model.manifest, rolloutId, version, expiresAt },
            key.privateKey,
          );
          const state: DesiredState = {
            kind: 'run',
            rolloutId,
            model,
            issuedAt: new Date().toISOString(),
          };
          await kv.put(desiredStateKey(id), JSON.stringify(state));
          restored.push(id);
        } else {
          await kv.delete(desiredStateKey(id));
          cleared.push(id);
        }
      }
      return { restored, cleared };
    },
  };
}

/** Where a device's desired state from before a rollout is kept, in the rollouts bucket. */
function previousStateKey(rolloutId: string, deviceId: string): string {
  return `previous.${rolloutId}.${deviceId}`;
}
