import type { KeyObject } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { COHORTS } from '../../common/cohorts.js';
import type { DesiredState, RunModel } from '../../common/desired-state.js';
import { signingKeyNow, type ManifestSigningKey } from '../../common/manifest-key-set.js';
import {
  signManifest,
  type ModelManifest,
  type ObjectRef,
  type SignedManifest,
} from '../../common/manifest.js';
import {
  deviceDesiredKey,
  KV_BUCKETS,
  OBJECT_BUCKETS,
  trackKey,
  trackSnapshotKey,
} from '../../common/names.js';
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
 * Publishing: releases models to their class (copies them into its release bucket, the only
 * one its devices may read), signs manifests with the fleet key and writes desired state: release tracks (per
 * class and cohort) and the few devices' own entries (canaries). Every activity here is
 * idempotent, so Temporal may retry any of them: signing is deterministic (ed25519), writing a
 * value twice leaves the same value, and the bulk ones resume from their heartbeat's checkpoint.
 */
export function createPublishingActivities(nats: NatsConnection, key: ManifestSigningKey) {
  const desiredBucket = onceSucceeded(() =>
    new Kvm(nats).create(KV_BUCKETS.desiredState, bucketOptions()),
  );
  const rolloutsBucket = onceSucceeded(() =>
    new Kvm(nats).create(KV_BUCKETS.rollouts, bucketOptions({ history: 1 })),
  );
  const modelsBucket = onceSucceeded(() =>
    new Objm(nats).create(OBJECT_BUCKETS.models, bucketOptions()),
  );
  const releaseBuckets = new Map<string, () => Promise<ObjectStore>>();
  const releaseStore = (bucket: string) => {
    let open = releaseBuckets.get(bucket);
    if (!open) {
      open = onceSucceeded(() => new Objm(nats).create(bucket, bucketOptions()));
      releaseBuckets.set(bucket, open);
    }
    return open();
  };

  /**
   * Copies one file of a manifest from the models bucket into the release bucket it names, unless
   * it is there already with the same content (a retried activity, a second rollout of it).
   */
  const release = async (ref: ObjectRef) => {
    const [source, target] = [await modelsBucket(), await releaseStore(ref.bucket)];
    const [have, info] = await Promise.all([target.info(ref.name), source.info(ref.name)]);
    if (have && !have.deleted && have.size === ref.size && info && have.digest === info.digest) {
      return;
    }
    const object = await source.get(ref.name);
    if (!object || !info || info.deleted) {
      throw new Error(`cannot release ${ref.name}: it is not in ${OBJECT_BUCKETS.models}`);
    }
    // A heartbeat per chunk (the SDK throttles them): a big model takes longer than the
    // heartbeat timeout to copy.
    const copying = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        heartbeat();
        out.enqueue(chunk);
      },
    });
    await target.put({ name: ref.name }, object.data.pipeThrough(copying));
    const failed = await object.error;
    if (failed) throw failed;
  };
  const releaseFiles = async (manifest: ModelManifest) => {
    await release(manifest.model);
    if (manifest.holdout) await release(manifest.holdout);
  };

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
    /**
     * Releases each manifest's files to its class and signs it. Signed only once its files are
     * where its devices read them: a device never gets a manifest it cannot download.
     */
    async signManifests(input: { manifests: ManifestParts[] }): Promise<SignedManifest[]> {
      const manifests = input.manifests.map(toModelManifest);
      for (const manifest of manifests) await releaseFiles(manifest);
      // The current key, read when it changed: a rotation takes effect from the next signing.
      const { privateKey } = await signingKeyNow(key);
      return manifests.map((manifest) => signManifest(manifest, privateKey));
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
      const { privateKey } = await signingKeyNow(key);
      const states = input.cohorts.map((c) => {
        const previous = snapshot.tracks[c] ?? null;
        return previous ? resign(previous, input, privateKey) : null;
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
    privateKey: KeyObject,
  ): RunModel {
    const { version, expiresAt, rolloutId } = input;
    return {
      kind: 'run',
      rolloutId,
      model: signManifest(
        { ...previous.model.manifest, rolloutId, version, expiresAt },
        privateKey,
      ),
      issuedAt: new Date().toISOString(),
    };
  }
}
