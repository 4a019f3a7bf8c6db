import { Kvm, type KvEntry } from '@nats-io/kv';
import type { Logger } from '../../common/logger.js';
import { desiredStateKey, KV_BUCKETS } from '../../common/names.js';
import { Backoff, type BackoffOptions } from '../heartbeat/backoff.js';
import { pause } from '../heartbeat/pause.js';
import type { NatsLink } from '../nats/nats-link.js';

/** One revision of the device's desired-state key. */
export interface DesiredStateEntry {
  revision: number;
  /** PUT, or DEL / PURGE when the orchestrator removed the key. */
  operation: KvEntry['operation'];
  value: string;
}

export interface DesiredStateWatcherOptions {
  link: NatsLink;
  deviceId: string;
  backoff: BackoffOptions;
  logger: Logger;
}

/**
 * Watches the device's own key in the desired-state bucket. A watch starts with the latest value
 * (a device that was offline catches up at once) and then delivers every update. It is started
 * again after an error (the bucket not created yet, NATS down) with backoff, and at once after a
 * reconnect: a restarted server has forgotten the watch's consumer.
 */
export class DesiredStateWatcher {
  readonly #o: DesiredStateWatcherOptions;
  readonly key: string;

  constructor(options: DesiredStateWatcherOptions) {
    this.#o = options;
    this.key = desiredStateKey(options.deviceId);
  }

  /** Hands every entry to `onEntry` until the signal aborts. */
  async run(onEntry: (entry: DesiredStateEntry) => void, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.#o.backoff);
    while (!signal.aborted) {
      let problem = 'the watch ended';
      try {
        await this.#watchOnce(onEntry, signal, () => backoff.reset());
      } catch (err) {
        problem = (err as Error).message;
      }
      if (signal.aborted) return;
      // Also after a watch that ended (a reconnect): a short, jittered pause, so a watch that
      // keeps ending at once cannot turn into a request storm.
      const retryInMs = backoff.next();
      this.#o.logger.warn(
        { key: this.key, problem, retryInMs: Math.round(retryInMs) },
        'watching the desired state again',
      );
      await pause(retryInMs, signal);
    }
  }

  async #watchOnce(
    onEntry: (entry: DesiredStateEntry) => void,
    signal: AbortSignal,
    onWatching: () => void,
  ): Promise<void> {
    const nc = await this.#o.link.connection(signal);
    const kv = await new Kvm(nc).open(KV_BUCKETS.desiredState);
    const watch = await kv.watch({ key: this.key });
    onWatching();
    this.#o.logger.info({ key: this.key }, 'watching the desired state');
    const stop = () => watch.stop();
    // The signal may have aborted while the watch was being created: its event is gone then.
    if (signal.aborted) stop();
    signal.addEventListener('abort', stop, { once: true });
    // Ends this watch; run() starts a fresh one, which delivers the latest value again.
    const forget = this.#o.link.onReconnect(stop);
    try {
      for await (const e of watch) {
        onEntry({ revision: e.revision, operation: e.operation, value: e.string() });
      }
    } finally {
      signal.removeEventListener('abort', stop);
      forget();
    }
  }
}
