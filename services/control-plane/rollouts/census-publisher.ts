import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { computeCensus, type ClassLease } from '../../../common/census.js';
import { CLASS_LEASE_PREFIX, censusKey, KV_BUCKETS } from '../../../common/names.js';
import { bucketOptions, onceSucceeded, type NatsConnection } from '../../../common/nats.js';
import {
  connectivityOf,
  type ConnectivityThresholds,
  type DeviceRecord,
} from '../registry/device-record.js';

export interface CensusPublisherOptions {
  nats: NatsConnection;
  /** The registry's in-memory records (it watches the whole devices bucket). */
  records: () => Iterable<DeviceRecord>;
  thresholds: ConnectivityThresholds;
  /** How often the census of every leased class is computed; written only when it changed. */
  intervalMs: number;
  log: Logger;
  /** Called with the time one round took and the devices it read (for /metrics). */
  onRound?: (seconds: number, devices: number) => void;
}

/**
 * Keeps, for every class a rollout holds the lease of, that rollout's census (common/census.ts)
 * in the rollouts bucket. Device reports land in the registry as they come (one KV write each);
 * this turns them into counts at a bounded rate, so the workflow polls one small entry per class
 * instead of reading devices. Every replica computes the same census from the same registry:
 * their writes agree, and any one of them alive is enough.
 */
export class CensusPublisher {
  readonly #o: CensusPublisherOptions;
  readonly #written = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;
  readonly #bucket: () => Promise<KV>;

  constructor(options: CensusPublisherOptions) {
    this.#o = options;
    this.#bucket = onceSucceeded(() =>
      new Kvm(options.nats).create(KV_BUCKETS.rollouts, bucketOptions({ history: 1 })),
    );
  }

  start(): void {
    const tick = () => {
      if (this.#stopped) return;
      this.#round = this.publishOnce()
        .catch((err: unknown) => this.#o.log.warn({ err }, 'census round failed; trying again'))
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, this.#o.intervalMs);
        });
    };
    tick();
  }

  /** One round: every lease's census, written where it changed. */
  async publishOnce(): Promise<void> {
    const started = performance.now();
    const kv = await this.#bucket();
    const leases: ClassLease[] = [];
    for await (const key of await kv.keys(`${CLASS_LEASE_PREFIX}*`)) {
      const entry = await kv.get(key);
      if (entry?.operation === 'PUT') leases.push(entry.json<ClassLease>());
    }
    const current = new Set(leases.map((l) => censusKey(l.rolloutId, l.hardwareClass)));
    for (const key of this.#written.keys()) if (!current.has(key)) this.#written.delete(key);
    if (leases.length === 0) return;
    const now = new Date();
    const records = [...this.#o.records()];
    // A revoked device is never online (connectivityOf), so a rollout does not wait for it.
    const isOnline = (d: { lastSeenAt: string; revokedAt?: string }) =>
      connectivityOf(d, now.getTime(), this.#o.thresholds) === 'online';
    for (const lease of leases) {
      const census = computeCensus(lease, records, isOnline, now);
      const key = censusKey(lease.rolloutId, lease.hardwareClass);
      const content = JSON.stringify({ ...census, takenAt: '' });
      if (this.#written.get(key) === content) continue;
      await kv.put(key, JSON.stringify(census));
      this.#written.set(key, content);
    }
    this.#o.onRound?.((performance.now() - started) / 1000, records.length);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
  }
}
