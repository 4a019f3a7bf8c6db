import { EdgeforgeError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { redactUrl } from '../common/nats.js';
import { DeviceState } from '../proto/gen/edgeforge/v1/fleet.pb.js';
import { Activator } from './activation/activator.js';
import { CrashLoopGuard } from './activation/crash-loop-guard.js';
import { restoreLastGoodModel } from './activation/restore-last-good-model.js';
import { ModelFetcher } from './download/model-fetcher.js';
import type { DeviceSession } from './fleet/device-session.js';
import { Reporter } from './fleet/reporter.js';
import type { BackoffOptions } from './heartbeat/backoff.js';
import { DeviceActivity } from './heartbeat/device-activity.js';
import type { AgentMetrics } from './metrics.js';
import { ModelStore } from './models/model-store.js';
import { NatsLink } from './nats/nats-link.js';
import { AppliedRevisionStore } from './reconcile/applied-revision.js';
import { DesiredStateApplier } from './reconcile/desired-state-applier.js';
import { DesiredStateWatcher } from './reconcile/desired-state-watcher.js';
import { Reconciler, type ReconcileStatus } from './reconcile/reconciler.js';
import { InferenceLatency } from './serving/inference-latency.js';
import { InferenceServer } from './serving/inference-server.js';
import { ModelSlot } from './serving/model-slot.js';
import type { SimulatedFaults } from './simulation/simulated-faults.js';

export interface ModelServiceOptions {
  dataDir: string;
  /** Enrolled: the identity names the device, its class, the pinned key and NATS. */
  session: DeviceSession;
  metrics: AgentMetrics;
  /** host:port of the local inference endpoint; port 0 picks one. */
  servingAddress: string;
  /** See DownloadOptions.stallMs. */
  downloadStallMs: number;
  backoff: BackoffOptions;
  /** A CA file for the NATS server's certificate, besides the system's roots (`--nats-ca-file`). */
  natsCaFile?: string;
  /** The device's hardware threads (its profile's): no session runs with more. */
  deviceThreads: number;
  /** A simulated device's faults (profile override file); absent on a real device. */
  simulate?: SimulatedFaults;
  logger: Logger;
}

/** A snapshot for tests and diagnostics. */
export interface ModelServiceStatus {
  /** DeviceState name, e.g. "DEVICE_STATE_SERVING". */
  state: string;
  activeModel?: { modelId: string; variant: string; version: number; sha256: string };
  degraded?: string;
  desiredState: ReconcileStatus;
}

/**
 * Everything about models on the device, wired together: at start it serves the last good model
 * (crash-loop protected) on the local inference endpoint, then reconciles toward the desired
 * state in NATS: download and verify, benchmark, activate with a health check, report.
 */
export class ModelService {
  /** Undefined when the endpoint could not bind (the device is then DEGRADED). */
  readonly inferenceUrl: string | undefined;
  readonly activity: DeviceActivity;
  readonly #stop: AbortController;
  readonly #slot: ModelSlot;
  readonly #server: InferenceServer;
  readonly #link: NatsLink | undefined;
  readonly #reconciler: Reconciler | undefined;

  private constructor(parts: {
    inferenceUrl: string | undefined;
    activity: DeviceActivity;
    stop: AbortController;
    slot: ModelSlot;
    server: InferenceServer;
    link: NatsLink | undefined;
    reconciler: Reconciler | undefined;
  }) {
    this.inferenceUrl = parts.inferenceUrl;
    this.activity = parts.activity;
    this.#stop = parts.stop;
    this.#slot = parts.slot;
    this.#server = parts.server;
    this.#link = parts.link;
    this.#reconciler = parts.reconciler;
  }

  static async start(o: ModelServiceOptions): Promise<ModelService> {
    const identity = o.session.identity;
    if (identity === undefined) {
      throw new EdgeforgeError(
        'the model service needs an enrolled device: enroll or resume first',
      );
    }
    const stop = new AbortController();
    const store = new ModelStore(o.dataDir);
    await store.open();
    const slot = new ModelSlot();
    const latency = new InferenceLatency(o.metrics.inferenceLatency);
    const activity = new DeviceActivity(slot, latency);
    const activator = new Activator({
      store,
      guard: new CrashLoopGuard(o.dataDir),
      slot,
      deviceThreads: o.deviceThreads,
      simulate: o.simulate,
      logger: o.logger,
    });
    const reporter = new Reporter({
      session: o.session,
      backoff: o.backoff,
      logger: o.logger,
      signal: stop.signal,
    });
    await restoreLastGoodModel({ activator, activity, reporter, logger: o.logger });

    const server = new InferenceServer({
      slot,
      latency,
      requests: o.metrics.inferenceRequests,
      hardwareClass: () => o.session.identity?.hardwareClass ?? identity.hardwareClass,
      simulatedDelayMs: o.simulate?.servingDelayMs,
      logger: o.logger,
    });
    // Without its endpoint the device can still benchmark and report, so it runs on, DEGRADED,
    // rather than dropping out of the fleet over a port conflict.
    const inferenceUrl = await server.listen(o.servingAddress).catch((err: unknown) => {
      const problem = (err as Error).message;
      o.logger.error({ servingAddress: o.servingAddress }, problem);
      activity.setProblem('endpoint', problem);
      return undefined;
    });

    let link: NatsLink | undefined;
    let reconciler: Reconciler | undefined;
    // A heartbeat may have brought another URL while the model was being restored.
    const natsUrl = o.session.identity?.natsUrl || identity.natsUrl;
    if (natsUrl === '') {
      o.logger.error(
        'the control plane gave no NATS URL at enrollment, so this device cannot receive models; ' +
          'set EDGEFORGE_CP_ADVERTISED_NATS_URL on the control plane, then restart this agent',
      );
    } else {
      // The NATS server may move (a restarted stack): heartbeats carry the current URL. The
      // listener is in place before anything awaits, so no heartbeat's news is missed.
      const moving = new NatsLink({
        url: natsUrl,
        deviceId: identity.deviceId,
        credential: () => (o.session.identity ?? identity).credential,
        caFile: o.natsCaFile,
        backoff: o.backoff,
        logger: o.logger,
      });
      const forget = o.session.onNatsUrlChange((url) => void moving.switchTo(url));
      stop.signal.addEventListener('abort', forget, { once: true });
      link = moving;
      const applier = new DesiredStateApplier({
        identity: () => o.session.identity ?? identity,
        store,
        fetcher: new ModelFetcher({
          link,
          store,
          stallMs: o.downloadStallMs,
          backoff: o.backoff,
          logger: o.logger,
        }),
        activator,
        reporter,
        activity,
        metrics: o.metrics,
        deviceThreads: o.deviceThreads,
        simulate: o.simulate,
        logger: o.logger,
      });
      const watcher = new DesiredStateWatcher({
        link,
        deviceId: identity.deviceId,
        hardwareClass: () => (o.session.identity ?? identity).hardwareClass,
        onHealth: (problem) => activity.setProblem('desired-state', problem),
        backoff: o.backoff,
        logger: o.logger,
      });
      // Another class is another track and release bucket: new NATS rights, then its keys.
      const forgetClass = o.session.onHardwareClassChange(() => {
        void moving.reconnect();
        watcher.rewatch();
      });
      stop.signal.addEventListener('abort', forgetClass, { once: true });
      reconciler = new Reconciler({
        watcher,
        revisions: new AppliedRevisionStore(o.dataDir),
        apply: (desired, signal) => applier.apply(desired, signal),
        refuse: (error) => applier.refuse(error),
        backoff: o.backoff,
        logger: o.logger,
      });
      await reconciler.start();
      o.logger.info({ natsUrl: redactUrl(natsUrl) }, 'reconciling toward the desired state');
    }
    return new ModelService({ inferenceUrl, activity, stop, slot, server, link, reconciler });
  }

  get status(): ModelServiceStatus {
    return {
      state: DeviceState[this.activity.state],
      activeModel: this.activity.activeModel(),
      degraded: this.activity.degraded,
      desiredState: this.#reconciler?.status ?? { seenRevision: 0, appliedRevision: 0 },
    };
  }

  /** Stops reconciling (a step in flight is cut short), then serving; releases the model. */
  async stop(): Promise<void> {
    this.#stop.abort(new Error('the agent is stopping'));
    await this.#reconciler?.stop();
    await this.#link?.close();
    await this.#server.close();
    this.#slot.swap(undefined);
  }
}
