/**
 * A worker thread of the fleet simulator: a share of the simulated devices, each speaking the
 * real protocols as an agent does (agent/agent.ts), minus ONNX Runtime:
 *   - gRPC Enroll with the fleet's enrollment token, then Heartbeat at the control plane's
 *     interval (±10%) with its state, its active model and a latency histogram delta of
 *     synthetic serving latency (bench/fleet-sim/latency.ts);
 *   - the agent's own DesiredStateWatcher on its two desired-state keys (its own entry and its
 *     release track): a core subscription and a direct get per key, each revision applied once,
 *     newest first;
 *   - `run`: verify the signed manifest (signature, expiry, version, class), download the model
 *     with the agent's own downloadObject (size and sha256 checked), "activate" it (nothing is
 *     loaded), report ACTIVATED with the active model; `benchmark`: verify and download each
 *     candidate, report a synthetic benchmark of each (ReportBenchmark), keep serving what it
 *     serves. No holdout bundle is downloaded or scored.
 * What is shared, unlike on real devices: the thread's gRPC channels (a few) and NATS connections
 * (one per `devicesPerNatsConnection` devices, as the service user: a shared connection cannot
 * carry one device's identity, so the auth callout is not exercised here). Each device keeps its
 * own credential and its own watcher. Nothing bypasses the control plane or NATS.
 */
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { DEFAULT_DOWNLOAD_STALL_MS } from '../../agent/agent.js';
import {
  downloadObject,
  OBJECT_STORE_API_TIMEOUT_MS,
} from '../../agent/download/object-download.js';
import { discardPartial } from '../../agent/download/partial-download.js';
import { DEFAULT_DEADLINE_MS } from '../../agent/fleet/fleet-client.js';
import { Backoff, DEFAULT_BACKOFF, jitter } from '../../agent/heartbeat/backoff.js';
import { firstIssue, SignedManifestSchema } from '../../agent/models/manifest-schema.js';
import { parseDesiredState } from '../../agent/reconcile/desired-state-schema.js';
import {
  DesiredStateWatcher,
  type DesiredStateEntry,
} from '../../agent/reconcile/desired-state-watcher.js';
import { cohortOf } from '../../common/cohorts.js';
import type { BenchmarkCandidates, RunModel } from '../../common/desired-state.js';
import { MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, profileToProto } from '../../common/fleet-api.js';
import { callUnary, type UnaryMethod } from '../../common/grpc-unary.js';
import {
  ManifestRefusedError,
  verifySignedManifest,
  type ModelManifest,
  type ObjectRef,
  type SignedManifest,
} from '../../common/manifest.js';
import { connectNats, type NatsConnection } from '../../common/nats.js';
import {
  DeviceState,
  FleetServiceService,
  StatusEvent,
  type ActiveModel,
  type EnrollRequest,
  type EnrollResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type LatencyHistogramDelta,
  type ReportBenchmarkRequest,
  type ReportBenchmarkResponse,
  type ReportStatusRequest,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { fixtureProfile } from '../../test/helpers/profiles.js';
import { FLEET_PROFILES, FLEET_SIM_VERSION, SyntheticLatency } from './latency.js';
import {
  emptyCounters,
  type DeviceOutcome,
  type DeviceSpec,
  type EnrolledDevice,
  type FromWorker,
  type SimWorkerData,
  type ToWorker,
} from './protocol.js';

const data = workerData as SimWorkerData;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const counters = emptyCounters();
const errors = new Map<string, number>();
let stopped = false;
const stopping = new AbortController();
// Every pause of every device listens on it.
setMaxListeners(0, stopping.signal);

/** The agent's own reading of "worth retrying" (agent/fleet/fleet-client.ts). */
const TRANSIENT = new Set([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
]);
/** Used when the control plane leaves nextHeartbeatSeconds unset (the agent's default). */
const DEFAULT_HEARTBEAT_SECONDS = 30;

function noteError(where: string, err: unknown): void {
  const message = `${where}: ${(err as Error)?.message ?? String(err)}`
    .replace(/\d+/g, 'N')
    .slice(0, 200);
  errors.set(message, (errors.get(message) ?? 0) + 1);
}

/** At most `limit` calls of `run` in flight. */
class Limiter {
  #active = 0;
  readonly #queue: (() => void)[] = [];
  constructor(readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.limit) await new Promise<void>((r) => this.#queue.push(r));
    this.#active++;
    try {
      return await fn();
    } finally {
      this.#active--;
      this.#queue.shift()?.();
    }
  }
}

const calls = new Limiter(data.concurrency);
/** The agent's watcher logs; the simulator counts instead. */
const quiet = pino({ level: 'silent' });
const downloads = new Limiter(data.downloadConcurrency);

// A few channels, each its own HTTP/2 connection (a local subchannel pool per channel).
const channels = Array.from(
  { length: Math.max(1, data.grpcChannels) },
  (_, i) =>
    new Client(data.controlPlane, credentials.createInsecure(), {
      'grpc.max_send_message_length': MAX_REQUEST_BYTES,
      'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_reconnect_backoff_ms': 60_000,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.primary_user_agent': `fleet-sim-channel-${i}`,
    }),
);

const profiles = new Map(
  Object.keys(FLEET_PROFILES).map((p) => [p, profileToProto(fixtureProfile(p))]),
);

/** One NATS connection shared by a slot of devices, with the buckets they open on it. */
class NatsSlot {
  #nc: Promise<NatsConnection> | undefined;
  #js: Promise<JetStreamClient> | undefined;
  #obj: Promise<ObjectStore> | undefined;
  /** Called after each reconnect, as the agent's NatsLink does (watchers start over). */
  readonly #onReconnect = new Set<() => void>();

  constructor(
    readonly url: string,
    readonly n: number,
  ) {}

  connection(): Promise<NatsConnection> {
    this.#nc ??= connectNats(this.url, { name: `fleet-sim-${this.n}`, timeoutMs: 30_000 }).then(
      (nc) => {
        void (async () => {
          for await (const s of nc.status()) {
            if (s.type === 'reconnect') for (const listener of this.#onReconnect) listener();
          }
        })();
        return nc;
      },
      (err: unknown) => {
        this.#nc = undefined;
        throw err;
      },
    );
    return this.#nc;
  }

  onReconnect(listener: () => void): () => void {
    this.#onReconnect.add(listener);
    return () => this.#onReconnect.delete(listener);
  }

  /** The JetStream client the agent reads models with (OBJECT_STORE_API_TIMEOUT_MS). */
  js(): Promise<JetStreamClient> {
    this.#js ??= this.connection().then((nc) =>
      jetstream(nc, { timeout: OBJECT_STORE_API_TIMEOUT_MS }),
    );
    return this.#js;
  }

  objects(bucket: string): Promise<ObjectStore> {
    this.#obj ??= this.js()
      .then((js) => new Objm(js).open(bucket))
      .catch((err: unknown) => {
        this.#obj = undefined;
        throw err;
      });
    return this.#obj;
  }

  async close(): Promise<void> {
    const nc = await this.#nc?.catch(() => undefined);
    await nc?.close();
  }
}

