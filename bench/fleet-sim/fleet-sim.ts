/**
 * The fleet simulator: N lightweight simulated devices in worker threads (sim-worker.ts), each
 * speaking the real protocols against a real control plane and NATS (gRPC Enroll, Heartbeat,
 * ReportStatus, ReportBenchmark; one KV watch of its desired-state keys; model downloads from the
 * Object Store). A bench tool: it lives under bench/, and loads no model (latencies are
 * synthetic, see latency.ts).
 *
 *   const sim = await FleetSim.start({ controlPlane, enrollmentToken, threads: 2 });
 *   await sim.enroll(specs);            // resolves once each device enrolled (or gave up)
 *   sim.silence(indices, true);          // they keep heartbeating, apply nothing
 *   sim.onOutcome((o) => ...);           // every ACTIVATED / benchmark / refusal acknowledged
 *   await sim.stop();
 */
import { Worker } from 'node:worker_threads';
import {
  emptyCounters,
  type DeviceOutcome,
  type DeviceSpec,
  type EnrolledDevice,
  type FromWorker,
  type SimCounters,
  type SimWorkerData,
  type ToWorker,
} from './protocol.js';

export { FLEET_PROFILES, FLEET_SIM_VERSION } from './latency.js';
export type { DeviceOutcome, DeviceSpec, EnrolledDevice, SimCounters } from './protocol.js';

export interface FleetSimOptions {
  controlPlane: string;
  /** NATS as the service user (see SimWorkerData.natsUrl). */
  natsUrl: string;
  enrollmentToken: string;
  /** Model downloads go here (one file per device at a time, removed once verified). */
  downloadDir: string;
  /** Worker threads; devices are spread over them by index. */
  threads: number;
  /** gRPC channels per thread (default 4). */
  grpcChannels?: number;
  /** Devices per NATS connection (default 250). */
  devicesPerNatsConnection?: number;
  /** Calls (enrollments, watch creations, reports) in flight per thread (default 32). */
  concurrency?: number;
  /** Model downloads in flight per thread (default 16). */
  downloadConcurrency?: number;
  /** Serving requests per device per heartbeat (default 30). */
  requestsPerInterval?: number;
}

interface Thread {
  worker: Worker;
  counters: SimCounters;
  errors: string[];
}

export class FleetSim {
  readonly #threads: Thread[];
  readonly #outcomeListeners = new Set<(o: DeviceOutcome) => void>();
  readonly #enrolled = new Map<number, EnrolledDevice>();
  readonly #failed = new Map<number, string>();
  readonly #waiters = new Set<() => void>();
  #stopped: Promise<void> | undefined;

