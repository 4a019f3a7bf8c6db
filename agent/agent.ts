import { availableParallelism, hostname } from 'node:os';
import { status } from '@grpc/grpc-js';
import { EdgeforgeError } from '../common/errors.js';
import type { HardwareProfile } from '../common/hardware/index.js';
import { createLogger, type Logger } from '../common/logger.js';
import { DeviceSession, type LastError } from './fleet/device-session.js';
import {
  DEFAULT_DEADLINE_MS,
  FleetCallError,
  FleetClient,
  type TlsFiles,
} from './fleet/fleet-client.js';
import { detectDevice } from './hardware/detect.js';
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './heartbeat/backoff.js';
import { HeartbeatLoop } from './heartbeat/heartbeat-loop.js';
import { pause } from './heartbeat/pause.js';
import { IdentityStore } from './identity/identity-store.js';
import { AgentMetrics } from './metrics.js';
import { ModelService, type ModelServiceStatus } from './model-service.js';
import { AGENT_VERSION } from './version.js';

export interface EdgeAgentOptions {
  /** The control plane's gRPC address, host:port. */
  controlPlane: string;
  /** The fleet secret that Enroll exchanges for a device credential. */
  enrollmentToken: string;
  /** Stable name of this device; enrolling again under it keeps the device id. */
  deviceName: string;
  /** Holds identity.json (the credential); created with mode 0700. */
  dataDir: string;
  /**
   * JSON that replaces detected profile fields and may simulate hardware faults, for simulated
   * devices (see detectDevice).
   */
  profileOverrideFile?: string;
  /** host:port for /metrics; port 0 picks a free one (see metricsUrl). */
  metricsAddress: string;
  /**
   * TLS to the control plane (`{}`: verified against the system's trust roots); plaintext when
   * absent, which only a loopback control plane gets unless `insecure`.
   */
  tls?: TlsFiles;
  /** Plaintext to a control plane that is not on loopback, on purpose (`--insecure`). */
  insecure?: boolean;
  /**
   * A CA file (PEM) for the NATS server's certificate, trusted besides the system's roots
   * (`--nats-ca-file`); a tls:// URL from the control plane uses TLS with the system roots alone.
   */
  natsCaFile?: string;
  logger: Logger;
  /** Deadline of every gRPC call. */
  callDeadlineMs: number;
  /** Retry schedule for failed calls: full jitter, base 1 s, cap 60 s. */
  backoff: BackoffOptions;
  /** host:port of the local inference endpoint (POST /v1/infer); port 0 picks a free one. */
  servingAddress: string;
  /** A model download that receives nothing for this long is started over. */
  downloadStallMs: number;
  /** Replaces the control plane's heartbeat interval; for tests, which cannot wait 1 s per beat. */
  heartbeatIntervalMs?: number;
}

export type EdgeAgentConfig = Pick<
  EdgeAgentOptions,
  'controlPlane' | 'enrollmentToken' | 'dataDir'
> &
  Partial<EdgeAgentOptions>;

/**
 * Loopback: /metrics has no authentication and tells what the device runs, so it is opened to
 * the network (`--metrics 0.0.0.0:9465`) only where a scraper needs it. 9465 because the control
 * plane's /metrics defaults to 9464 and the two share a machine in the demo.
 */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9465';

/** Loopback only: the endpoint is for applications on the device and has no authentication. */
export const DEFAULT_SERVING_ADDRESS = '127.0.0.1:9466';

/**
 * Object Store chunks are 128 KiB: a few seconds each even on a 256 kbit/s cellular link. Longer
 * than the server's 60 s write deadline (deploy/nats), so a slow but live transfer is not cut here
 * first; 90 s without a chunk means the connection or the server's consumer is gone.
 */
export const DEFAULT_DOWNLOAD_STALL_MS = 90_000;

export function defaultAgentOptions(): Omit<
  EdgeAgentOptions,
  'controlPlane' | 'enrollmentToken' | 'dataDir'
