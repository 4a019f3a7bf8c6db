import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { KvEntry } from '@nats-io/kv';
import type { Logger } from '../../common/logger.js';
import { cohortOf } from '../../common/cohorts.js';
import { deviceDesiredKey, KV_BUCKETS, kvStream, kvSubject, trackKey } from '../../common/names.js';
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
  /** The agent's NatsLink (or, in the fleet simulator, a connection shared by many devices). */
  link: Pick<NatsLink, 'connection' | 'onReconnect'>;
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
  /** How often both keys are read again whatever was heard; default RESYNC_MS. */
  resyncMs?: number;
}

interface KeyValue {
  revision: number;
  operation: KvEntry['operation'];
  value: string;
}

/**
 * Both keys are read again this often (±20%) even when no change was heard: core NATS delivers
 * a change notification at most once, and one lost while the connection was healthy (a slow
 * consumer) would otherwise wait for the next change. Reconnects read them at once.
 */
export const RESYNC_MS = 5 * 60_000;

/** How long one direct get may take. */
const READ_TIMEOUT_MS = 10_000;

/**
 * After a change notification, how long to keep reading until the key's revision moves: the
 * notification (a core NATS copy of the KV write) can arrive before the stream has stored the
 * write, and a follower answering a direct get may lag the leader.
 */
const CATCH_UP_DELAYS_MS = [0, 50, 200, 500, 1_000, 2_000, 4_000];

/**
 * Follows the two keys of the desired-state bucket that concern the device, its own entry and
 * its release track (class and cohort), and resolves them: the device's own entry wins while it
 * has one. It holds no JetStream consumer (one per device is what stops a server first at fleet
 * scale, docs/scale.md), and needs only per-key rights: a core subscription to each key's subject
 * says that it changed, and a direct get of that one key (`$JS.API.DIRECT.GET.<stream>.<subject>`)
 * reads its value and revision. It reads both keys when it starts (a device that enrolled late or
 * was offline catches up at once), after every reconnect, and every RESYNC_MS. It starts again
 * after an error (the bucket not created yet, NATS down, a permission refused) with backoff.
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
    const track = this.trackKey;
    const keys = [this.key, track];
    const wake = new Wakeup();
    const stop = () => wake.stop();
    this.#stopWatch = stop;
    signal.addEventListener('abort', stop, { once: true });
    // Ends this watch; run() starts a fresh one, which reads both keys again.
    const forget = this.#o.link.onReconnect(stop);
    // Subscribed (and the server told, by the flush) before the first read: a change between
    // the two is heard.
    const subs = keys.map((key) => subscribe(nc, key, wake));
    const latest = new Map<string, KeyValue>();
    let emitted: DesiredStateEntry | undefined;
    const emit = () => {
      const resolved = resolve(latest, this.key, track);
      if (!resolved || sameEntry(resolved, emitted)) return;
      emitted = resolved;
      onEntry(resolved);
    };
    try {
      await nc.flush();
      // The class may have changed, or the signal aborted, while the watch was being set up:
      // rewatch() or the abort found nothing to stop then.
      if (track !== this.trackKey || signal.aborted) return;
      for (const key of keys) latest.set(key, await readKey(nc, key));
      emit();
      onWatching();
      this.#o.logger.info({ key: this.key, track }, 'watching the desired state');
      const resyncMs = this.#o.resyncMs ?? RESYNC_MS;
      for (;;) {
        const event = await wake.next(resyncMs * (0.8 + 0.4 * Math.random()));
        if (event.kind === 'stop') {
          if (event.error) throw event.error;
          return;
        }
        const toRead = event.kind === 'changed' ? event.keys : keys;
        for (const key of toRead) {
          const known = latest.get(key)?.revision ?? 0;
          latest.set(
            key,
            await (event.kind === 'changed' ? readNewer(nc, key, known, wake) : readKey(nc, key)),
          );
        }
        emit();
      }
    } finally {
      signal.removeEventListener('abort', stop);
      forget();
      for (const sub of subs) sub.unsubscribe();
    }
  }
}

type WakeEvent =
  { kind: 'changed'; keys: string[] } | { kind: 'resync' } | { kind: 'stop'; error?: Error };

/** What the watch loop waits for: a key changed, time to resync, or stop. */
class Wakeup {
  #changed = new Set<string>();
  #stopped: { error?: Error } | undefined;
  #notify: (() => void) | undefined;

  changed(key: string): void {
    this.#changed.add(key);
    this.#notify?.();
  }

  stop(error?: Error): void {
    this.#stopped ??= { error };
    this.#notify?.();
  }

  get stopped(): boolean {
    return this.#stopped !== undefined;
  }

  async next(timeoutMs: number): Promise<WakeEvent> {
    if (!this.#stopped && this.#changed.size === 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#notify = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
      this.#notify = undefined;
    }
    if (this.#stopped) return { kind: 'stop', ...this.#stopped };
    if (this.#changed.size === 0) return { kind: 'resync' };
    const keys = [...this.#changed];
    this.#changed.clear();
    return { kind: 'changed', keys };
  }
}

/** A core subscription to one key's subject: each message says the key changed. */
function subscribe(nc: NatsConnection, key: string, wake: Wakeup): Subscription {
  const sub = nc.subscribe(kvSubject(KV_BUCKETS.desiredState, key), {
    callback: (err: Error | null, _msg: Msg) => {
      if (err) wake.stop(err);
      else wake.changed(key);
    },
  });
  // Refused by the server (permissions) or closed under it: the watch starts over.
  void sub.closed.then((err) => {
    if (err) wake.stop(new Error(`the subscription to ${key} was closed: ${err.message}`));
  });
  return sub;
}

/** One key's latest value and revision, by a direct get; revision 0 when it never had one. */
export async function readKey(nc: NatsConnection, key: string): Promise<KeyValue> {
  const bucket = KV_BUCKETS.desiredState;
  const reply = await nc.request(
    `$JS.API.DIRECT.GET.${kvStream(bucket)}.${kvSubject(bucket, key)}`,
    undefined,
    { timeout: READ_TIMEOUT_MS },
  );
  const headers = reply.headers;
  if (headers?.code === 404) return { revision: 0, operation: 'DEL', value: '' };
  if (headers?.hasError) {
    throw new Error(`reading ${key} failed: ${headers.code} ${headers.description}`);
  }
  const revision = Number(headers?.get('Nats-Sequence'));
  if (!Number.isSafeInteger(revision) || revision <= 0) {
    throw new Error(`reading ${key} gave no revision`);
  }
  const operation = (headers?.get('KV-Operation') || 'PUT') as KvEntry['operation'];
  return { revision, operation, value: operation === 'PUT' ? reply.string() : '' };
}

/** After a change was heard: reads until the revision moves past `known` (see CATCH_UP_DELAYS_MS). */
async function readNewer(
  nc: NatsConnection,
  key: string,
  known: number,
  wake: Wakeup,
): Promise<KeyValue> {
  let value: KeyValue | undefined;
  for (const delay of CATCH_UP_DELAYS_MS) {
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    if (wake.stopped) break;
    value = await readKey(nc, key);
    if (value.revision > known) return value;
  }
  return value ?? readKey(nc, key);
}

function sameEntry(a: DesiredStateEntry, b: DesiredStateEntry | undefined): boolean {
  return (
    b !== undefined && a.revision === b.revision && a.key === b.key && a.operation === b.operation
  );
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
