import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials as grpcCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import { onTestFinished } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { MAX_REQUEST_BYTES } from '../../common/fleet-api.js';
import { callUnary, type UnaryMethod } from '../../common/grpc-unary.js';
import { KV_BUCKETS } from '../../common/names.js';
import { connectNats, type NatsConnection } from '../../common/nats.js';
import {
  startControlPlane,
  type ControlPlaneOptions,
  type RunningControlPlane,
} from '../../services/control-plane/index.js';
import { FleetServiceService } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { AdminServiceService } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import { testNats, testStack } from './stack.js';

export const ENROLLMENT_TOKEN = 'test-enrollment-token-0123456789';
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

/**
 * Deletes the fleet's buckets so each test starts from an empty registry and no rollout history
 * (earlier rollouts' measurements would change what the planner proposes).
 */
export async function resetFleetState(nats: NatsConnection): Promise<void> {
  const kvm = new Kvm(nats);
  const buckets = [
    KV_BUCKETS.devices,
    KV_BUCKETS.benchmarks,
    KV_BUCKETS.rollouts,
    KV_BUCKETS.desiredState,
    KV_BUCKETS.enrollments,
  ];
  for (const bucket of buckets) {
    await kvm
      .open(bucket)
      .then((kv) => kv.destroy())
      .catch(() => {});
  }
}

export interface TestControlPlane extends RunningControlPlane {
  dataDir: string;
  nats: NatsConnection;
  /** Start another instance with the same data dir (a restart, or a second replica). */
  restart(overrides?: Partial<ControlPlaneOptions>): Promise<TestControlPlane>;
}

/**
 * A real control plane on 127.0.0.1 (gRPC and /metrics on free ports) against the run's NATS,
 * stopped after the test. Without a `temporal` override it has no Temporal: the fleet API works,
 * rollout calls fail with FAILED_PRECONDITION; `testTemporalOption()` gives it the run's.
 */
export async function startTestControlPlane(
  overrides: Partial<ControlPlaneOptions> = {},
  dataDir?: string,
): Promise<TestControlPlane> {
  const nats = overrides.nats ?? (await testNats('control-plane'));
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'edgeforge-cp-')));
  if (!dataDir) onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const running = await startControlPlane({
    nats,
    dataDir: dir,
    enrollmentToken: ENROLLMENT_TOKEN,
    adminToken: ADMIN_TOKEN,
    logger: createLogger('control-plane', process.env.EDGEFORGE_LOG_LEVEL ?? 'warn'),
    listen: '127.0.0.1:0',
    metricsListen: '127.0.0.1:0',
    advertisedNatsUrl: testStack().agentNatsUrl,
    natsAuth: overrides.natsAuth ?? {
      issuerSeed: testStack().calloutIssuerSeed,
      system: await testNats('control-plane-system', testStack().systemNatsUrl),
    },
    heartbeatIntervalSeconds: 1,
    credentialTtlSeconds: 3600,
    ...overrides,
  });
  let stopped = false;
  const stop = async (graceMs?: number) => {
    if (stopped) return;
    stopped = true;
    await running.stop(graceMs);
  };
  onTestFinished(() => stop(1000));
  return {
    ...running,
    stop,
    dataDir: dir,
    nats,
    restart: (more = {}) => startTestControlPlane({ ...overrides, nats, ...more }, dir),
  };
}

/**
 * The `natsAuth` option for a control plane on `server` (a test's own nats-server or cluster,
 * not the run's): its callout issuer and a system-account connection, closed after the test.
 */
export async function natsAuthOf(server: {
  systemUrl: string;
  secrets: { calloutIssuerSeed: string };
}): Promise<ControlPlaneOptions['natsAuth']> {
  // Closed, not drained, after the test: the server may be gone by then (a test that moves it).
  const system = await connectNats(server.systemUrl, { name: 'control-plane-system' });
  onTestFinished(() => system.close().catch(() => {}));
  return { issuerSeed: server.secrets.calloutIssuerSeed, system };
}

/** The run's Temporal dev server, as the control plane's `temporal` option. */
export function testTemporalOption(): Pick<ControlPlaneOptions, 'temporal'> {
  return { temporal: { address: testStack().temporalAddress, namespace: 'default' } };
}

/** Promise-returning gRPC clients for tests that speak the raw API (bad input included). */
export function rawClients(
  address: string,
  channelCredentials: ChannelCredentials = grpcCredentials.createInsecure(),
) {
  // Lets tests send more than the server accepts, to see the server refuse it.
  const client = new Client(address, channelCredentials, {
    'grpc.max_send_message_length': 4 * MAX_REQUEST_BYTES,
  });
  onTestFinished(() => client.close());
  const call =
    <Req, Res>(method: UnaryMethod<Req, Res>) =>
    (request: Req, credential?: string): Promise<Res> =>
      callUnary(client, method, request, { credential });
  return {
    enroll: call(FleetServiceService.enroll),
    heartbeat: call(FleetServiceService.heartbeat),
    reportBenchmark: call(FleetServiceService.reportBenchmark),
    reportStatus: call(FleetServiceService.reportStatus),
    listDevices: call(AdminServiceService.listDevices),
    getDevice: call(AdminServiceService.getDevice),
    startRollout: call(AdminServiceService.startRollout),
    getRollout: call(AdminServiceService.getRollout),
    listRollouts: call(AdminServiceService.listRollouts),
    cancelRollout: call(AdminServiceService.cancelRollout),
    revokeDevice: call(AdminServiceService.revokeDevice),
    deleteDevice: call(AdminServiceService.deleteDevice),
  };
}

/** A well-formed ReportBenchmark request, as an agent sends it. */
export function benchmarkReport(rolloutId: string, variant: string) {
  return {
    rolloutId,
    variant,
    modelSha256: 'b'.repeat(64),
    sessionLoadMs: 12,
    latency: {
      p50Ms: 1,
      p90Ms: 2,
      p95Ms: 2.5,
      p99Ms: 3,
      meanMs: 1.2,
      cv: 0.1,
      runs: 100,
      roundP95Ms: [2.4, 2.5, 2.6],
    },
    throughputPerSecond: 800,
    memoryGrowthBytes: 0,
    accuracy: 0.91,
    top1Agreement: 0.98,
    threads: 1,
    error: '',
  };
}