const slots: NatsSlot[] = [];
let devicesOnSlots = 0;
function slotFor(url: string): NatsSlot {
  const n = Math.floor(devicesOnSlots++ / Math.max(1, data.devicesPerNatsConnection));
  slots[n] ??= new NatsSlot(url, n);
  return slots[n];
}

const pendingOutcomes: DeviceOutcome[] = [];

class SimDevice {
  readonly latency: SyntheticLatency;
  readonly channel: Client;
  id = '';
  #credential = '';
  hardwareClass = '';
  #publicKey: Buffer = Buffer.alloc(0);
  #slot: NatsSlot | undefined;
  silent = false;
  #state = DeviceState.DEVICE_STATE_IDLE;
  #active: ActiveModel | undefined;
  /** Model files "on disk": what a rollback to an earlier model finds without downloading. */
  readonly #files = new Set<string>();
  /** Serving latencies not yet accepted by a heartbeat. */
  #unsent: LatencyHistogramDelta | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #watching = new AbortController();
  // The reconciler's bookkeeping (agent/reconcile/reconciler.ts).
  #applied = 0;
  #current = 0;
  #next: DesiredStateEntry | undefined;
  #latest: DesiredStateEntry | undefined;
  #busy = false;

  constructor(readonly spec: DeviceSpec) {
    this.latency = new SyntheticLatency(spec.name, spec.profile);
    this.channel = channels[spec.index % channels.length]!;
  }