  private constructor(threads: Thread[]) {
    this.#threads = threads;
    for (const t of threads) {
      t.worker.on('message', (m: FromWorker) => this.#onMessage(t, m));
    }
  }

  static async start(options: FleetSimOptions): Promise<FleetSim> {
    const workerData: SimWorkerData = {
      controlPlane: options.controlPlane,
      natsUrl: options.natsUrl,
      enrollmentToken: options.enrollmentToken,
      downloadDir: options.downloadDir,
      grpcChannels: options.grpcChannels ?? 4,
      devicesPerNatsConnection: options.devicesPerNatsConnection ?? 250,
      concurrency: options.concurrency ?? 32,
      downloadConcurrency: options.downloadConcurrency ?? 16,
      requestsPerInterval: options.requestsPerInterval ?? 30,
    };
    const threads = Array.from({ length: Math.max(1, options.threads) }, (): Thread => {
      const worker = new Worker(new URL('../ts-worker.mjs', import.meta.url), {
        argv: [new URL('./sim-worker.ts', import.meta.url).href],
        workerData,
      });
      return { worker, counters: emptyCounters(), errors: [] };
    });
    await Promise.all(
      threads.map(
        (t) =>
          new Promise<void>((resolve, reject) => {
            const onMessage = (m: FromWorker) => {
              if (m.kind !== 'ready') return;
              t.worker.off('message', onMessage);
              resolve();
            };
            t.worker.on('message', onMessage);
            t.worker.once('error', reject);
          }),
      ),
    ).catch(async (err: unknown) => {
      await Promise.all(threads.map((t) => t.worker.terminate()));
      throw err;
    });
    return new FleetSim(threads);
  }

  #onMessage(thread: Thread, m: FromWorker): void {
    if (m.kind === 'enrolled') {
      for (const d of m.devices) this.#enrolled.set(d.index, d);
      for (const f of m.failed) this.#failed.set(f.index, f.error);
      for (const wake of this.#waiters) wake();
    } else if (m.kind === 'outcomes') {
      for (const o of m.outcomes) for (const l of this.#outcomeListeners) l(o);
    } else if (m.kind === 'counters') {
      thread.counters = m.counters;
      if (m.errors.length > 0) thread.errors = m.errors;
    }
  }

  #post(thread: Thread, m: ToWorker): void {
    thread.worker.postMessage(m);
  }

  /** Enrolls these devices (and starts them); resolves with those that enrolled. */
  async enroll(
    specs: DeviceSpec[],
    onProgress?: (enrolled: number, failed: number) => void,
  ): Promise<EnrolledDevice[]> {
    const byThread = new Map<Thread, DeviceSpec[]>();
    for (const spec of specs) {
      const t = this.#threads[spec.index % this.#threads.length]!;
      byThread.set(t, [...(byThread.get(t) ?? []), spec]);
    }
    for (const [t, devices] of byThread) this.#post(t, { kind: 'enroll', devices });
    const done = () =>
      specs.filter((s) => this.#enrolled.has(s.index) || this.#failed.has(s.index));
    const progress = setInterval(() => {
      const finished = done();
      const failed = finished.filter((s) => this.#failed.has(s.index)).length;
      onProgress?.(finished.length - failed, failed);
    }, 5_000);
    try {
      while (done().length < specs.length) {
        await new Promise<void>((resolve) => {
          this.#waiters.add(resolve);
          setTimeout(resolve, 1_000);
        }).finally(() => this.#waiters.clear());
      }
    } finally {
      clearInterval(progress);
    }
    return specs.flatMap((s) => {
      const d = this.#enrolled.get(s.index);
      return d ? [d] : [];
    });
  }

  /** Enrollment failures by device index. */
  get enrollFailures(): ReadonlyMap<number, string> {
    return this.#failed;
  }

  get devices(): ReadonlyMap<number, EnrolledDevice> {
    return this.#enrolled;
  }

  /** Silent devices heartbeat but apply no desired state (until told otherwise). */
  silence(indices: number[], silent: boolean): void {
    for (const [i, t] of this.#threads.entries()) {
      const mine = indices.filter((index) => index % this.#threads.length === i);
      if (mine.length > 0) this.#post(t, { kind: 'silence', indices: mine, silent });
    }
  }

  onOutcome(listener: (o: DeviceOutcome) => void): () => void {
    this.#outcomeListeners.add(listener);
    return () => this.#outcomeListeners.delete(listener);
  }

  /** Every thread's counters summed (as of their last report, at most a second old). */
  counters(): SimCounters {
    const sum = emptyCounters();
    for (const t of this.#threads) {
      for (const k of Object.keys(sum) as (keyof SimCounters)[]) sum[k] += t.counters[k];
    }
    return sum;
  }

  /** The most frequent errors each thread saw (digits replaced by N). */
  errors(): string[] {
    return this.#threads.flatMap((t) => t.errors);
  }

  /** Stops every device and thread; safe to call more than once. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      await Promise.all(
        this.#threads.map(async (t) => {
          const stopped = new Promise<void>((resolve) => {
            t.worker.on('message', (m: FromWorker) => m.kind === 'stopped' && resolve());
            t.worker.once('exit', () => resolve());
          });
          this.#post(t, { kind: 'stop' });
          const timer = setTimeout(() => void t.worker.terminate(), 15_000);
          await stopped;
          clearTimeout(timer);
          await t.worker.terminate();
        }),
      );
    })();
    return this.#stopped;
  }
}
