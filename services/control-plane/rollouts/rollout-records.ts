import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { ClassLease } from '../../../common/census.js';
import { CLASS_LEASE_PREFIX, KV_BUCKETS } from '../../../common/names.js';
import { bucketOptions, type NatsConnection } from '../../../common/nats.js';
import { FINISHED_PHASES, rolloutRecordKey, type RolloutStatus } from '../../../common/rollout.js';

const RECORD_PREFIX = rolloutRecordKey('');

/**
 * The rollout records the workflows write to the rollouts KV bucket (a RolloutStatus as JSON at
 * every phase change and at the end). The control plane only reads them: they answer for a
 * rollout whose workflow has finished, or when Temporal cannot.
 */
export class RolloutRecords {
  readonly #nats: NatsConnection;
  readonly #log: Logger;
  #kv: Promise<KV> | null = null;

  constructor(nats: NatsConnection, log: Logger) {
    this.#nats = nats;
    this.#log = log;
  }

  async get(rolloutId: string): Promise<RolloutStatus | null> {
    const entry = await (await this.#bucket()).get(rolloutRecordKey(rolloutId));
    if (entry?.operation !== 'PUT') return null;
    return this.#decode(entry.key, entry.string());
  }

  /** Every rollout record, in no particular order. */
  async list(): Promise<RolloutStatus[]> {
    const kv = await this.#bucket();
    const keys: string[] = [];
    for await (const key of await kv.keys(`${RECORD_PREFIX}*`)) keys.push(key);
    const records = await Promise.all(
      keys.map(async (key) => {
        const entry = await kv.get(key);
        return entry?.operation === 'PUT' ? this.#decode(key, entry.string()) : null;
      }),
    );
    return records.filter((r): r is RolloutStatus => r !== null);
  }

  /**
   * The classes a running rollout holds the lease of (workflows/activities/leases.ts), among
   * `classes` (all when absent). A lease whose rollout's record says it ended is stale: not held.
   */
  async heldLeases(classes?: string[]): Promise<ClassLease[]> {
    const kv = await this.#bucket();
    const held: ClassLease[] = [];
    for await (const key of await kv.keys(`${CLASS_LEASE_PREFIX}*`)) {
      const entry = await kv.get(key);
      if (entry?.operation !== 'PUT') continue;
      const lease = entry.json<ClassLease>();
      if (classes && !classes.includes(lease.hardwareClass)) continue;
      const record = await this.get(lease.rolloutId);
      if (record && FINISHED_PHASES.includes(record.phase)) continue;
      held.push(lease);
    }
    return held.sort((a, b) => a.hardwareClass.localeCompare(b.hardwareClass));
  }

  #bucket(): Promise<KV> {
    if (!this.#kv) {
      // Same settings as the workflows' record activities: whichever side comes first creates it.
      const kv = new Kvm(this.#nats).create(KV_BUCKETS.rollouts, bucketOptions({ history: 1 }));
      this.#kv = kv;
      void kv.catch(() => {
        if (this.#kv === kv) this.#kv = null;
      });
    }
    return this.#kv;
  }

  /** A record that is not a RolloutStatus (hand-edited, another version) is skipped and logged. */
  #decode(key: string, text: string): RolloutStatus | null {
    try {
      const value = JSON.parse(text) as Partial<RolloutStatus> | null;
      if (
        value &&
        typeof value.rolloutId === 'string' &&
        typeof value.phase === 'string' &&
        isTime(value.startedAt) &&
        isTime(value.updatedAt) &&
        (value.finishedAt === null || isTime(value.finishedAt)) &&
        Array.isArray(value.classes)
      ) {
        return value as RolloutStatus;
      }
    } catch {
      // reported below
    }
    this.#log.warn({ key }, 'rollout record is not a RolloutStatus; skipped');
    return null;
  }
}

function isTime(value: unknown): value is string {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value));
}
