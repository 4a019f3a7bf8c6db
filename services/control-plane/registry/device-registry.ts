import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import { bucketOptions, isRevisionConflict, type NatsConnection } from '../../../common/nats.js';
import { KV_BUCKETS } from '../../../common/names.js';
import { EdgeforgeError } from '../../../common/errors.js';
import type { DeviceRecord } from './device-record.js';
import { EnrollmentStore } from './enrollment-store.js';

/** Two writers raced on one device more often than this in a row: something is wrong. */
const MAX_CAS_ATTEMPTS = 20;

interface Cached {
  record: DeviceRecord;
  revision: number;
}

export class RegistryConflictError extends EdgeforgeError {
  override name = 'RegistryConflictError';
}

export interface DeviceRegistryEvents {
  /** A compare-and-swap lost to another writer and was retried. */
  onConflict?: () => void;
  /**
   * A record changed (undefined: none), by this process or another: called once per change
   * the cache takes in, in order per device. Must not throw.
   */
  onChange?: (
    deviceId: string,
    before: DeviceRecord | undefined,
    after: DeviceRecord | undefined,
  ) => void;
}

/**
 * The fleet registry: one NATS KV entry per device. Every write is a compare-and-swap on the
 * entry's revision, so concurrent writers (several control-plane replicas, or concurrent calls
 * in one) never lose an update: the loser re-reads and applies its change again.
 *
 * A watch keeps an in-memory copy of the whole bucket, so reads (ListDevices, metrics) cost no
 * round trip and a heartbeat is a single KV write in the common case.
 */
export class DeviceRegistry {
  private readonly cache = new Map<string, Cached>();
  /** Serializes writes to one key within this process; CAS handles other processes. */
  private readonly writeChains = new Map<string, Promise<unknown>>();
  /** The last revision of each record this process deleted: the watch may still replay it. */
  private readonly deleted = new Map<string, number>();
  private watcher: QueuedIterator<KvWatchEntry> | undefined;
  private watchLoop: Promise<void> | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly events: DeviceRegistryEvents,
    /** Enrolments waiting for an operator, and one-time enrollment tokens. */
    readonly enrollments: EnrollmentStore,
  ) {}

  /**
   * Opens (or creates) the devices bucket and loads every record before resolving; opens the
   * enrollments bucket beside it.
   */
  static async open(
    nats: NatsConnection,
    events: DeviceRegistryEvents = {},
  ): Promise<DeviceRegistry> {
    const kv = await new Kvm(nats).create(KV_BUCKETS.devices, bucketOptions({ history: 1 }));
    const registry = new DeviceRegistry(kv, events, await EnrollmentStore.open(nats));
    await registry.startWatch();
    return registry;
  }

  private async startWatch(): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    const watcher = await this.kv.watch();
    this.watcher = watcher;
    this.watchLoop = (async () => {
      for await (const entry of watcher) {
        if (entry.operation === 'PUT') {
          // Our own writes are cached already: skip decoding them again.
          const newest = Math.max(
            this.cache.get(entry.key)?.revision ?? 0,
            this.deleted.get(entry.key) ?? 0,
          );
          if (newest < entry.revision) {
            this.remember(entry.key, entry.json<DeviceRecord>(), entry.revision);
          }
        } else {
          this.forget(entry.key);
        }
        // delta is how many entries the watch still has to deliver: 0 means caught up.
        if (entry.delta === 0) initialized();
      }
    })();
    if ((await this.kv.status()).values === 0) initialized();
    await ready;
  }

  /** Keeps the newest revision: our own writes and the watch both report each change. */
  private remember(deviceId: string, record: DeviceRecord, revision: number): void {
    const current = this.cache.get(deviceId);
    if (!current || current.revision < revision) {
      this.cache.set(deviceId, { record, revision });
      this.events.onChange?.(deviceId, current?.record, record);
    }
  }

  private forget(deviceId: string): void {
    const current = this.cache.get(deviceId);
    if (!current) return;
    this.cache.delete(deviceId);
    this.events.onChange?.(deviceId, current.record, undefined);
  }

  get(deviceId: string): DeviceRecord | undefined {
    return this.cache.get(deviceId)?.record;
  }

  /** Every record, in no particular order (cheaper than list() for counting). */
  *records(): IterableIterator<DeviceRecord> {
    for (const cached of this.cache.values()) yield cached.record;
  }

  /** Every record, sorted by device id. */
  list(): DeviceRecord[] {
    return [...this.cache.values()]
      .map((c) => c.record)
      .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  }

  get size(): number {
    return this.cache.size;
  }

  /**
   * Applies `change` to the device's current record (undefined when there is none) and stores
   * the result with compare-and-swap, re-reading and re-applying after a lost race. `change` may
   * run more than once, so it must be a pure function of its input.
   */
  update(
    deviceId: string,
    change: (current: DeviceRecord | undefined) => DeviceRecord,
  ): Promise<DeviceRecord> {
    return this.serialized(deviceId, () => this.compareAndSwap(deviceId, change));
  }

  /**
   * Removes the device's record, compare-and-swap on its revision like `update` (a write that
   * raced in is deleted with it). Returns the record removed; undefined when there was none.
   */
  delete(deviceId: string): Promise<DeviceRecord | undefined> {
    return this.serialized(deviceId, () =>
      this.retryOnConflict(deviceId, async (known) => {
        if (!known) return undefined;
        await this.kv.delete(deviceId, { previousSeq: known.revision });
        this.deleted.set(deviceId, known.revision);
        if (this.cache.get(deviceId)?.revision === known.revision) this.forget(deviceId);
        return known.record;
      }),
    );
  }

  /** Serializes writes to one key within this process; CAS handles other processes. */
  private async serialized<T>(deviceId: string, write: () => Promise<T>): Promise<T> {
    const previous = this.writeChains.get(deviceId) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(write);
    this.writeChains.set(deviceId, next);
    try {
      return await next;
    } finally {
      if (this.writeChains.get(deviceId) === next) this.writeChains.delete(deviceId);
    }
  }

  private compareAndSwap(
    deviceId: string,
    change: (current: DeviceRecord | undefined) => DeviceRecord,
  ): Promise<DeviceRecord> {
    return this.retryOnConflict(deviceId, async (known) => {
      const record = change(known?.record);
      const data = JSON.stringify(record);
      const revision = known
        ? await this.kv.update(deviceId, data, known.revision)
        : await this.kv.create(deviceId, data);
      this.remember(deviceId, record, revision);
      return record;
    });
  }

  /**
   * Runs `write` against the entry as known (cached first), and again against a fresh read
   * after each lost compare-and-swap, up to MAX_CAS_ATTEMPTS.
   */
  private async retryOnConflict<T>(
    deviceId: string,
    write: (known: Cached | undefined) => Promise<T>,
  ): Promise<T> {
    let known = this.cache.get(deviceId);
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      try {
        return await write(known);
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
        this.events.onConflict?.();
        // The winner may have more writes queued; back off (with jitter) so that a busy writer
        // cannot starve this one.
        await sleep(Math.random() * Math.min(100, 2 ** attempt));
        const entry = await this.kv.get(deviceId);
        known =
          entry?.operation === 'PUT'
            ? { record: entry.json<DeviceRecord>(), revision: entry.revision }
            : undefined;
      }
    }
    throw new RegistryConflictError(
      `device ${deviceId}: ${MAX_CAS_ATTEMPTS} writers in a row won the race for its registry entry`,
      { context: { deviceId } },
    );
  }

  async close(): Promise<void> {
    this.watcher?.stop();
    await this.watchLoop;
    await Promise.allSettled(this.writeChains.values());
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
