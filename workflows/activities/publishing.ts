import { Kvm, type KV } from '@nats-io/kv';
import { COHORTS } from '../../common/cohorts.js';
import type { DesiredState, RunModel } from '../../common/desired-state.js';
import { signManifest, type ManifestKeyPair, type SignedManifest } from '../../common/manifest.js';
import { deviceDesiredKey, KV_BUCKETS, trackKey, trackSnapshotKey } from '../../common/names.js';
import {
  bucketOptions,
  onceSucceeded,
  isRevisionConflict,
  type NatsConnection,
} from '../../common/nats.js';
import { toModelManifest, type ManifestParts } from '../decisions/manifests.js';
import { checkpoint, heartbeat, KV_CONCURRENCY, mapLimit } from './bulk.js';

/** A class's tracks before a rollout changed them: one desired state (or none) per cohort. */
interface TrackSnapshot {
  tracks: (RunModel | null)[];
}

/**
 * Publishing: signs manifests with the fleet key and writes desired state: release tracks (per
 * class and cohort) and the few devices' own entries (canaries). Every activity here is
 * idempotent, so Temporal may retry any of them: signing is deterministic (ed25519), writing a
 * value twice leaves the same value, and the bulk ones resume from their heartbeat's checkpoint.
 */
export function createPublishingActivities(nats: NatsConnection, key: ManifestKeyPair) {
  const desiredBucket = onceSucceeded(() =>
    new Kvm(nats).create(KV_BUCKETS.desiredState, bucketOptions()),
  );
  const rolloutsBucket = onceSucceeded(() =>
    new Kvm(nats).create(KV_BUCKETS.rollouts, bucketOptions({ history: 1 })),
  );
  const readState = async (kv: KV, k: string) => {
    const entry = await kv.get(k);
    return entry?.operation === 'PUT' ? entry.json<DesiredState>() : null;
  };

  /** Writes `states[i]` (null: removes the key) to `keys[i]`, from the last checkpoint on. */
  const writeAll = async (keys: string[], states: (DesiredState | null)[]) => {
    const kv = await desiredBucket();
    const start = checkpoint<{ written: number }>()?.written ?? 0;
    const BATCH = KV_CONCURRENCY * 4;
    for (let at = start; at < keys.length; at += BATCH) {
      const slice = keys.slice(at, at + BATCH);
      await mapLimit(slice, KV_CONCURRENCY, async (k, i) => {
        const state = states[at + i] ?? null;
        if (state) await kv.put(k, JSON.stringify(state));
        else await kv.delete(k);
      });
      heartbeat({ written: at + slice.length });
    }
    return keys.length - start;
  };

  return {
    signManifests(input: { manifests: ManifestParts[] }): Promise<SignedManifest[]> {
      return Promise.resolve(
        input.manifests.map((parts) => signManifest(toModelManifest(parts), key.privateKey)),
      );
    },

    /**
     * Keeps a class's tracks as they were before this rollout touched them, in the rollouts
     * bucket, so a rollback or a cancellation can restore them. Written once per (rollout,
     * class): a retry keeps the first copy. O(cohorts) reads, whatever the class's size.
     */
    async snapshotTracks(input: { rolloutId: string; hardwareClass: string }): Promise<void> {
      const [kv, rec] = [await desiredBucket(), await rolloutsBucket()];
      const snapshotKey = trackSnapshotKey(input.rolloutId, input.hardwareClass);
      if ((await rec.get(snapshotKey))?.operation === 'PUT') return;
      const tracks = await mapLimit(
        Array.from({ length: COHORTS }, (_, c) => trackKey(input.hardwareClass, c)),
        KV_CONCURRENCY,
        async (k) => {
          const state = await readState(kv, k);
          return state?.kind === 'run' ? state : null;
        },
      );
      const snapshot: TrackSnapshot = { tracks };
      await rec.create(snapshotKey, JSON.stringify(snapshot)).catch((err: unknown) => {
        if (!isRevisionConflict(err)) throw err;
      });
    },

    /** Moves cohorts of a class's track to `state`: one KV write per cohort. */
    async writeTracks(input: {
      hardwareClass: string;
      cohorts: number[];
      state: RunModel;
    }): Promise<{ written: number }> {
      const keys = input.cohorts.map((c) => trackKey(input.hardwareClass, c));
      return {
        written: await writeAll(
          keys,
          keys.map(() => input.state),
        ),
      };
    },

    /**
     * Moves cohorts back to the release they had before the rollout: the earlier model, signed
     * again with `version` (devices refuse older versions than what they run). A cohort that had
     * no release before loses its track entry, and its devices keep what they run.
     */
    async restoreTracks(input: {
      rolloutId: string;
      hardwareClass: string;
      cohorts: number[];
      version: number;
      expiresAt: string;
    }): Promise<{ restored: number; cleared: number }> {
      const rec = await rolloutsBucket();
      const saved = await rec.get(trackSnapshotKey(input.rolloutId, input.hardwareClass));
      const snapshot =
        saved?.operation === 'PUT' ? saved.json<TrackSnapshot>() : { tracks: [] as null[] };
      const states = input.cohorts.map((c) => {
        const previous = snapshot.tracks[c] ?? null;
        return previous ? resign(previous, input) : null;
      });
      await writeAll(
        input.cohorts.map((c) => trackKey(input.hardwareClass, c)),
        states,
      );
      const restored = states.filter((s) => s !== null).length;
      return { restored, cleared: states.length - restored };
    },

    /**
     * Writes one desired state to a few devices' own entries (canaries); null removes them, and
     * the devices follow their tracks again.
     */
    async writeDeviceStates(input: {
      deviceIds: string[];
      state: DesiredState | null;
    }): Promise<void> {
      const keys = input.deviceIds.map(deviceDesiredKey);
      await writeAll(
        keys,
        keys.map(() => input.state),
      );
    },
  };

  /** A saved release, signed again for this rollout with a new version and expiry. */
  function resign(
    previous: RunModel,
    input: { rolloutId: string; version: number; expiresAt: string },
  ): RunModel {
    const { version, expiresAt, rolloutId } = input;
    return {
      kind: 'run',
      rolloutId,
      model: signManifest(
        { ...previous.model.manifest, rolloutId, version, expiresAt },
        key.privateKey,
      ),
      issuedAt: new Date().toISOString(),
    };
  }
}
