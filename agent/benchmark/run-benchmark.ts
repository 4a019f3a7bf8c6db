import { performance } from 'node:perf_hooks';
import type { InferenceSession } from 'onnxruntime-node';
import type { BenchmarkSettings } from '../../common/desired-state.js';
import type { ModelManifest } from '../../common/manifest.js';
import type { Holdout } from '../holdout/holdout.js';
import { scoreHoldout, type HoldoutScore } from '../holdout/score-holdout.js';
import { holdoutFeeds, randomFeeds } from '../inference/feeds.js';
import { inferenceThreads } from '../inference/inference-threads.js';
import { loadSession } from '../inference/load-session.js';
import { summarizeLatencies, type LatencySummary } from './latency-stats.js';

export interface BenchmarkResult {
  /** Creating the session: reading, optimizing and preparing the graph. */
  sessionLoadMs: number;
  latency: LatencySummary;
  /** Timed runs per second of timed wall time, one request at a time (single stream). */
  throughputPerSecond: number;
  /** Resident memory after the runs minus before the session was created. */
  memoryGrowthBytes: number;
  /** Null when the manifest ships no holdout bundle. */
  holdout: HoldoutScore | null;
  /** Intra-op threads the session ran with: settings.threads capped at the device's. */
  threads: number;
}

export interface BenchmarkInput {
  modelFile: string;
  manifest: ModelManifest;
  holdout: Holdout | null;
  settings: BenchmarkSettings;
  /** The device's hardware threads (its profile's); the session never gets more. */
  deviceThreads: number;
  /** Share of holdout predictions a simulated fault flips (see SimulatedFaults); 0 on real devices. */
  flipShare?: number;
  /** Aborting stops the timed runs (the desired state changed, or the agent stops). */
  signal?: AbortSignal;
}

/** Distinct inputs cycled through the runs, so no run sees a warm copy of the same one. */
const MAX_DISTINCT_INPUTS = 64;

/**
 * Measures a model the way onnxruntime_perf_test and MLPerf's single-stream scenario do: time the
 * session load, do the warm-up runs untimed, then time runs, batch 1, one at a time, until there
 * are at least `minRuns` and at least `minSeconds` have passed; then score the holdout bundle.
 * The session gets settings.threads intra-op threads, at most the device's (0: all of them).
 * Inputs are holdout samples when the manifest has a bundle, random data of the manifest's input
 * shape (symbolic dimensions 1) otherwise.
 */
export async function runBenchmark(input: BenchmarkInput): Promise<BenchmarkResult> {
  const { manifest, holdout, settings, signal } = input;
  // threads 0 would mean "ONNX Runtime's default", which it does not report; ask for one thread
  // per hardware thread of the device instead, so the report says what really ran.
  const threads = inferenceThreads(settings.threads, input.deviceThreads);
  const rssBefore = process.memoryUsage.rss();
  const loadStart = performance.now();
  const session = await loadSession(input.modelFile, { threads });
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

    const score = holdout
      ? await scoreHoldout(session, holdout, manifest.inputs, { flipShare: input.flipShare })
      : null;
    return {
      sessionLoadMs,
      latency: summarizeLatencies(latenciesMs),
      throughputPerSecond: latenciesMs.length / timedSeconds,
      memoryGrowthBytes: process.memoryUsage.rss() - rssBefore,
      holdout: score,
      threads,
    };
  } finally {
    await session.release();
  }
}

function benchmarkFeeds(
  manifest: ModelManifest,
  holdout: Holdout | null,
): InferenceSession.FeedsType[] {
  if (holdout === null || holdout.count === 0) return [randomFeeds(manifest.inputs)];
  const n = Math.min(holdout.count, MAX_DISTINCT_INPUTS);
  return Array.from({ length: n }, (_, i) => holdoutFeeds(holdout, i, manifest.inputs));
}
