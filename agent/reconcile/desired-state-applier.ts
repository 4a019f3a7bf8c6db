import type { BenchmarkCandidates, DesiredState, RunModel } from '../../common/desired-state.js';
import type { Logger } from '../../common/logger.js';
import {
  ManifestRefusedError,
  verifySignedManifest,
  type ModelManifest,
  type SignedManifest,
} from '../../common/manifest.js';
import {
  DeviceState,
  StatusEvent,
  type ActiveModel,
  type ReportBenchmarkRequest,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { describeModel, type Activator } from '../activation/activator.js';
import {
  benchmarkInRounds,
  type BenchmarkResult,
  type BenchmarkTarget,
} from '../benchmark/run-benchmark.js';
import type { ModelFetcher } from '../download/model-fetcher.js';
import type { Reporter } from '../fleet/reporter.js';
import type { DeviceActivity } from '../heartbeat/device-activity.js';
import { manifestVerificationKeys } from '../heartbeat/manifest-key-pins.js';
import { loadHoldout, type Holdout } from '../holdout/holdout.js';
import type { DeviceIdentity } from '../identity/identity-store.js';
import type { AgentMetrics } from '../metrics.js';
import { firstIssue, SignedManifestSchema } from '../models/manifest-schema.js';
import type { ModelStore } from '../models/model-store.js';
import { withHostLock } from '../simulation/host-lock.js';
import { flipShareFor, type SimulatedFaults } from '../simulation/simulated-faults.js';

export interface DesiredStateApplierOptions {
  /** The enrolled identity: device id, hardware class, pinned manifest key. */
  identity: () => DeviceIdentity;
  store: ModelStore;
  fetcher: ModelFetcher;
  activator: Activator;
  reporter: Reporter;
  activity: DeviceActivity;
  metrics: AgentMetrics;
  /** The device's hardware threads (its profile's): no benchmark runs with more. */
  deviceThreads: number;
  /** A simulated device's faults, applied when benchmarks score the holdout; absent on a real device. */
  simulate?: SimulatedFaults;
  logger: Logger;
}

/**
 * Does what one desired state asks. `benchmark`: verify, download and benchmark each candidate,
 * reporting each (a refused or failed one with `error` set); the served model is untouched.
 * `run`: verify, download, activate with a health check; report ACTIVATED, or
 * HEALTH_CHECK_FAILED then ROLLED_BACK with the old model still serving. Anything refused
 * (signature, expiry, version, class, digest, size, not ONNX) is reported REFUSED with its reason
 * and changes nothing on the device.
 */
export class DesiredStateApplier {
  readonly #o: DesiredStateApplierOptions;

  constructor(options: DesiredStateApplierOptions) {
    this.#o = options;
  }

  async apply(desired: DesiredState, signal: AbortSignal): Promise<void> {
    if (desired.kind === 'run') {
      await this.#run(desired, signal);
      return;
    }
    await this.#benchmark(desired, signal);
  }

  /** A desired state that could not even be parsed. */
  async refuse(error: ManifestRefusedError): Promise<void> {
    this.#o.logger.error(
      { rolloutId: error.context.rolloutId, error: error.message },
      'refused the desired state',
    );
    this.#o.metrics.modelEvents.inc({ event: 'refused' });
    await this.#o.reporter.status({
      event: StatusEvent.STATUS_EVENT_REFUSED,
      rolloutId: error.context.rolloutId ?? '',
      variant: '',
      activeModel: this.#o.activity.activeModel(),
      detail: error.message,
    });
  }

  /**
   * Verifies and downloads every candidate (a refused one is reported at once), then measures the
   * rest in interleaved rounds (benchmark/run-benchmark.ts) and reports each.
   */
  async #benchmark(desired: BenchmarkCandidates, signal: AbortSignal): Promise<void> {
    const { reporter, activity, store, metrics } = this.#o;
    const failed = async (signed: SignedManifest, error: string) => {
      metrics.modelEvents.inc({ event: 'benchmark_failed' });
      await reporter.benchmark(failedBenchmark(desired.rolloutId, signed, error));
    };
    const ready: (BenchmarkTarget & { signed: SignedManifest; log: Logger })[] = [];
    for (const signed of desired.candidates) {
      signal.throwIfAborted();
      const log = this.#logFor(desired.rolloutId, signed);
      let manifest: ModelManifest;
      try {
        manifest = await this.#verify(signed);
        await this.#download(manifest, desired.rolloutId, signal, log);
      } catch (err) {
        if (!(err instanceof ManifestRefusedError)) throw err;
        await this.#refused(desired.rolloutId, signed, err, log);
        await failed(signed, err.message);
        continue;
      }
      const holdoutFile = store.holdoutFile(manifest);
      let holdout: Holdout | null;
      try {
        holdout = holdoutFile
          ? await loadHoldout(holdoutFile, { memoryBytes: this.#memoryBytes() })
          : null;
      } catch (err) {
        log.error({ error: (err as Error).message }, 'the benchmark failed');
        await failed(signed, `the holdout bundle cannot be read: ${(err as Error).message}`);
        continue;
      }
      const flipShare = flipShareFor(this.#o.simulate, manifest.variant);
      ready.push({
        signed,
        // A simulated fault marks every log line about the benchmark, so its accuracy is not
        // taken for a real measurement.
        log: flipShare > 0 ? log.child({ simulatedFault: { flipShare } }) : log,
        modelFile: store.modelFile(manifest),
        manifest,
        holdout,
        flipShare,
      });
    }
    if (ready.length === 0) return;

    const lock = this.#o.simulate?.sharedHostLock;
    this.#o.logger.info(
      { rolloutId: desired.rolloutId, candidates: ready.length, settings: desired.settings },
      'benchmarking',
    );
    const results = await activity.during(DeviceState.DEVICE_STATE_BENCHMARKING, () =>
      benchmarkInRounds(ready, {
        settings: desired.settings,
        deviceThreads: this.#o.deviceThreads,
        signal,
        exclusive: lock ? (measure) => withHostLock(lock, measure, signal) : undefined,
        onRound: (i, round, rounds) =>
          ready[i]!.log.debug({ round, rounds }, 'benchmark round done'),
      }),
    );
    for (const [i, result] of results.entries()) {
      const { signed, manifest, log } = ready[i]!;
      if (result instanceof Error) {
        log.error({ error: result.message }, 'the benchmark failed');
        await failed(signed, result.message);
        continue;
      }
      log.info(
        {
          p50Ms: result.latency.p50Ms,
          p95Ms: result.latency.p95Ms,
          roundP95Ms: result.latency.roundP95Ms,
          runs: result.latency.runs,
          threads: result.threads,
          accuracy: result.holdout?.accuracy,
        },
        'benchmarked',
      );
      metrics.modelEvents.inc({ event: 'benchmarked' });
      await reporter.benchmark(benchmarkReport(desired.rolloutId, manifest, result));
    }
  }

  async #run(desired: RunModel, signal: AbortSignal): Promise<void> {
    const { activator, activity, reporter, metrics } = this.#o;
    const signed = desired.model;
    const log = this.#logFor(desired.rolloutId, signed);
    if (isServing(activity.activeModel(), signed)) {
      // This revision was not recorded as applied, so its outcome may never have been reported
      // (the agent stopped right after activating): report it now.
      log.info('already serving this model');
      await this.#reportActivated(desired.rolloutId, signed, 'already serving');
      return;
    }
    try {
      await this.#download(await this.#verify(signed), desired.rolloutId, signal, log);
    } catch (err) {
      if (!(err instanceof ManifestRefusedError)) throw err;
      await this.#refused(desired.rolloutId, signed, err, log);
      return;
    }
    log.info('activating');
    const result = await activity.during(DeviceState.DEVICE_STATE_ACTIVATING, () =>
      activator.activate(signed),
    );
    const ids = { rolloutId: desired.rolloutId, variant: signed.manifest.variant };
    if (result.activated) {
      activity.setProblem('models', undefined);
      metrics.modelEvents.inc({ event: 'activated' });
      log.info({ health: result.health }, 'activated');
      await this.#reportActivated(desired.rolloutId, signed, result.health);
      return;
    }
    const serving = activity.activeModel();
    const kept = serving ? `still serving ${describeActive(serving)}` : 'no model to fall back to';
    log.error({ failure: result.failure }, `the health check failed; ${kept}`);
    metrics.modelEvents.inc({ event: 'health_check_failed' });
    metrics.modelEvents.inc({ event: 'rolled_back' });
    const detail = `health_check_failed: ${result.failure}`;
    await reporter.status({
      event: StatusEvent.STATUS_EVENT_HEALTH_CHECK_FAILED,
      ...ids,
      activeModel: serving,
      detail,
    });
    await reporter.status({
      event: StatusEvent.STATUS_EVENT_ROLLED_BACK,
      ...ids,
      activeModel: serving,
      detail: `${detail}; ${kept}`,
    });
  }

  async #reportActivated(rolloutId: string, signed: SignedManifest, detail: string) {
    await this.#o.reporter.status({
      event: StatusEvent.STATUS_EVENT_ACTIVATED,
      rolloutId,
      variant: signed.manifest.variant,
      activeModel: this.#o.activity.activeModel(),
      detail: `serving ${describeModel(signed)}: ${detail}`,
    });
  }

  /** Shape, signature (pinned key), expiry, version against the running one, hardware class. */
  async #verify(signed: SignedManifest): Promise<ModelManifest> {
    const shape = SignedManifestSchema.safeParse(signed);
    if (!shape.success) {
      throw new ManifestRefusedError(
        'malformed',
        `the signed manifest does not fit the contract (common/manifest.ts): ${firstIssue(shape.error)}`,
      );
    }
    const identity = this.#o.identity();
    const active = (await this.#o.store.loadState()).active?.manifest;
    return verifySignedManifest(signed, {
      // The pinned key, and a rotated-out one during its signed grace period.
      ...manifestVerificationKeys(identity),
      hardwareClass: identity.hardwareClass,
      // Whatever the model id: versions grow across rollouts (the workflow clock), so an earlier
      // release written back (replayed) is older than what the device runs, and refused.
      currentVersion: active?.version,
    });
  }

  async #download(
    manifest: ModelManifest,
    rolloutId: string,
    signal: AbortSignal,
    log: Logger,
  ): Promise<void> {
    const { activity, fetcher, reporter, metrics } = this.#o;
    await activity.during(DeviceState.DEVICE_STATE_DOWNLOADING, () =>
      fetcher.fetch(
        manifest,
        signal,
        (error, attempt) => {
          log.warn({ error: error.message, attempt }, 'download failed; retrying');
          if (attempt > 1) return;
          // Once per model: the orchestrator learns the device is stuck, not every retry.
          metrics.modelEvents.inc({ event: 'download_failed' });
          void reporter.status({
            event: StatusEvent.STATUS_EVENT_DOWNLOAD_FAILED,
            rolloutId,
            variant: manifest.variant,
            activeModel: activity.activeModel(),
            detail: `${error.message}; retrying`,
          });
        },
        { memoryBytes: this.#memoryBytes() },
      ),
    );
  }

  /** The device's memory (its profile's), which bounds the models and holdouts it takes. */
  #memoryBytes(): number {
    return this.#o.identity().profile.memoryBytes;
  }

  async #refused(
    rolloutId: string,
    signed: SignedManifest,
    error: ManifestRefusedError,
    log: Logger,
  ): Promise<void> {
    log.error({ reason: error.reason, error: error.message }, 'refused the model');
    this.#o.metrics.modelEvents.inc({ event: 'refused' });
    await this.#o.reporter.status({
      event: StatusEvent.STATUS_EVENT_REFUSED,
      rolloutId,
      variant: variantOf(signed),
      activeModel: this.#o.activity.activeModel(),
      detail: error.message,
    });
  }

  #logFor(rolloutId: string, signed: SignedManifest): Logger {
    const m = (signed as Partial<SignedManifest> | undefined)?.manifest;
    return this.#o.logger.child({
      rolloutId,
      variant: variantOf(signed),
      modelId: m?.modelId,
      version: m?.version,
    });
  }
}

