import { Kvm, type KV } from '@nats-io/kv';
import { KV_BUCKETS } from '../../common/names.js';
import {
  bucketOptions,
  onceSucceeded,
  isRevisionConflict,
  type NatsConnection,
} from '../../common/nats.js';
import {
  benchmarkSignal,
  measurementsKey,
  rolloutRecordKey,
  type BenchmarkReportFields,
  type BenchmarkReportSignal,
  type RolloutStatus,
} from '../../common/rollout.js';
import type { Measurement } from '../planner/planner.js';

/** Measurements kept per (architecture, class): enough history, bounded. */
const MEASUREMENTS_KEPT = 50;

/** What a device's ReportBenchmark left in the benchmarks bucket (the control plane writes it). */
type StoredBenchmark = BenchmarkReportFields & { deviceId: string };

/**
 * Rollout records, on-device measurements and benchmark reports, all in NATS KV. The workflow
 * gets reports as signals; collectBenchmarks re-reads them from the bucket so a signal that never
 * arrived (control plane restarting, Temporal unreachable) loses nothing.
 */
export function createRecordActivities(nats: NatsConnection) {
  const buckets = new Map<string, () => Promise<KV>>();
  const bucket = (name: string) => {
    if (!buckets.has(name)) {
      buckets.set(
        name,
        onceSucceeded(() => new Kvm(nats).create(name, bucketOptions({ history: 1 }))),
      );
    }
    return buckets.get(name)!();
  };

  return {
    async saveRolloutRecord(status: RolloutStatus): Promise<void> {
      const kv = await bucket(KV_BUCKETS.rollouts);
      await kv.put(rolloutRecordKey(status.rolloutId), JSON.stringify(status));
    },

    async loadMeasurements(input: {
      architecture: string;
      hardwareClasses: string[];
    }): Promise<Record<string, Measurement[]>> {
      const kv = await bucket(KV_BUCKETS.rollouts);
      const found: Record<string, Measurement[]> = {};
      for (const cls of input.hardwareClasses) {
        const entry = await kv.get(measurementsKey(input.architecture, cls));
        found[cls] = entry?.operation === 'PUT' ? entry.json<Measurement[]>() : [];
      }
      return found;
    },

    /** Adds a rollout's measurements; a retry of the same rollout replaces instead of adding. */
    async saveMeasurements(input: {
      architecture: string;
      hardwareClass: string;
      measurements: Measurement[];
    }): Promise<void> {
      const kv = await bucket(KV_BUCKETS.rollouts);
      const key = measurementsKey(input.architecture, input.hardwareClass);
      const rollouts = new Set(input.measurements.map((m) => m.rolloutId));
      for (;;) {
        const entry = await kv.get(key);
        const previous = entry?.operation === 'PUT' ? entry.json<Measurement[]>() : [];
        const next = [
          ...previous.filter((m) => !rollouts.has(m.rolloutId)),
          ...input.measurements,
        ].slice(-MEASUREMENTS_KEPT);
        try {
          if (entry) await kv.update(key, JSON.stringify(next), entry.revision);
          else await kv.create(key, JSON.stringify(next));
          return;
        } catch (err) {
          // Another class of the same architecture wrote first: read again and retry.
          if (!isRevisionConflict(err)) throw err;
        }
      }
    },

    /** The reports already recorded for these (variant, device) pairs of a rollout. */
    async collectBenchmarks(input: {
      rolloutId: string;
      variants: string[];
      deviceIds: string[];
    }): Promise<BenchmarkReportSignal[]> {
      const kv = await bucket(KV_BUCKETS.benchmarks);
      const found: BenchmarkReportSignal[] = [];
      for (const variant of input.variants) {
        for (const deviceId of input.deviceIds) {
          const entry = await kv.get(`${input.rolloutId}.${variant}.${deviceId}`);
          if (entry?.operation !== 'PUT') continue;
          const stored = entry.json<StoredBenchmark>();
          found.push(benchmarkSignal(stored.deviceId, stored));
        }
      }
      return found;
    },
  };
}
