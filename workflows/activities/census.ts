import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm } from '@nats-io/kv';
import { waveCounts, type ClassCensus, type WaveCounts } from '../../common/census.js';
import type { CohortRange } from '../../common/cohorts.js';
import { censusKey, KV_BUCKETS } from '../../common/names.js';
import { bucketOptions, onceSucceeded, type NatsConnection } from '../../common/nats.js';
import { cancellation, heartbeat } from './bulk.js';

export interface CensusActivityOptions {
  /** How often a waiting activity reads the census again. */
  pollMs: number;
}

export interface AwaitWaveInput {
  rolloutId: string;
  hardwareClass: string;
  range: CohortRange;
  targetSha256: string;
  /** Online devices of the wave when it started: everyone has answered at this many reports. */
  expected: number;
  /** Give up waiting at this time (ISO): the workflow's, so a retried attempt keeps it. */
  until: string;
  minServingSamples: number;
}

export interface AwaitedWave {
  counts: WaveCounts;
  /** Whether every expected device answered before the timeout. */
  settled: boolean;
}

/**
 * Reads the outcome counts the control plane keeps per (rollout, class, cohort) in the rollouts
 * bucket (common/census.ts). One small entry per class, whatever the class's size.
 */
export function createCensusActivities(nats: NatsConnection, options: CensusActivityOptions) {
  const rollouts = onceSucceeded(() =>
    new Kvm(nats).create(KV_BUCKETS.rollouts, bucketOptions({ history: 1 })),
  );
  const read = async (rolloutId: string, hardwareClass: string) => {
    const entry = await (await rollouts()).get(censusKey(rolloutId, hardwareClass));
    return entry?.operation === 'PUT' ? entry.json<ClassCensus>() : null;
  };

  return {
    /**
     * Online devices per cohort of a class, from its census (once there is one for the rollout):
     * what the waves are planned by. Null when no census appeared within `waitSeconds`.
     */
    async cohortsOnline(input: {
      rolloutId: string;
      hardwareClass: string;
      waitSeconds: number;
    }): Promise<number[] | null> {
      const deadline = Date.now() + input.waitSeconds * 1000;
      const signal = cancellation();
      for (;;) {
        const census = await read(input.rolloutId, input.hardwareClass);
        if (census) return census.cohorts.map((c) => c.online);
        if (Date.now() >= deadline) return null;
        heartbeat();
        await sleep(options.pollMs, undefined, { signal });
      }
    },

    /**
     * The counts of a range of cohorts, once the census follows `targetSha256` (the control plane
     * picks a new lease target up within its interval): null if it does not within `waitSeconds`.
     */
    async readWave(input: {
      rolloutId: string;
      hardwareClass: string;
      range: CohortRange;
      targetSha256: string | null;
      minServingSamples: number;
      waitSeconds: number;
    }): Promise<WaveCounts | null> {
      const deadline = Date.now() + input.waitSeconds * 1000;
      const signal = cancellation();
      for (;;) {
        const census = await read(input.rolloutId, input.hardwareClass);
        if (census && census.targetSha256 === input.targetSha256) {
          return waveCounts(census, input.range, input.minServingSamples);
        }
        if (Date.now() >= deadline) return null;
        heartbeat();
        await sleep(options.pollMs, undefined, { signal });
      }
    },

    /**
     * Waits until every device expected in a wave reported an outcome (activated or a failure),
     * or the timeout passes; heartbeats meanwhile, so a dead worker is noticed and the wait goes
     * on in another. Returns the counts it saw last.
     */
    async awaitWave(input: AwaitWaveInput): Promise<AwaitedWave> {
      const deadline = Date.parse(input.until);
      const signal = cancellation();
      let last: WaveCounts | null = null;
      for (;;) {
        const census = await read(input.rolloutId, input.hardwareClass);
        if (census && census.targetSha256 === input.targetSha256) {
          last = waveCounts(census, input.range, input.minServingSamples);
          if (last.activated + last.failed >= input.expected)
            return { counts: last, settled: true };
        }
        if (Date.now() >= deadline) {
          return {
            counts: last ?? {
              online: 0,
              servingTarget: 0,
              activated: 0,
              failed: 0,
              servingP95Ms: null,
              servingSamples: 0,
              failures: [],
            },
            settled: false,
          };
        }
        heartbeat({ activated: last?.activated ?? 0, failed: last?.failed ?? 0 });
        await sleep(options.pollMs, undefined, { signal });
      }
    },
  };
}
