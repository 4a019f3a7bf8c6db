/**
 * Messages between the fleet simulator (bench/fleet-sim/fleet-sim.ts, main thread) and its
 * worker threads (bench/fleet-sim/sim-worker.ts). Plain data only: they cross postMessage.
 */

export interface SimWorkerData {
  /** The control plane's gRPC address, host:port. */
  controlPlane: string;
  /**
   * NATS as the service user: devices here share connections, which per-device identities
   * (the auth callout) cannot express.
   */
  natsUrl: string;
  /** The fleet's enrollment token, as an operator hands it to a device. */
  enrollmentToken: string;
  /** gRPC channels this thread's devices share (real devices each have their own). */
  grpcChannels: number;
  /** Devices per NATS connection (real devices each have their own connection). */
  devicesPerNatsConnection: number;
  /** Enrollments, watch creations and report calls this thread keeps in flight at most. */
  concurrency: number;
  /** Model downloads this thread keeps in flight at most. */
  downloadConcurrency: number;
  /** Where downloads land (and are removed again once verified). */
  downloadDir: string;
  /** Serving requests a device answers per heartbeat interval (synthetic). */
  requestsPerInterval: number;
}

/** One device to enroll: its stable name and which of the simulator's profiles it has. */
export interface DeviceSpec {
  /** Index over the whole simulated fleet; messages name devices by it. */
  index: number;
  name: string;
  /** One of FLEET_PROFILES (bench/fleet-sim/latency.ts). */
  profile: string;
}

export type ToWorker =
  | { kind: 'enroll'; devices: DeviceSpec[] }
  /** Silent devices heartbeat but never apply desired state. */
  | { kind: 'silence'; indices: number[]; silent: boolean }
  | { kind: 'stop' };

export interface EnrolledDevice {
  index: number;
  deviceId: string;
  hardwareClass: string;
  cohort: number;
}

/** What a device did with a desired state, as it reported it to the control plane. */
export interface DeviceOutcome {
  index: number;
  /** 'activated' (ReportStatus ACTIVATED acknowledged), 'benchmarked' (every candidate reported), 'refused'. */
  event: 'activated' | 'benchmarked' | 'refused';
  rolloutId: string;
  sha256: string;
  /** Date.now() when the control plane acknowledged the report. */
  at: number;
}

/** Counters of one thread since it started; the main thread sums them. */
export interface SimCounters {
  enrolled: number;
  enrollFailures: number;
  heartbeats: number;
  heartbeatFailures: number;
  statusReports: number;
  benchmarkReports: number;
  reportFailures: number;
  downloads: number;
  downloadBytes: number;
  downloadFailures: number;
  /** Downloads skipped: the device had the file already (a rollback to a model it ran). */
  downloadsCached: number;
  refusals: number;
  watchesStarted: number;
  watchesRunning: number;
  /** Entries a watch delivered (after both keys were caught up). */
  entriesSeen: number;
  /** Entries ignored because the device is silent. */
  entriesIgnored: number;
}

export function emptyCounters(): SimCounters {
  return {
    enrolled: 0,
    enrollFailures: 0,
    heartbeats: 0,
    heartbeatFailures: 0,
    statusReports: 0,
    benchmarkReports: 0,
    reportFailures: 0,
    downloads: 0,
    downloadBytes: 0,
    downloadFailures: 0,
    downloadsCached: 0,
    refusals: 0,
    watchesStarted: 0,
    watchesRunning: 0,
    entriesSeen: 0,
    entriesIgnored: 0,
  };
}

export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'enrolled'; devices: EnrolledDevice[]; failed: { index: number; error: string }[] }
  | { kind: 'outcomes'; outcomes: DeviceOutcome[] }
  | { kind: 'counters'; counters: SimCounters; errors: string[] }
  | { kind: 'stopped' };