  #call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    return callUnary(this.channel, method, request, {
      credential: this.#credential,
      deadlineMs: DEFAULT_DEADLINE_MS,
    });
  }

  async enroll(): Promise<EnrolledDevice> {
    const response = await callUnary<EnrollRequest, EnrollResponse>(
      this.channel,
      FleetServiceService.enroll,
      {
        enrollmentToken: data.enrollmentToken,
        deviceName: this.spec.name,
        profile: profiles.get(this.spec.profile),
        agentVersion: FLEET_SIM_VERSION,
      },
      { deadlineMs: 30_000 },
    );
    this.id = response.deviceId;
    this.#credential = response.deviceCredential;
    this.hardwareClass = response.hardwareClass;
    this.#publicKey = response.manifestPublicKey;
    this.#slot ??= slotFor(data.natsUrl);
    return {
      index: this.spec.index,
      deviceId: this.id,
      hardwareClass: this.hardwareClass,
      cohort: cohortOf(this.id),
    };
  }

  start(): void {
    this.#schedule(0);
    void this.#watchLoop();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#watching.abort();
  }

  setSilent(silent: boolean): void {
    const was = this.silent;
    this.silent = silent;
    // Speaking again: the latest desired state is news once more.
    if (was && !silent && this.#latest) this.#offer(this.#latest);
  }

  // --- heartbeats -------------------------------------------------------------------------

  #schedule(ms: number): void {
    if (stopped) return;
    this.#timer = setTimeout(() => void this.#beat(), ms);
  }

  #report(): HeartbeatRequest {
    const active = this.#active;
    if (active && this.#state === DeviceState.DEVICE_STATE_SERVING) {
      const delta = this.latency.servingDelta(active.variant, data.requestsPerInterval);
      const prior = this.#unsent;
      this.#unsent = prior
        ? {
            bucketUpperBounds: delta.bucketUpperBounds,
            bucketCounts: delta.bucketCounts.map((c, i) => c + (prior.bucketCounts[i] ?? 0)),
            sumSeconds: delta.sumSeconds + prior.sumSeconds,
            count: delta.count + prior.count,
          }
        : delta;
    }
    return { state: this.#state, activeModel: active, inferenceLatency: this.#unsent };
  }

  async #beat(): Promise<void> {
    const backoff = new Backoff(DEFAULT_BACKOFF);
    for (;;) {
      if (stopped) return;
      try {
        const response = await this.#call<HeartbeatRequest, HeartbeatResponse>(
          FleetServiceService.heartbeat,
          this.#report(),
        );
        counters.heartbeats++;
        this.#unsent = undefined;
        if (response.renewedCredential) this.#credential = response.renewedCredential;
        const seconds = response.nextHeartbeatSeconds || DEFAULT_HEARTBEAT_SECONDS;
        this.#schedule(jitter(seconds * 1000, 0.1));
        return;
      } catch (err) {
        counters.heartbeatFailures++;
        noteError('heartbeat', err);
        if ((err as ServiceError).code === status.UNAUTHENTICATED) {
          await this.enroll().catch((e: unknown) => noteError('re-enroll', e));
        }
        if (!(await pause(backoff.next()))) return;
      }
    }
  }

  // --- desired state ----------------------------------------------------------------------

  /** The agent's DesiredStateWatcher, on the slot's shared connection. */
  async #watchLoop(): Promise<void> {
    const watcher = new DesiredStateWatcher({
      link: this.#slot!,
      deviceId: this.id,
      hardwareClass: () => this.hardwareClass,
      backoff: DEFAULT_BACKOFF,
      logger: quiet,
      onHealth: (problem) => {
        if (problem) noteError('watch', new Error(problem));
      },
    });
    counters.watchesStarted++;
    counters.watchesRunning++;
    try {
      await watcher.run((entry) => {
        counters.entriesSeen++;
        this.#offer(entry);
      }, this.#watching.signal);
    } finally {
      counters.watchesRunning--;
    }
  }

  #offer(entry: DesiredStateEntry): void {
    this.#latest = entry;
    if (this.silent) {
      counters.entriesIgnored++;
      return;
    }
    if (entry.revision <= Math.max(this.#applied, this.#next?.revision ?? 0, this.#current)) return;
    this.#next = entry;
    if (!this.#busy) void this.#reconcile();
  }

  #superseded(): boolean {
    return stopped || (this.#next !== undefined && this.#next.revision > this.#current);
  }

  async #reconcile(): Promise<void> {
    this.#busy = true;
    const backoff = new Backoff(DEFAULT_BACKOFF);
    try {
      while (this.#next && !stopped && !this.silent) {
        const entry = this.#next;
        this.#next = undefined;
        this.#current = entry.revision;
        try {
          if (await this.#apply(entry)) this.#applied = entry.revision;
          backoff.reset();
        } catch (err) {
          noteError('apply', err);
          this.#next ??= entry;
          await pause(backoff.next());
        } finally {
          this.#current = 0;
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /** True once the entry is done with (applied, refused, or nothing to do). */
  async #apply(entry: DesiredStateEntry): Promise<boolean> {
    if (entry.operation !== 'PUT') return true;
    let desired;
    try {
      desired = parseDesiredState(entry.value);
    } catch (err) {
      if (!(err instanceof ManifestRefusedError)) throw err;
      await this.#refused(err.context.rolloutId ?? '', '', err);
      return true;
    }
    return desired.kind === 'run' ? this.#run(desired) : this.#benchmark(desired);
  }

  /** The agent's checks before anything is downloaded (desired-state-applier.ts #verify). */
  #verify(signed: SignedManifest): ModelManifest {
    const shape = SignedManifestSchema.safeParse(signed);
    if (!shape.success) {
      throw new ManifestRefusedError(
        'malformed',
        `the signed manifest does not fit the contract (common/manifest.ts): ${firstIssue(shape.error)}`,
      );
    }
    return verifySignedManifest(signed, {
      publicKey: this.#publicKey,
      hardwareClass: this.hardwareClass,
      // As the agent: never a release older than the one it runs, whatever the model id.
      currentVersion: this.#active?.version,
    });
  }

  async #run(desired: RunModel): Promise<boolean> {
    const signed = desired.model;
    const m = signed.manifest;
    const active = this.#active;
    if (active && active.sha256 === m?.model?.sha256 && active.version === m.version) {
      await this.#activated(desired.rolloutId, 'already serving');
      return true;
    }
    let manifest: ModelManifest;
    try {
      manifest = this.#verify(signed);
      await this.#during(DeviceState.DEVICE_STATE_DOWNLOADING, () =>
        this.#download(manifest.model, desired.rolloutId, manifest.variant),
      );
    } catch (err) {
      if (!(err instanceof ManifestRefusedError)) throw err;
      await this.#refused(desired.rolloutId, m?.variant ?? '', err);
      return true;
    }
    if (this.#superseded()) return false;
    // "Activation": the file is verified; a simulated device loads nothing and serves synthetic
    // latencies of this variant from now on.
    this.#active = {
      modelId: manifest.modelId,
      variant: manifest.variant,
      version: manifest.version,
      sha256: manifest.model.sha256,
    };
    this.#state = DeviceState.DEVICE_STATE_SERVING;
    this.#unsent = undefined;
    await this.#activated(desired.rolloutId, 'simulated activation, no model loaded');
    return true;
  }

  async #activated(rolloutId: string, how: string): Promise<void> {
    const a = this.#active!;
    await this.#deliver(FleetServiceService.reportStatus, {
      event: StatusEvent.STATUS_EVENT_ACTIVATED,
      rolloutId,
      variant: a.variant,
      activeModel: a,
      detail: `serving ${a.modelId} ${a.variant} v${a.version}: ${how} (bench/fleet-sim)`,
    });
    counters.statusReports++;
    pendingOutcomes.push({
      index: this.spec.index,
      event: 'activated',
      rolloutId,
      sha256: a.sha256,
      at: Date.now(),
    });
  }

  async #refused(rolloutId: string, variant: string, err: ManifestRefusedError): Promise<void> {
    counters.refusals++;
    noteError('refused', err);
    await this.#deliver(FleetServiceService.reportStatus, {
      event: StatusEvent.STATUS_EVENT_REFUSED,
      rolloutId,
      variant,
      activeModel: this.#active,
      detail: err.message,
    });
    counters.statusReports++;
    pendingOutcomes.push({
      index: this.spec.index,
      event: 'refused',
      rolloutId,
      sha256: '',
      at: Date.now(),
    });
  }

  async #benchmark(desired: BenchmarkCandidates): Promise<boolean> {
    const ready: ModelManifest[] = [];
    for (const signed of desired.candidates) {
      if (this.#superseded()) return false;
      try {
        const manifest = this.#verify(signed);
        await this.#during(DeviceState.DEVICE_STATE_DOWNLOADING, () =>
          this.#download(manifest.model, desired.rolloutId, manifest.variant),
        );
        ready.push(manifest);
      } catch (err) {
        if (!(err instanceof ManifestRefusedError)) throw err;
        await this.#refused(desired.rolloutId, signed.manifest?.variant ?? '', err);
        await this.#deliverBenchmark(failedBenchmark(desired.rolloutId, signed, err.message));
      }
    }
    const rounds = desired.settings.rounds ?? 1;
    await this.#during(DeviceState.DEVICE_STATE_BENCHMARKING, () => pause(200 * ready.length));
    for (const manifest of ready) {
      const latency = this.latency.benchmark(manifest.variant, rounds, desired.settings.minRuns);
      await this.#deliverBenchmark({
        rolloutId: desired.rolloutId,
        variant: manifest.variant,
        modelSha256: manifest.model.sha256,
        sessionLoadMs: 0,
        latency,
        throughputPerSecond: 1000 / latency.p50Ms,
        memoryGrowthBytes: 0,
        // Synthetic: the manifest's own central accuracy, so the accuracy gate passes as the
        // gpu worker judged it. No holdout was scored.
        accuracy: manifest.centralAccuracy ?? 0,
        top1Agreement: 1,
        threads: 1,
        error: '',
      });
    }
    pendingOutcomes.push({
      index: this.spec.index,
      event: 'benchmarked',
      rolloutId: desired.rolloutId,
      sha256: '',
      at: Date.now(),
    });
    return true;
  }

  async #deliverBenchmark(request: ReportBenchmarkRequest): Promise<void> {
    await this.#deliver<ReportBenchmarkRequest, ReportBenchmarkResponse>(
      FleetServiceService.reportBenchmark,
      request,
    );
    counters.benchmarkReports++;
  }

  /** The agent's Reporter: retried with backoff until delivered (or refused for good). */
  async #deliver<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res | undefined> {
    const backoff = new Backoff(DEFAULT_BACKOFF);
    for (;;) {
      if (stopped) return undefined;
      try {
        return await calls.run(() => this.#call(method, request));
      } catch (err) {
        counters.reportFailures++;
        noteError(method.path, err);
        const code = (err as ServiceError).code;
        if (!TRANSIENT.has(code) && code !== status.UNAUTHENTICATED) return undefined;
        if (code === status.UNAUTHENTICATED) {
          await this.enroll().catch((e: unknown) => noteError('re-enroll', e));
        }
        if (!(await pause(backoff.next()))) return undefined;
      }
    }
  }

  async #during<T>(state: DeviceState, fn: () => Promise<T>): Promise<T> {
    const before = this.#state;
    this.#state = state;
    try {
      return await fn();
    } finally {
      this.#state = before;
    }
  }

  /**
   * The model from the Object Store with the agent's own downloadObject (streamed into a file,
   * size and sha256 checked, fsynced; its consumer deleted after the transfer), then the file is
   * removed again: a simulated device keeps only the digest, to know it has the file. A transfer
   * that fails is retried with backoff (resuming its partial file, as the agent does); the first
   * failure is reported DOWNLOAD_FAILED. A wrong size or digest is a refusal.
   */
  async #download(ref: ObjectRef, rolloutId: string, variant: string): Promise<void> {
    if (this.#files.has(ref.sha256)) {
      counters.downloadsCached++;
      return;
    }
    const backoff = new Backoff(DEFAULT_BACKOFF);
    for (let attempt = 1; ; attempt++) {
      if (stopped) throw new Error('stopped');
      try {
        const bytes = await downloads.run(() => agentDownload(this.#slot!, ref, this.spec.index));
        counters.downloads++;
        counters.downloadBytes += bytes;
        this.#files.add(ref.sha256);
        return;
      } catch (err) {
        if (err instanceof ManifestRefusedError) throw err;
        counters.downloadFailures++;
        noteError('download', err);
        if (attempt === 1) {
          void this.#deliver(FleetServiceService.reportStatus, {
            event: StatusEvent.STATUS_EVENT_DOWNLOAD_FAILED,
            rolloutId,
            variant,
            activeModel: this.#active,
            detail: `${(err as Error).message}; retrying`,
          } satisfies ReportStatusRequest).then(() => counters.statusReports++);
        }
        if (!(await pause(backoff.next()))) throw new Error('stopped');
      }
    }
  }
}

