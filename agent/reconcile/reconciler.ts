import type { DesiredState } from '../../common/desired-state.js';
import type { Logger } from '../../common/logger.js';
import { ManifestRefusedError } from '../../common/manifest.js';
import { Backoff, type BackoffOptions } from '../heartbeat/backoff.js';
import { pause } from '../heartbeat/pause.js';
import type { AppliedRevisionStore } from './applied-revision.js';
import { parseDesiredState } from './desired-state-schema.js';
import type { DesiredStateEntry, DesiredStateWatcher } from './desired-state-watcher.js';

export interface ReconcilerOptions {
  watcher: Pick<DesiredStateWatcher, 'run'>;
  revisions: AppliedRevisionStore;
  apply: (desired: DesiredState, signal: AbortSignal) => Promise<void>;
  /** A value that is not a desired state: report it, there is nothing to apply. */
  refuse: (error: ManifestRefusedError) => Promise<void>;
  /** Pause before trying an entry again after an unexpected failure (a full disk, say). */
  backoff: BackoffOptions;
  logger: Logger;
}

export interface ReconcileStatus {
  /** The newest revision the watch delivered; 0 before any. */
  seenRevision: number;
  /** The revision applied last, kept across restarts; 0 before any. */
  appliedRevision: number;
}

/** Why an application was cut short: a newer revision arrived. */
class Superseded extends Error {
  override name = 'Superseded';
}

/**
 * Reconciles the device toward the latest desired state, one revision at a time. Only the newest
 * revision matters: one arriving mid-application aborts the current one (at its next step) and
 * revisions in between are skipped. A revision counts as applied, on disk, once its application
 * finished; one at or below that is skipped, so a re-delivered or repeated entry changes nothing,
 * while one cut short by a restart is applied again.
 */
export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #stop = new AbortController();
  readonly #status: ReconcileStatus = { seenRevision: 0, appliedRevision: 0 };
  #next: DesiredStateEntry | undefined;
  #current: { revision: number; abort: AbortController } | undefined;
  #wake: () => void = () => {};
  #running: Promise<unknown> | undefined;

  constructor(options: ReconcilerOptions) {
    this.#o = options;
  }

  get status(): ReconcileStatus {
    return { ...this.#status };
  }

  async start(): Promise<void> {
    this.#status.appliedRevision = await this.#o.revisions.load();
    const signal = this.#stop.signal;
    this.#running = Promise.all([
      this.#o.watcher.run((entry) => this.#offer(entry), signal),
      this.#loop(signal),
    ]);
  }

  /** Stops watching and cuts the application in flight short (it is applied again next start). */
  async stop(): Promise<void> {
    this.#stop.abort(new Error('the agent is stopping'));
    this.#wake();
    await this.#running;
  }

  #offer(entry: DesiredStateEntry): void {
    this.#status.seenRevision = Math.max(this.#status.seenRevision, entry.revision);
    // A new watch (after a reconnect) delivers the revision being applied again: not news.
    const newest = Math.max(
      this.#status.appliedRevision,
      this.#next?.revision ?? 0,
      this.#current?.revision ?? 0,
    );
    if (entry.revision <= newest) {
      this.#o.logger.debug({ revision: entry.revision }, 'desired state already applied or queued');
      return;
    }
    this.#next = entry;
    const current = this.#current;
    if (current && current.revision < entry.revision) {
      current.abort.abort(new Superseded(`revision ${entry.revision} replaced it`));
    }
    this.#wake();
  }

  async #loop(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.#o.backoff);
    while (!signal.aborted) {
      const entry = this.#next;
      if (!entry) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      this.#next = undefined;
      const abort = new AbortController();
      const stop = () => abort.abort(signal.reason);
      signal.addEventListener('abort', stop, { once: true });
      this.#current = { revision: entry.revision, abort };
      try {
        await this.#applyEntry(entry, abort.signal);
        if (abort.signal.aborted) continue;
        await this.#o.revisions.save(entry.revision);
        this.#status.appliedRevision = entry.revision;
        backoff.reset();
      } catch (err) {
        if (abort.signal.aborted) continue;
        const retryInMs = backoff.next();
        this.#o.logger.error(
          { err, revision: entry.revision, retryInMs: Math.round(retryInMs) },
          'applying the desired state failed; trying again',
        );
        this.#next ??= entry;
        await pause(retryInMs, signal);
      } finally {
        this.#current = undefined;
        signal.removeEventListener('abort', stop);
      }
    }
  }

  async #applyEntry(entry: DesiredStateEntry, signal: AbortSignal): Promise<void> {
    const log = this.#o.logger.child({ revision: entry.revision });
    if (entry.operation !== 'PUT') {
      log.info({ operation: entry.operation }, 'desired state removed; keeping the current model');
      return;
    }
    let desired: DesiredState;
    try {
      desired = parseDesiredState(entry.value);
    } catch (err) {
      if (!(err instanceof ManifestRefusedError)) throw err;
      await this.#o.refuse(err);
      return;
    }
    log.info({ kind: desired.kind, rolloutId: desired.rolloutId }, 'applying the desired state');
    await this.#o.apply(desired, signal);
    if (!signal.aborted) log.info({ rolloutId: desired.rolloutId }, 'desired state applied');
  }
}