/** The variant a possibly malformed manifest names, for reports and logs. */
function variantOf(signed: SignedManifest): string {
  const variant = (signed as Partial<SignedManifest> | undefined)?.manifest?.variant;
  return typeof variant === 'string' ? variant : '';
}

/** Whether the served model is this very build: same file, same version. */
function isServing(served: ActiveModel | undefined, signed: SignedManifest): boolean {
  const m = (signed as Partial<SignedManifest> | undefined)?.manifest;
  return served !== undefined && served.sha256 === m?.model?.sha256 && served.version === m.version;
}

function describeActive(m: ActiveModel): string {
  return `${m.modelId} ${m.variant} v${m.version}`;
}

function benchmarkReport(
  rolloutId: string,
  manifest: ModelManifest,
  result: BenchmarkResult,
): ReportBenchmarkRequest {
  return {
    rolloutId,
    variant: manifest.variant,
    modelSha256: manifest.model.sha256,
    sessionLoadMs: result.sessionLoadMs,
    latency: result.latency,
    throughputPerSecond: result.throughputPerSecond,
    memoryGrowthBytes: result.memoryGrowthBytes,
    // Without a holdout bundle there is nothing to score: 0, which no accuracy gate passes.
    accuracy: result.holdout?.accuracy ?? 0,
    top1Agreement: result.holdout?.top1Agreement ?? 0,
    threads: result.threads,
    error: '',
  };
}

function failedBenchmark(rolloutId: string, signed: SignedManifest, error: string) {
  const sha256 = (signed as Partial<SignedManifest> | undefined)?.manifest?.model?.sha256;
  return {
    rolloutId,
    variant: variantOf(signed),
    modelSha256: typeof sha256 === 'string' ? sha256 : '',
    sessionLoadMs: 0,
    latency: undefined,
    throughputPerSecond: 0,
    memoryGrowthBytes: 0,
    accuracy: 0,
    top1Agreement: 0,
    threads: 0,
    error,
  } satisfies ReportBenchmarkRequest;
}