> {
  return {
    deviceName: hostname(),
    metricsAddress: DEFAULT_METRICS_ADDRESS,
    servingAddress: DEFAULT_SERVING_ADDRESS,
    downloadStallMs: DEFAULT_DOWNLOAD_STALL_MS,
    logger: createLogger('agent'),
    callDeadlineMs: DEFAULT_DEADLINE_MS,
    backoff: DEFAULT_BACKOFF,
  };
}

export type AgentState = 'new' | 'starting' | 'running' | 'stopped';

/** A snapshot for tests and diagnostics. */
export interface AgentStatus {
  state: AgentState;
  deviceId?: string;
  hardwareClass?: string;
  heartbeatsOk: number;
  heartbeatsFailed: number;
  enrollments: number;
  lastError?: LastError;
  /** The control plane refuses this device because an operator revoked it. */
  revoked: boolean;
  /** What the device does with models; absent until it has an identity. */
  models?: ModelServiceStatus;
}

/** Codes for which enrolling again with the same request cannot succeed. */
const ENROLLMENT_REFUSED: ReadonlySet<status> = new Set([
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
]);

/**
 * The agent on an edge device: detects the hardware, serves /metrics, resumes its stored identity
 * or enrolls, serves its last good model on the local inference endpoint, heartbeats, and
 * reconciles toward its desired state (download, verify, benchmark, activate) until stopped.
 */
export class EdgeAgent {
  readonly options: EdgeAgentOptions;
  readonly #abort = new AbortController();
  #state: AgentState = 'new';
  #started: Promise<void> | undefined;
  #profile: HardwareProfile | undefined;
  #metrics: AgentMetrics | undefined;
  #metricsUrl: string | undefined;
  #client: FleetClient | undefined;
  #session: DeviceSession | undefined;
  #loop: HeartbeatLoop | undefined;
  #models: ModelService | undefined;

  constructor(config: EdgeAgentConfig) {
    // An option given as undefined (an unset flag) means "the default", not "none".
    const given = Object.entries(config).filter(([, v]) => v !== undefined);
    this.options = { ...defaultAgentOptions(), ...(Object.fromEntries(given) as EdgeAgentConfig) };
  }

  get deviceId(): string | undefined {
    return this.#session?.identity?.deviceId;
  }

  get hardwareClass(): string | undefined {
    return this.#session?.identity?.hardwareClass;
  }

  /** The /metrics URL with the port actually bound; set once start() is past detection. */
  get metricsUrl(): string | undefined {
    return this.#metricsUrl;
  }

  /** Base URL of the local inference endpoint, e.g. http://127.0.0.1:9466; set once started. */
  get inferenceUrl(): string | undefined {
    return this.#models?.inferenceUrl;
  }

  /** The profile detected at start (override file applied). */
  get profile(): HardwareProfile | undefined {
    return this.#profile;
  }

  get status(): AgentStatus {
    const stats = this.#session?.stats ?? { heartbeatsOk: 0, heartbeatsFailed: 0, enrollments: 0 };
    return {
      state: this.#state,
      deviceId: this.deviceId,
      hardwareClass: this.hardwareClass,
      ...stats,
      revoked: this.#loop?.revoked ?? false,
      models: this.#models?.status,
    };
  }

