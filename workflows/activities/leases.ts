import { Kvm } from '@nats-io/kv';
import type { ClassLease } from '../../common/census.js';
import { classLeaseKey, KV_BUCKETS } from '../../common/names.js';
import {
  bucketOptions,
  onceSucceeded,
  isRevisionConflict,
  type NatsConnection,
} from '../../common/nats.js';
import { FINISHED_PHASES, rolloutRecordKey, type RolloutStatus } from '../../common/rollout.js';

export type LeaseResult = { acquired: true } | { acquired: false; heldBy: string };

/**
 * One rollout per hardware class at a time: a lease entry per class in the rollouts bucket,
 * taken with compare-and-swap, so two rollouts can never both move a class's tracks (and one's
 * rollback overwrite the other's model). The class workflow releases it on every way it ends; a
 * lease whose rollout's record says it finished (a workflow that was terminated) is taken over.
 */
export function createLeaseActivities(nats: NatsConnection) {
  const rollouts = onceSucceeded(() =>
    new Kvm(nats).create(KV_BUCKETS.rollouts, bucketOptions({ history: 1 })),
  );

  return {
    async acquireClassLease(input: {
      rolloutId: string;
      hardwareClass: string;
    }): Promise<LeaseResult> {
      const kv = await rollouts();
      const key = classLeaseKey(input.hardwareClass);
      const lease: ClassLease = {
        rolloutId: input.rolloutId,
        hardwareClass: input.hardwareClass,
        acquiredAt: new Date().toISOString(),
        targetSha256: null,
      };
      for (;;) {
        const entry = await kv.get(key);
        try {
          if (entry?.operation !== 'PUT') {
            await (entry
              ? kv.update(key, JSON.stringify(lease), entry.revision)
              : kv.create(key, JSON.stringify(lease)));
            return { acquired: true };
          }
          const held = entry.json<ClassLease>();
          if (held.rolloutId === input.rolloutId) return { acquired: true };
          const record = await kv.get(rolloutRecordKey(held.rolloutId));
          const phase =
            record?.operation === 'PUT' ? record.json<RolloutStatus>().phase : undefined;
          if (!phase || !FINISHED_PHASES.includes(phase)) {
            return { acquired: false, heldBy: held.rolloutId };
          }
          await kv.update(key, JSON.stringify(lease), entry.revision);
          return { acquired: true };
        } catch (err) {
          if (!isRevisionConflict(err)) throw err;
        }
      }
    },

    /** Names the model the rollout rolls out, so the census counts the devices serving it. */
    async setLeaseTarget(input: {
      rolloutId: string;
      hardwareClass: string;
      targetSha256: string;
    }): Promise<void> {
      const kv = await rollouts();
      const key = classLeaseKey(input.hardwareClass);
      for (;;) {
        const entry = await kv.get(key);
        if (entry?.operation !== 'PUT')
          throw new Error(`the lease of ${input.hardwareClass} is gone`);
        const held = entry.json<ClassLease>();
        if (held.rolloutId !== input.rolloutId) {
          throw new Error(`${held.rolloutId} holds the lease of ${input.hardwareClass}`);
        }
        try {
          await kv.update(
            key,
            JSON.stringify({ ...held, targetSha256: input.targetSha256 }),
            entry.revision,
          );
          return;
        } catch (err) {
          if (!isRevisionConflict(err)) throw err;
        }
      }
    },

    /** Gives the class back, if this rollout holds it. */
    async releaseClassLease(input: { rolloutId: string; hardwareClass: string }): Promise<void> {
      const kv = await rollouts();
      const key = classLeaseKey(input.hardwareClass);
      for (;;) {
        const entry = await kv.get(key);
        if (entry?.operation !== 'PUT') return;
        if (entry.json<ClassLease>().rolloutId !== input.rolloutId) return;
        try {
          await kv.delete(key, { previousSeq: entry.revision });
          return;
        } catch (err) {
          if (!isRevisionConflict(err)) throw err;
        }
      }
    },
  };
}
