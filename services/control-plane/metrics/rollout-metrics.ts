import { Counter, Gauge, type Registry } from 'prom-client';
import { Kvm, type KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { KV_BUCKETS } from '../../../common/names.js';
import { bucketOptions, type NatsConnection } from '../../../common/nats.js';
import {
  FINISHED_PHASES,
  rolloutRecordKey,
  type RolloutPhase,
  type RolloutStatus,
} from '../../../common/rollout.js';

/** Finished rollouts that keep their per-rollout series, newest first; older ones drop out. */
export const RECENT_FINISHED_ROLLOUTS = 20;

/** Every phase, so that `edgeforge_rollouts` shows zeros rather than nothing. */
const PHASES = Object.keys({
  preparing_teacher: 0,
  distilling: 0,
  importing_model: 0,
  planning: 0,
  building_variants: 0,
  rolling_out: 0,
  succeeded: 0,
  partially_succeeded: 0,
  failed: 0,
  cancelled: 0,
} satisfies Record<RolloutPhase, 0>) as RolloutPhase[];

/** Device states of a class in a rollout; they add up to the class's devices. */
export const CLASS_DEVICE_STATES = ['done', 'failed', 'unresponsive', 'pending'] as const;

/** What the metrics need of one rollout record. */
interface RolloutSummary {
  rolloutId: string;
  phase: RolloutPhase;
  startedAt: number;
  updatedAt: number;
  finishedAt: number | null;
  classes: {
    hardwareClass: string;
    total: number;
    done: number;
    failed: number;
    unresponsive: number;
    rolledBackWaves: number;
  }[];
}

const KEY_PREFIX = rolloutRecordKey('');

const isFinished = (phase: RolloutPhase) => FINISHED_PHASES.includes(phase);
const seconds = (ms: number) => ms / 1000;

/** The summary of a rollout record, or a reason why it is not one. */
export function summarize(value: unknown): RolloutSummary | string {
  const r = value as Partial<RolloutStatus> | null;
  if (typeof r !== 'object' || r === null) return 'not a JSON object';
  if (typeof r.rolloutId !== 'string') return 'no rolloutId';
  if (!PHASES.includes(r.phase as RolloutPhase)) return `unknown phase ${String(r.phase)}`;
  if (!Array.isArray(r.classes)) return 'no classes';
  const time = (t: unknown) => (typeof t === 'string' ? Date.parse(t) : NaN);
  return {
    rolloutId: r.rolloutId,
    phase: r.phase!,
    startedAt: time(r.startedAt),
    updatedAt: time(r.updatedAt),
    finishedAt: r.finishedAt ? time(r.finishedAt) : null,
    classes: r.classes.map((c) => ({
      hardwareClass: String(c.hardwareClass),
      total: Number(c.devicesTotal) || 0,
      done: Number(c.devicesDone) || 0,
      failed: Number(c.devicesFailed) || 0,
      unresponsive: Array.isArray(c.unresponsive) ? c.unresponsive.length : 0,
      rolledBackWaves: Array.isArray(c.waves)
        ? c.waves.filter((w) => w.state === 'rolled_back').length
        : 0,
    })),
  };
}

/**
 * Rollout metrics from the rollout records (the rollouts KV bucket, `rollout.<id>`), which the
 * rollout workflow writes. Everything is derived from the records at scrape time, so every
 * control-plane replica exports the same values and a restart resets nothing: the `_total`
 * counters count records (finished rollouts, rolled-back waves) and only grow while records are
 * kept. Per-rollout series exist for running rollouts and the last RECENT_FINISHED_ROLLOUTS
 * finished ones, so their number stays bounded however many rollouts the bucket holds.
 */
export class RolloutMetrics {
  readonly #rollouts = new Map<string, RolloutSummary>();
  /** Records that could not be read, by key (logged once each). */
  readonly #unreadable = new Set<string>();
  #watcher: QueuedIterator<KvWatchEntry> | undefined;
  #loop: Promise<void> | undefined;

  constructor(register: Registry) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- collect() runs with the metric as `this`
    const self = this;
    new Gauge({
      name: 'edgeforge_rollouts',
      help: 'Rollout records by phase (running phases, and how finished ones ended)',
      labelNames: ['phase'] as const,
      registers: [register],
      collect() {
        const counts = new Map<string, number>(PHASES.map((p) => [p, 0]));
        for (const r of self.#rollouts.values()) counts.set(r.phase, counts.get(r.phase)! + 1);
        for (const [phase, n] of counts) this.set({ phase }, n);
      },
    });
    new Gauge({
      name: 'edgeforge_rollout_class_devices',
      help:
        'Devices of a hardware class in a rollout, by state (done: running the chosen variant; ' +
        'pending: not yet); running rollouts and the last 20 finished ones',
      labelNames: ['rollout_id', 'hardware_class', 'state'] as const,
      registers: [register],
      collect() {
        this.reset();
        for (const r of self.#visible()) {
          for (const c of r.classes) {
            const pending = Math.max(0, c.total - c.done - c.failed - c.unresponsive);
            const values = {
              done: c.done,
              failed: c.failed,
              unresponsive: c.unresponsive,
              pending,
            };
            for (const state of CLASS_DEVICE_STATES) {
              this.set(
                { rollout_id: r.rolloutId, hardware_class: c.hardwareClass, state },
                values[state],
              );
            }
          }
        }
      },
    });
    new Gauge({
      name: 'edgeforge_rollout_started_timestamp_seconds',
      help: 'When a rollout started (Unix time); running rollouts and the last 20 finished ones',
      labelNames: ['rollout_id'] as const,
      registers: [register],
      collect() {
        this.reset();
        for (const r of self.#visible()) {
          if (Number.isFinite(r.startedAt))
            this.set({ rollout_id: r.rolloutId }, seconds(r.startedAt));
        }
      },
    });
    new Gauge({
      name: 'edgeforge_rollout_updated_timestamp_seconds',
      help:
        'When the rollout workflow last updated a rollout (Unix time), with its phase: a running ' +
        'rollout that stops updating is stuck; running rollouts and the last 20 finished ones',
      labelNames: ['rollout_id', 'phase'] as const,
      registers: [register],
      collect() {
        this.reset();
        for (const r of self.#visible()) {
          if (Number.isFinite(r.updatedAt))
            this.set({ rollout_id: r.rolloutId, phase: r.phase }, seconds(r.updatedAt));
        }
      },
    });
    new Counter({
      name: 'edgeforge_rollout_outcomes_total',
      help: 'Finished rollouts by outcome (the phase they ended in), counted from their records',
      labelNames: ['outcome'] as const,
      registers: [register],
      collect() {
        this.reset();
        for (const outcome of FINISHED_PHASES) this.inc({ outcome }, 0);
        for (const r of self.#rollouts.values()) {
          if (isFinished(r.phase)) this.inc({ outcome: r.phase });
        }
      },
    });
    new Counter({
      name: 'edgeforge_rollout_rollbacks_total',
      help: 'Rollout waves rolled back, by hardware class, counted from the rollout records',
      labelNames: ['hardware_class'] as const,
      registers: [register],
      collect() {
        this.reset();
        for (const r of self.#rollouts.values()) {
          for (const c of r.classes)
            this.inc({ hardware_class: c.hardwareClass }, c.rolledBackWaves);
        }
      },
    });
  }

  /** Starts following the rollouts bucket (created when missing); resolves once watching. */
  async watch(nats: NatsConnection, log: Logger): Promise<void> {
    const kv = await new Kvm(nats).create(KV_BUCKETS.rollouts, bucketOptions({ history: 1 }));
    const watcher = await kv.watch({ key: `${KEY_PREFIX}>` });
    this.#watcher = watcher;
    this.#loop = (async () => {
      for await (const entry of watcher) {
        if (entry.operation !== 'PUT') {
          this.apply(entry.key, null);
          continue;
        }
        let value: unknown;
        try {
          value = entry.json();
        } catch {
          value = undefined;
        }
        const problem = this.apply(entry.key, value);
        if (problem && !this.#unreadable.has(entry.key)) {
          this.#unreadable.add(entry.key);
          log.warn(
            { key: entry.key, revision: entry.revision, problem },
            'rollout record not understood: left out of the rollout metrics',
          );
        }
      }
    })().catch((err: unknown) => log.error({ err }, 'rollout metrics: the watch failed'));
  }

  /**
   * Applies one record (null: deleted); returns why it was left out, if it was. The record's key
   * names the rollout, so a bad record drops the one it replaces.
   */
  apply(key: string, value: unknown): string | undefined {
    if (value === null) {
      this.#rollouts.delete(key);
      this.#unreadable.delete(key);
      return undefined;
    }
    const summary = summarize(value);
    if (typeof summary === 'string') {
      this.#rollouts.delete(key);
      return summary;
    }
    this.#unreadable.delete(key);
    this.#rollouts.set(key, summary);
    return undefined;
  }

  /** Running rollouts, and the RECENT_FINISHED_ROLLOUTS that finished last. */
  #visible(): RolloutSummary[] {
    const all = [...this.#rollouts.values()];
    const finished = all
      .filter((r) => isFinished(r.phase))
      .sort((a, b) => (b.finishedAt ?? b.updatedAt) - (a.finishedAt ?? a.updatedAt))
      .slice(0, RECENT_FINISHED_ROLLOUTS);
    return [...all.filter((r) => !isFinished(r.phase)), ...finished];
  }

  async close(): Promise<void> {
    this.#watcher?.stop();
    await this.#loop;
  }
}
