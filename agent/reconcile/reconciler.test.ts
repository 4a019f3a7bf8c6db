import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DesiredState } from '../../common/desired-state.js';
import { createLogger } from '../../common/logger.js';
import type { ManifestRefusedError } from '../../common/manifest.js';
import { waitFor } from '../test-support/fleet-double.js';
import { AppliedRevisionStore } from './applied-revision.js';
import type { DesiredStateEntry } from './desired-state-watcher.js';
import { Reconciler } from './reconciler.js';

const run = (rolloutId: string): string =>
  JSON.stringify({ kind: 'run', rolloutId, model: {}, issuedAt: '2030-01-01T00:00:00Z' });
const put = (revision: number, rolloutId: string): DesiredStateEntry => ({
  revision,
  operation: 'PUT',
  value: run(rolloutId),
});

/** A watcher the test feeds by hand, and an apply that records what it was asked to do. */
class Harness {
  readonly started: string[] = [];
  readonly applied: string[] = [];
  readonly aborted: string[] = [];
  readonly refused: string[] = [];
  /** Rollouts whose application runs until something aborts it. */
  readonly endless = new Set<string>();
  /** Rollouts whose application waits for the promise (or an abort). */
  readonly gates = new Map<string, Promise<void>>();
  failNext = false;
  readonly reconciler: Reconciler;
  #deliver: (entry: DesiredStateEntry) => void = () => {};

  constructor(dataDir: string) {
    this.reconciler = new Reconciler({
      watcher: {
        run: (onEntry, signal) => {
          this.#deliver = onEntry;
          return new Promise((resolve) => signal.addEventListener('abort', () => resolve()));
        },
      },
      revisions: new AppliedRevisionStore(dataDir),
      apply: (desired, signal) => this.#apply(desired, signal),
      refuse: (error: ManifestRefusedError) => {
        this.refused.push(error.reason);
        return Promise.resolve();
      },
      backoff: { baseMs: 1, capMs: 5 },
      logger: createLogger('test', 'silent'),
    });
  }

  deliver(entry: DesiredStateEntry): void {
    this.#deliver(entry);
  }

  async #apply(desired: DesiredState, signal: AbortSignal): Promise<void> {
    this.started.push(desired.rolloutId);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    const gate = this.endless.has(desired.rolloutId)
      ? new Promise(() => {})
      : this.gates.get(desired.rolloutId);
    if (gate) {
      await Promise.race([
        gate,
        new Promise((resolve) => signal.addEventListener('abort', resolve)),
      ]);
    }
    (signal.aborted ? this.aborted : this.applied).push(desired.rolloutId);
  }
}

describe('Reconciler', () => {
  let dataDir: string;
  const running: Reconciler[] = [];
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'edgeforge-reconcile-'));
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.stop()));
    await rm(dataDir, { recursive: true, force: true });
  });
  const start = async () => {
    const harness = new Harness(dataDir);
    running.push(harness.reconciler);
    await harness.reconciler.start();
    return harness;
  };

  it('applies each revision once, across restarts too', async () => {
    const first = await start();
    first.deliver(put(1, 'r1'));
    await waitFor('r1 applied', () => first.reconciler.status.appliedRevision === 1);
    first.deliver(put(1, 'r1')); // re-delivered
    first.deliver(put(2, 'r2'));
    await waitFor('r2 applied', () => first.reconciler.status.appliedRevision === 2);
    expect(first.applied).toEqual(['r1', 'r2']);
    await first.reconciler.stop();

    // A new watch starts with the latest entry again: it is skipped.
    const again = await start();
    expect(again.reconciler.status.appliedRevision).toBe(2);
    again.deliver(put(2, 'r2'));
    again.deliver(put(3, 'r3'));
    await waitFor('r3 applied', () => again.reconciler.status.appliedRevision === 3);
    expect(again.applied).toEqual(['r3']);
  });

  it('lets a newer revision cut the current one short and skips those in between', async () => {
    const harness = await start();
    harness.endless.add('r1');
    harness.deliver(put(1, 'r1'));
    await waitFor('r1 started', () => harness.started.includes('r1'));
    harness.deliver(put(2, 'r2'));
    harness.deliver(put(3, 'r3'));
    await waitFor('r3 applied', () => harness.reconciler.status.appliedRevision === 3);
    expect(harness.aborted).toEqual(['r1']);
    expect(harness.applied).toEqual(['r3']);
  });

  it('does not apply the revision in progress again when a new watch delivers it again', async () => {
    const harness = await start();
    let open = () => {};
    harness.gates.set('r1', new Promise((resolve) => (open = resolve)));
    harness.deliver(put(1, 'r1'));
    await waitFor('r1 started', () => harness.started.includes('r1'));
    harness.deliver(put(1, 'r1')); // the watch restarted after a reconnect
    open();
    await waitFor('r1 applied', () => harness.reconciler.status.appliedRevision === 1);
    harness.deliver(put(2, 'r2'));
    await waitFor('r2 applied', () => harness.reconciler.status.appliedRevision === 2);
    expect(harness.started).toEqual(['r1', 'r2']);
  });

  it('records a value it refused or a removed key as applied: retrying cannot change them', async () => {
    const harness = await start();
    harness.deliver({ revision: 1, operation: 'PUT', value: '{"kind": "teleport"}' });
    await waitFor('1 done', () => harness.reconciler.status.appliedRevision === 1);
    harness.deliver({ revision: 2, operation: 'DEL', value: '' });
    await waitFor('2 done', () => harness.reconciler.status.appliedRevision === 2);
    expect(harness.refused).toEqual(['malformed']);
    expect(harness.applied).toEqual([]);
  });

  it('tries a revision again after an unexpected failure', async () => {
    const harness = await start();
    harness.failNext = true;
    harness.deliver(put(1, 'r1'));
    await waitFor('r1 applied', () => harness.reconciler.status.appliedRevision === 1);
    expect(harness.started).toEqual(['r1', 'r1']);
    expect(harness.applied).toEqual(['r1']);
  });
});
