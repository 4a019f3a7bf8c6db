import { performance } from 'node:perf_hooks';
import type { InferenceSession } from 'onnxruntime-node';
import type { BenchmarkSettings } from '../../common/desired-state.js';
import { median } from '../../common/median.js';
import type { ModelManifest } from '../../common/manifest.js';
import type { Holdout } from '../holdout/holdout.js';
import { scoreHoldout, type HoldoutScore } from '../holdout/score-holdout.js';
import { holdoutFeeds, randomFeeds } from '../inference/feeds.js';
import { inferenceThreads } from '../inference/inference-threads.js';
import { loadSession } from '../inference/load-session.js';
import { summarizeRounds, type LatencySummary } from './latency-stats.js';

export interface BenchmarkResult {
  /** Creating the session: reading, optimizing and preparing the graph (median of the rounds). */
  sessionLoadMs: number;
  latency: LatencySummary;
  /** Timed runs per second of timed wall time, one request at a time (single stream). */
  throughputPerSecond: number;
  /** Resident memory after the runs minus before the session was created (largest round). */
  memoryGrowthBytes: number;
  /** Null when the manifest ships no holdout bundle. */
  holdout: HoldoutScore | null;
  /** Intra-op threads the session ran with: settings.threads capped at the device's. */
  threads: number;
}

export interface BenchmarkTarget {
  modelFile: string;
  manifest: ModelManifest;
  holdout: Holdout | null;
  /** Share of holdout predictions a simulated fault flips (see SimulatedFaults); 0 on real devices. */
  flipShare?: number;
}

export interface BenchmarkOptions {
  settings: BenchmarkSettings;
  /** The device's hardware threads (its profile's); the session never gets more. */
  deviceThreads: number;
  /** Aborting stops the timed runs (the desired state changed, or the agent stops). */
  signal?: AbortSignal;
  /**
   * Wraps every timed round, e.g. to take turns with other simulated devices on one host
   * (simulation/host-lock.ts).
   */
  exclusive?: <T>(measure: () => Promise<T>) => Promise<T>;
  /** Called after each round of one target (its index; round is 1-based), for progress logs. */
  onRound?: (target: number, round: number, rounds: number) => void;
}

export type BenchmarkInput = BenchmarkTarget & BenchmarkOptions;

/** Distinct inputs cycled through the runs, so no run sees a warm copy of the same one. */
const MAX_DISTINCT_INPUTS = 64;

interface RoundResult {
  sessionLoadMs: number;
  latenciesMs: number[];
  timedSeconds: number;
  memoryGrowthBytes: number;
  holdout: HoldoutScore | null;
  threads: number;
}

/**
 * Measures models the way onnxruntime_perf_test and MLPerf's single-stream scenario do: time the
 * session load, do the warm-up runs untimed, then time runs, batch 1, one at a time. With several
 * targets and `settings.rounds` > 1 the measurement is split into interleaved rounds: every round
 * times each target once (the order rotates by one each round), so load that comes and goes on
 * the device falls on all targets alike instead of on whichever ran at the time. Each round loads
 * a fresh session and does the warm-up runs; minRuns and minSeconds are totals over the rounds.
 * The holdout bundle is scored once, in the last round. Results come in the targets' order: a
 * target whose session failed to load or run gets its Error, the others go on.
 */
export async function benchmarkInRounds(
  targets: readonly BenchmarkTarget[],
  options: BenchmarkOptions,
): Promise<(BenchmarkResult | Error)[]> {
  const { settings, signal } = options;
  const rounds = Math.max(1, settings.rounds ?? 1);
  const perRound = {
    ...settings,
    minRuns: Math.ceil(settings.minRuns / rounds),
    minSeconds: settings.minSeconds / rounds,
  };
  const exclusive = options.exclusive ?? ((measure) => measure());
  const done: (RoundResult[] | Error)[] = targets.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < targets.length; k++) {
      const i = (k + round) % targets.length;
      const measured = done[i]!;
      if (measured instanceof Error) continue;
      signal?.throwIfAborted();
      try {
        const last = round === rounds - 1;
        measured.push(await exclusive(() => measureRound(targets[i]!, perRound, options, last)));
        options.onRound?.(i, round + 1, rounds);
      } catch (err) {
        if (signal?.aborted) throw err;
        done[i] = err instanceof Error ? err : new Error(String(err));
      }
    }
  }
  return done.map((d) => (d instanceof Error ? d : combineRounds(d)));
}

/** One model, all its rounds back to back; throws when it cannot be measured. */
export async function runBenchmark(input: BenchmarkInput): Promise<BenchmarkResult> {
  const [result] = await benchmarkInRounds([input], input);
  if (result instanceof Error) throw result;
  return result!;
}

async function measureRound(
  target: BenchmarkTarget,
  settings: BenchmarkSettings,
  options: BenchmarkOptions,
  scoreTheHoldout: boolean,
): Promise<RoundResult> {
  const { manifest, holdout } = target;
  const { signal } = options;
  // threads 0 would mean "ONNX Runtime's default", which it does not report; ask for one thread
  // per hardware thread of the device instead, so the report says what really ran.
  const threads = inferenceThreads(settings.threads, options.deviceThreads);
  const rssBefore = process.memoryUsage.rss();
  const loadStart = performance.now();
  const session = await loadSession(target.modelFile, { threads });
  const sessionLoadMs = performance.now() - loadStart;
  try {
    const feeds = benchmarkFeeds(manifest, holdout);
    const run = (i: number) => session.run(feeds[i % feeds.length]!);
    for (let i = 0; i < settings.warmupRuns; i++) await run(i);

    const latenciesMs: number[] = [];
    const timedStart = performance.now();
    const minMs = settings.minSeconds * 1000;
    while (latenciesMs.length < settings.minRuns || performance.now() - timedStart < minMs) {
      signal?.throwIfAborted();
      const start = performance.now();
      await run(latenciesMs.length);
      latenciesMs.push(performance.now() - start);
    }
    const timedSeconds = (performance.now() - timedStart) / 1000;

    const score =
      holdout && scoreTheHoldout
        ? await scoreHoldout(session, holdout, manifest.inputs, { flipShare: target.flipShare })
        : null;
    return {
      sessionLoadMs,
      latenciesMs,
      timedSeconds,
      memoryGrowthBytes: process.memoryUsage.rss() - rssBefore,
      holdout: score,
      threads,
    };
  } finally {
    await session.release();
  }
}

function combineRounds(rounds: RoundResult[]): BenchmarkResult {
  const timedSeconds = rounds.reduce((sum, r) => sum + r.timedSeconds, 0);
  const latency = summarizeRounds(rounds.map((r) => r.latenciesMs));
  return {
    sessionLoadMs: median(rounds.map((r) => r.sessionLoadMs))!,
    latency,
    throughputPerSecond: latency.runs / timedSeconds,
    memoryGrowthBytes: Math.max(...rounds.map((r) => r.memoryGrowthBytes)),
    holdout: rounds.at(-1)!.holdout,
    threads: rounds[0]!.threads,
  };
}

function benchmarkFeeds(
  manifest: ModelManifest,
  holdout: Holdout | null,
): InferenceSession.FeedsType[] {
  if (holdout === null || holdout.count === 0) return [randomFeeds(manifest.inputs)];
  const n = Math.min(holdout.count, MAX_DISTINCT_INPUTS);
  return Array.from({ length: n }, (_, i) => holdoutFeeds(holdout, i, manifest.inputs));
}
