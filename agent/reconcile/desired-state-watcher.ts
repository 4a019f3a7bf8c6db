import { Kvm, type KvEntry } from '@nats-io/kv';
import type { Logger } from '../../common/logger.js';
import { cohortOf } from '../../common/cohorts.js';
import { deviceDesiredKey, KV_BUCKETS, trackKey } from '../../common/names.js';
import { Backoff, type BackoffOptions } from '../heartbeat/backoff.js';
import { pause } from '../heartbeat/pause.js';
import type { NatsLink } from '../nats/nats-link.js';

/**
 * What the device should do now: its own entry when it has one, else its track's. `revision` is
 * the newest KV revision of either key, so it grows with every change that matters to the
 * device (revisions are one sequence per bucket), also when the device's own entry is removed
 * and the track's older value takes over again.
 */
export interface DesiredStateEntry {
  revision: number;
  /** PUT, or DEL / PURGE when neither key holds a value any more. */
  operation: KvEntry['operation'];
  value: string;
  /** The key the value came from: `device.<id>` or `track.<class>.<cohort>`. */
  key?: string;
}

export interface DesiredStateWatcherOptions {
  link: NatsLink;
  /**
   * Told when the watch keeps failing (a problem, in words) and when it works again (undefined):
   * a device that cannot receive models must not look healthy (it would be drawn as a canary).
   */
  onHealth?: (problem: string | undefined) => void;
  deviceId: string;
  /** The device's hardware class (its identity's): which track it follows. */
  hardwareClass: () => string;
  backoff: BackoffOptions;
  logger: Logger;
}

interface KeyValue {
  revision: number;
  operation: KvEntry['operation'];
  value: string;
}

/**
 * Watches the two keys of the desired-state bucket that concern the device, its own entry and its
 * release track (class and cohort), with one consumer, and resolves them: the device's own entry
 * wins while it has one. A watch starts with the latest values (a device that enrolled late or
 * was offline catches up at once) and then delivers every update. It is started again after an
 * error (the bucket not created yet, NATS down) with backoff, and at once after a reconnect: a
 * restarted server has forgotten the watch's consumer.
 */
export class DesiredStateWatcher {
  readonly #o: DesiredStateWatcherOptions;
  readonly key: string;

  constructor(options: DesiredStateWatcherOptions) {
    this.#o = options;
    this.key = deviceDesiredKey(options.deviceId);
  }

  #stopWatch: (() => void) | undefined;

  /**
   * Starts the watch again, on the keys of the device's current class: its class changed, so it
   * follows another track now.
   */
  rewatch(): void {
    this.#stopWatch?.();
  }

  /** The device's track key, from its current class. */
  get trackKey(): string {
    return trackKey(this.#o.hardwareClass(), cohortOf(this.#o.deviceId));
  }

  /** Hands every entry to `onEntry` until the signal aborts. */
  async run(onEntry: (entry: DesiredStateEntry) => void, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.#o.backoff);
    const health = new WatchHealth(this.#o.onHealth ?? (() => {}));
    while (!signal.aborted) {
      let problem = 'the watch ended';
      try {
        await this.#watchOnce(onEntry, signal, () => {
          backoff.reset();
          health.watching();
        });
      } catch (err) {
        problem = (err as Error).message;
        if (!signal.aborted) health.failed(problem);
      }
      if (signal.aborted) return;
      // Also after a watch that ended (a reconnect): a short, jittered pause, so a watch that
      // keeps ending at once cannot turn into a request storm.
      const retryInMs = backoff.next();
      this.#o.logger.warn(
        { key: this.key, track: this.trackKey, problem, retryInMs: Math.round(retryInMs) },
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
    const track = this.trackKey;
    const watch = await kv.watch({ key: [this.key, track] });
    onWatching();
    this.#o.logger.info({ key: this.key, track }, 'watching the desired state');
    const stop = () => watch.stop();
    this.#stopWatch = stop;
    // The class may have changed while the watch was being created: rewatch() found none to stop.
    if (track !== this.trackKey) stop();
    // The signal may have aborted while the watch was being created: its event is gone then.
    if (signal.aborted) stop();
    signal.addEventListener('abort', stop, { once: true });
    // Ends this watch; run() starts a fresh one, which delivers the latest value again.
    const forget = this.#o.link.onReconnect(stop);
    const latest = new Map<string, KeyValue>();
    // The initial values arrive one by one: resolve once both are in (delta, the entries still
    // pending, reaches 0), or a device with its own entry would start on its track's value.
    let caughtUp = false;
    try {
      for await (const e of watch) {
        latest.set(e.key, { revision: e.revision, operation: e.operation, value: e.string() });
        if (e.delta === 0) caughtUp = true;
        if (!caughtUp) continue;
        const resolved = resolve(latest, this.key, track);
        if (resolved) onEntry(resolved);
      }
    } finally {
      signal.removeEventListener('abort', stop);
      forget();
    }
  }
}

/** Failed watch attempts in a row before the device says it cannot receive models. */
export const WATCH_FAILURES_BEFORE_DEGRADED = 3;

/**
 * Whether the watch works, from its attempts: a problem after WATCH_FAILURES_BEFORE_DEGRADED
 * failures in a row (one failure is a blip: NATS restarting), cleared when a watch starts.
 */
export class WatchHealth {
  readonly #report: (problem: string | undefined) => void;
  #failures = 0;

  constructor(report: (problem: string | undefined) => void) {
    this.#report = report;
  }

  failed(problem: string): void {
    this.#failures += 1;
    if (this.#failures >= WATCH_FAILURES_BEFORE_DEGRADED) {
      this.#report(
        `cannot watch its desired state (${this.#failures} attempts in a row): ${problem}`,
      );
    }
  }

  watching(): void {
    if (this.#failures >= WATCH_FAILURES_BEFORE_DEGRADED) this.#report(undefined);
    this.#failures = 0;
  }
}

/**
 * The device's own entry while it holds a value, else the track's; the revision is the newest of
 * both. Undefined before either key was seen.
 */
export function resolve(
  latest: ReadonlyMap<string, KeyValue>,
  deviceKey: string,
  trackKey: string,
): DesiredStateEntry | undefined {
  const own = latest.get(deviceKey);
  const track = latest.get(trackKey);
  const revision = Math.max(own?.revision ?? 0, track?.revision ?? 0);
  if (revision === 0) return undefined;
  const chosen =
    own?.operation === 'PUT' ? own : track?.operation === 'PUT' ? track : (own ?? track);
  const key = chosen === own ? deviceKey : trackKey;
  return { revision, operation: chosen!.operation, value: chosen!.value, key };
}