async function agentDownload(slot: NatsSlot, ref: ObjectRef, device: number): Promise<number> {
  const [js, store] = [await slot.js(), await slot.objects(ref.bucket)];
  const file = join(data.downloadDir, `${device}-${ref.sha256.slice(0, 16)}.onnx`);
  try {
    const result = await downloadObject(store, ref, file, {
      js,
      stallMs: DEFAULT_DOWNLOAD_STALL_MS,
      signal: stopping.signal,
    });
    await discardPartial(file);
    return result.receivedBytes;
  } catch (err) {
    if (err instanceof ManifestRefusedError || stopped) await discardPartial(file);
    throw err;
  }
}

function failedBenchmark(
  rolloutId: string,
  signed: SignedManifest,
  error: string,
): ReportBenchmarkRequest {
  const m = (signed as Partial<SignedManifest> | undefined)?.manifest;
  return {
    rolloutId,
    variant: typeof m?.variant === 'string' ? m.variant : '',
    modelSha256: typeof m?.model?.sha256 === 'string' ? m.model.sha256 : '',
    sessionLoadMs: 0,
    latency: undefined,
    throughputPerSecond: 0,
    memoryGrowthBytes: 0,
    accuracy: 0,
    top1Agreement: 0,
    threads: 0,
    error,
  };
}