  /**
   * Resolves once the device has an identity and heartbeats are running. Waits out an
   * unreachable control plane; rejects on a refused enrollment or a bad profile override.
   */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  /**
   * Stops reconciling (a model step in flight is cut short and redone at the next start), serving
   * and heartbeats (cancelling a call in flight); closes the channel and the metrics server.
   */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#started?.catch(() => {});
    await this.#release();
    this.#state = 'stopped';
  }

  async #start(): Promise<void> {
    const o = this.options;
    this.#state = 'starting';
    try {
      const device = await detectDevice({
        profileOverrideFile: o.profileOverrideFile,
        logger: o.logger,
      });
      this.#profile = device.profile;
      const simulate = device.simulate;
      if (simulate && (simulate.accuracyFaults.length > 0 || simulate.servingDelayMs)) {
        o.logger.warn(
          { profileOverrideFile: o.profileOverrideFile, simulate: device.simulate },
          'this device simulates hardware faults (profile override file): the holdout accuracy ' +
            'it measures for matching variants, or its serving latency, is made worse on purpose; ' +
            'for tests and demos only',
        );
      }
      this.#metrics = new AgentMetrics(AGENT_VERSION);
      this.#metricsUrl = await this.#metrics.listen(o.metricsAddress);
      this.#client = new FleetClient({
        address: o.controlPlane,
        tls: o.tls,
        insecure: o.insecure,
        deadlineMs: o.callDeadlineMs,
      });
      const session = new DeviceSession({
        client: this.#client,
        store: new IdentityStore(o.dataDir),
        enrollmentToken: o.enrollmentToken,
        deviceName: o.deviceName,
        profile: this.#profile,
        metrics: this.#metrics,
        logger: o.logger,
      });
      this.#session = session;
      if (!(await session.resume())) await this.#enrollAtStart(session);
      if (this.#abort.signal.aborted) throw stoppedBeforeStart();
      const models = await ModelService.start({
        dataDir: o.dataDir,
        session,
        metrics: this.#metrics,
        servingAddress: o.servingAddress,
        downloadStallMs: o.downloadStallMs,
        backoff: o.backoff,
        natsCaFile: o.natsCaFile,
        // A simulated device may claim more threads than this host has: running a session with
        // 32 threads on 2 cores measures oversubscription, not the model.
        deviceThreads: Math.min(this.#profile.threads, availableParallelism()),
        simulate: device.simulate,
        logger: session.logger,
      });
      this.#models = models;
      this.#loop = new HeartbeatLoop({
        session,
        backoff: new Backoff(o.backoff),
        intervalMs: o.heartbeatIntervalMs,
        report: () => models.activity.report(),
        accepted: (report) => models.activity.accepted(report),
      });
      this.#loop.start();
      this.#state = 'running';
      session.logger.info(
        {
          hardwareClass: this.hardwareClass,
          metricsUrl: this.#metricsUrl,
          inferenceUrl: models.inferenceUrl,
          controlPlane: o.controlPlane,
          agentVersion: AGENT_VERSION,
        },
        'agent running',
      );
    } catch (err) {
      await this.#release();
      this.#state = 'stopped';
      throw err;
    }
  }

  /** Retries while the control plane is unreachable (a device may boot before its network). */
  async #enrollAtStart(session: DeviceSession): Promise<void> {
    const signal = this.#abort.signal;
    const backoff = new Backoff(this.options.backoff);
    for (;;) {
      try {
        await session.enroll(signal);
        return;
      } catch (err) {
        if (signal.aborted) throw stoppedBeforeStart();
        if (!(err instanceof FleetCallError && err.transient)) throw explainEnrollFailure(err);
        const retryInMs = backoff.next();
        session.logger.warn(
          { error: err.message, code: status[err.code], retryInMs: Math.round(retryInMs) },
          'cannot enroll yet; the control plane is unreachable or busy, retrying',
        );
        if (!(await pause(retryInMs, signal))) throw stoppedBeforeStart();
      }
    }
  }

  async #release(): Promise<void> {
    await this.#models?.stop();
    await this.#loop?.stop();
    this.#loop = undefined;
    this.#client?.close();
    this.#client = undefined;
    await this.#metrics?.close();
  }
}

function stoppedBeforeStart(): EdgeforgeError {
  return new EdgeforgeError('the agent was stopped before it enrolled');
}

function explainEnrollFailure(err: unknown): unknown {
  if (!(err instanceof FleetCallError)) return err;
  const fix = err.revoked
    ? 'an operator revoked this device; it can enrol again once they delete it (edgeforge fleet delete)'
    : ENROLLMENT_REFUSED.has(err.code)
      ? 'check the enrollment token the operator gave this device'
      : 'the control plane rejected the request; its logs say why';
  return new EdgeforgeError(`enrollment failed: ${err.message}; ${fix}`, { cause: err });
}
