import type { SignedManifest } from './manifest.js';

/**
 * What a device should be doing, as written by the orchestrator to the desired-state KV bucket:
 * under its class's release track for its cohort (trackKey, always a `run`), or under its own
 * entry (deviceDesiredKey, a canary's). The agent watches both, prefers its own, and reconciles
 * toward the latest value; each KV revision is applied once, so a re-delivered entry changes
 * nothing, and a device that was offline catches up with the latest value when it returns.
 */
export type DesiredState = BenchmarkCandidates | RunModel;

/** Benchmark these candidates on the device and report each; keep running the current model. */
export interface BenchmarkCandidates {
  kind: 'benchmark';
  rolloutId: string;
  candidates: SignedManifest[];
  settings: BenchmarkSettings;
  issuedAt: string;
}

/**
 * Run this model. A rollback is also a `run`: the orchestrator re-signs the previous build with
 * a new, higher version, because devices refuse versions older than what they run.
 */
export interface RunModel {
  kind: 'run';
  rolloutId: string;
  model: SignedManifest;
  issuedAt: string;
}

/** How the on-device benchmark runs (MLPerf / onnxruntime_perf_test style). */
export interface BenchmarkSettings {
  warmupRuns: number;
  /** At least this many timed runs... */
  minRuns: number;
  /** ...and at least this long. */
  minSeconds: number;
  /** Intra-op threads for the session; 0 means ONNX Runtime's default. */
  threads: number;
  /**
   * The candidates are measured in this many interleaved rounds (each round times every
   * candidate once, in a rotated order), so background load that comes and goes hits all of them
   * alike; warmupRuns apply per round, minRuns and minSeconds are totals. Absent: 1 (desired
   * states written before rounds existed).
   */
  rounds?: number;
}