/** Waits `ms`; false when the simulator stops meanwhile. */
async function pause(ms: number): Promise<boolean> {
  if (stopped) return false;
  try {
    await sleep(ms, undefined, { signal: stopping.signal });
    return true;
  } catch {
    return false;
  }
}

const devices = new Map<number, SimDevice>();

async function enrollAll(specs: DeviceSpec[]): Promise<void> {
  const enrolled: EnrolledDevice[] = [];
  const failed: { index: number; error: string }[] = [];
  const flush = () => {
    if (enrolled.length === 0 && failed.length === 0) return;
    post({ kind: 'enrolled', devices: enrolled.splice(0), failed: failed.splice(0) });
  };
  const timer = setInterval(flush, 250);
  try {
    await Promise.all(
      specs.map((spec) =>
        calls.run(async () => {
          const device = new SimDevice(spec);
          const backoff = new Backoff(DEFAULT_BACKOFF);
          for (let attempt = 1; !stopped; attempt++) {
            try {
              enrolled.push(await device.enroll());
              counters.enrolled++;
              devices.set(spec.index, device);
              device.start();
              return;
            } catch (err) {
              counters.enrollFailures++;
              noteError('enroll', err);
              const code = (err as ServiceError).code;
              // Refused for good (a bad request, a wrong token): retrying cannot help.
              if (attempt >= 10 || (code !== undefined && !TRANSIENT.has(code))) {
                failed.push({ index: spec.index, error: (err as Error).message });
                return;
              }
              await pause(backoff.next());
            }
          }
        }),
      ),
    );
  } finally {
    clearInterval(timer);
    flush();
  }
}

const outcomeTimer = setInterval(() => {
  if (pendingOutcomes.length > 0) post({ kind: 'outcomes', outcomes: pendingOutcomes.splice(0) });
}, 250);
const counterTimer = setInterval(() => {
  const top = [...errors.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([m, n]) => `${n}× ${m}`);
  post({ kind: 'counters', counters: { ...counters }, errors: top });
}, 1_000);

port.on('message', (m: ToWorker) => {
  if (m.kind === 'enroll') {
    enrollAll(m.devices).catch((err: unknown) => noteError('enroll batch', err));
  } else if (m.kind === 'silence') {
    for (const i of m.indices) devices.get(i)?.setSilent(m.silent);
  } else if (m.kind === 'stop') {
    stopped = true;
    stopping.abort();
    for (const d of devices.values()) d.stop();
    clearInterval(outcomeTimer);
    clearInterval(counterTimer);
    void (async () => {
      await Promise.allSettled(slots.map((s) => s.close()));
      for (const c of channels) c.close();
      post({ kind: 'counters', counters: { ...counters }, errors: [] });
      post({ kind: 'stopped' });
      port.close();
    })();
  }
});

post({ kind: 'ready' });
