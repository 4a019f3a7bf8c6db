import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { bundleWorkflowCode, DefaultLogger, Worker, type WorkflowBundle } from '@temporalio/worker';
import { beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import { waveCounts, type ClassCensus } from '../../common/census.js';
import { cohortOf } from '../../common/cohorts.js';
import {
  censusKey,
  classLeaseKey,
  deviceDesiredKey,
  KV_BUCKETS,
  TASK_QUEUES,
} from '../../common/names.js';
import type { NatsConnection } from '../../common/nats.js';
import {
  classWorkflowId,
  rolloutRecordKey,
  rolloutWorkflowId,
  type RolloutStatus,
} from '../../common/rollout.js';
import { parseRolloutSpec } from '../../common/rollout-spec.js';
import { StatusEvent } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { eventually } from '../helpers/agents.js';
import {
  ADMIN_TOKEN,
  benchmarkReport,
  ENROLLMENT_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
  testTemporalOption,
} from '../helpers/control-plane.js';
import { fixtureProfile } from '../helpers/profiles.js';
import { runCli } from '../helpers/cli.js';
import { testNats, testStack, testTemporal } from '../helpers/stack.js';
import {
  LIVE_DETAIL,
  RECORDED_DETAIL,
  receivedSignalsQuery,
  type FixtureActivities,
  type ReceivedSignals,
} from './fixtures/rollout-workflows.js';

// The real rollout workflow trains models; these tests are about the control plane's side of
// the contract, so a stand-in with the same type names, ids, signals and records runs instead.
// No orchestrator worker runs in the integration stack (global-setup starts only the gpu
// worker), so each test's stand-in worker may poll the real orchestrator task queue, which is
// where StartRollout sends the workflow; it stops, and its workflows are terminated, with the test.
const FIXTURE_WORKFLOWS = fileURLToPath(
  new URL('./fixtures/rollout-workflows.ts', import.meta.url),
);

let bundle: WorkflowBundle;

beforeAll(async () => {
  // Webpack's module list at INFO would bury the test output.
  bundle = await bundleWorkflowCode({
    workflowsPath: FIXTURE_WORKFLOWS,
    logger: new DefaultLogger('WARN'),
  });
});

type Api = ReturnType<typeof rawClients>;

interface FixtureWorker {
  client: Client;
  /** Rollouts this test started: terminated when it ends. */
  started: Set<string>;
  stop(): Promise<void>;
}

async function startFixtureWorker(nats: NatsConnection): Promise<FixtureWorker> {
  const { client, workerConnection } = await testTemporal();
  const records = await new Kvm(nats).create(KV_BUCKETS.rollouts, { history: 1 });
  const activities: FixtureActivities = {
    async saveRolloutRecord(s) {
      await records.put(rolloutRecordKey(s.rolloutId), JSON.stringify(s));
    },
  };
  const worker = await Worker.create({
    connection: workerConnection,
    taskQueue: TASK_QUEUES.orchestrator,
    workflowBundle: bundle,
    activities,
  });
  const running = worker.run();
  const stop = async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running;
  };
  const started = new Set<string>();
  // Registered after testTemporal's own cleanup, so it runs before the connections close.
  onTestFinished(async () => {
    for (const id of started) {
      await client.workflow
        .getHandle(rolloutWorkflowId(id))
        .terminate('test finished')
        .catch(() => {});
    }
    await stop();
  });
  return { client, started, stop };
}

function specJson(rolloutId: string, overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    rolloutId,
    dataset: { source: 'digits' },
    source: { kind: 'distill', student: { architecture: 'small_cnn' } },
    ...overrides,
  });
}

const newRolloutId = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

async function start(api: Api, fixture: FixtureWorker, rolloutId: string, overrides = {}) {
  fixture.started.add(rolloutId);
  return api.startRollout({ specJson: specJson(rolloutId, overrides) }, ADMIN_TOKEN);
}

async function expectStatus(
  promise: Promise<unknown>,
  code: status,
  details?: RegExp,
): Promise<ServiceError> {
  const err = (await promise.then(
    () => {
      throw new Error(`expected ${status[code]}, but the call succeeded`);
    },
    (e: unknown) => e,
  )) as ServiceError;
  expect(status[err.code], err.details).toBe(status[code]);
  if (details) expect(err.details).toMatch(details);
  return err;
}

async function enrollDevice(api: Api) {
  return api.enroll({
    enrollmentToken: ENROLLMENT_TOKEN,
    deviceName: `device-${randomUUID()}`,
    profile: profileToProto(fixtureProfile('raspberry-pi-4')),
    agentVersion: '0.1.0',
  });
}

async function writeRecord(nats: NatsConnection, record: Partial<RolloutStatus> | string) {
  const kv = await new Kvm(nats).create(KV_BUCKETS.rollouts, { history: 1 });
  if (typeof record === 'string') {
    await kv.put(rolloutRecordKey(`broken-${randomUUID().slice(0, 8)}`), record);
    return;
  }
  const full: RolloutStatus = {
    rolloutId: 'x',
    modelId: null,
    phase: 'succeeded',
    detail: 'done',
    startedAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    spec: parseRolloutSpec(JSON.parse(specJson(record.rolloutId ?? 'x'))),
    teacher: null,
    student: null,
    labels: 'dataset',
    classes: [],
    skippedClasses: [],
    error: null,
    ...record,
  };
  await kv.put(rolloutRecordKey(full.rolloutId), JSON.stringify(full));
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('control plane rollout calls on the real Temporal', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('starts a rollout, answers live from it, lists it, cancels it, then answers from its record', async () => {
    const cp = await startTestControlPlane(testTemporalOption());
    const fixture = await startFixtureWorker(cp.nats);
    const api = rawClients(cp.address);
    const rolloutId = newRolloutId('life');

    const started = await start(api, fixture, rolloutId, {
      hardwareClasses: ['aarch64-neon-nofp16-cpu-4g'],
    });
    expect(started).toMatchObject({ rolloutId, workflowId: rolloutWorkflowId(rolloutId) });
    expect(started.runId).not.toBe('');
    const description = await fixture.client.workflow
      .getHandle(rolloutWorkflowId(rolloutId))
      .describe();
    expect(description.type).toBe('rolloutWorkflow');
    expect(description.taskQueue).toBe(TASK_QUEUES.orchestrator);

    // Live: the status query, not the record (the stand-in tells them apart by `detail`).
    const live = await eventually(async () => {
      const got = await api.getRollout({ rolloutId }, ADMIN_TOKEN);
      expect(got.summary?.detail).toBe(LIVE_DETAIL);
      return got;
    });
    expect(live.summary).toMatchObject({
      rolloutId,
      phase: 'rolling_out',
      hardwareClasses: 1,
      devicesTotal: 2,
      devicesDone: 1,
      finishedAt: undefined,
    });
    // The workflow got the spec with every default filled in.
    const liveStatus = JSON.parse(live.statusJson) as RolloutStatus;
    expect(liveStatus.spec).toEqual(
      parseRolloutSpec(
        JSON.parse(specJson(rolloutId, { hardwareClasses: liveStatus.spec.hardwareClasses })),
      ),
    );
    expect(liveStatus.spec.waves.percents).toEqual([10, 50, 100]);
    // A worker polls the queue it waits on: nothing to warn about.
    expect(live.warnings).toEqual([]);

    const listed = await api.listRollouts({ pageSize: 0, pageToken: '' }, ADMIN_TOKEN);
    expect(listed.rollouts.map((r) => [r.rolloutId, r.phase])).toEqual([
      [rolloutId, 'rolling_out'],
    ]);
    expect(listed.nextPageToken).toBe('');

    const reason = 'wrong dataset';
    expect(await api.cancelRollout({ rolloutId, reason }, ADMIN_TOKEN)).toEqual({
      cancelled: true,
    });
    const handle = fixture.client.workflow.getHandle(rolloutWorkflowId(rolloutId));
    await eventually(async () => expect((await handle.describe()).status.name).toBe('CANCELLED'));
    // Ended: the record answers, as the workflow left it.
    const ended = await api.getRollout({ rolloutId }, ADMIN_TOKEN);
    expect(ended.summary).toMatchObject({
      phase: 'cancelled',
      detail: 'cancelled: devices restored',
      finishedAt: expect.any(Date) as Date,
    });
    // The reason is in the workflow's history, for whoever looks at it in Temporal.
    const history = await handle.fetchHistory();
    const requested = history.events?.find(
      (e) => e.workflowExecutionCancelRequestedEventAttributes,
    );
    expect(requested?.workflowExecutionCancelRequestedEventAttributes?.cause).toBe(reason);

    // Cancelling what has ended changes nothing.
    expect(await api.cancelRollout({ rolloutId, reason: '' }, ADMIN_TOKEN)).toEqual({
      cancelled: false,
    });
    await expectStatus(
      api.cancelRollout({ rolloutId: 'never-started', reason: '' }, ADMIN_TOKEN),
      status.NOT_FOUND,
      /no rollout never-started/,
    );
    await expectStatus(
      api.getRollout({ rolloutId: 'never-started' }, ADMIN_TOKEN),
      status.NOT_FOUND,
      /no rollout never-started/,
    );
  });

  it('says, in status and from the CLI, that no worker polls the queue a running rollout waits on', async () => {
    // A namespace of its own: in the shared one, the other tests' workers polled a moment ago.
    const { client } = await testTemporal();
    const namespace = `stalled-${randomUUID().slice(0, 8)}`;
    await client.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: msToTs('1 day'),
    });
    const cp = await startTestControlPlane({
      temporal: { address: testStack().temporalAddress, namespace },
    });
    const api = rawClients(cp.address);
    const rolloutId = newRolloutId('stalled');
    // A new namespace takes a moment to be served.
    await eventually(
      () => api.startRollout({ specJson: specJson(rolloutId) }, ADMIN_TOKEN),
      30_000,
    );
    onTestFinished(async () => {
      await new Client({ connection: client.connection, namespace }).workflow
        .getHandle(rolloutWorkflowId(rolloutId))
        .terminate('test finished')
        .catch(() => {});
    });
    // The record an orchestrator worker wrote before it died.
    await writeRecord(cp.nats, {
      rolloutId,
      phase: 'rolling_out',
      detail: 'canary:baking',
      finishedAt: null,
    });

    const got = await api.getRollout({ rolloutId }, ADMIN_TOKEN);
    expect(got.summary).toMatchObject({ phase: 'rolling_out', detail: 'canary:baking' });
    const idle = (type: string) =>
      new RegExp(
        `^no orchestrator worker polls task queue ${TASK_QUEUES.orchestrator} \\(${type} tasks; ` +
          'no poll in 5 minutes(, \\d+ task\\(s\\) waiting)?\\): the rollout cannot advance until one does. ' +
          'Is the orchestrator worker running\\?',
      );
    expect(got.warnings).toEqual([
      expect.stringMatching(idle('workflow')),
      expect.stringMatching(idle('activity')),
      expect.stringMatching(/did not answer its status query; this is the rollout's saved record/),
    ]);

    const cli = await runCli(['rollout', 'status', rolloutId], {
      EDGEFORGE_CONTROL_PLANE: cp.address,
      EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toMatch(
      new RegExp(`warning: no orchestrator worker polls task queue ${TASK_QUEUES.orchestrator}`),
    );
  });

  it('refuses a rollout id that is taken, while its workflow runs and after it ended', async () => {
    const cp = await startTestControlPlane(testTemporalOption());
    const fixture = await startFixtureWorker(cp.nats);
    const api = rawClients(cp.address);
    const rolloutId = newRolloutId('dup');
    await start(api, fixture, rolloutId);

    await expectStatus(
      start(api, fixture, rolloutId),
      status.ALREADY_EXISTS,
      new RegExp(`rollout ${rolloutId} already exists.*another rolloutId`),
    );

    await api.cancelRollout({ rolloutId, reason: '' }, ADMIN_TOKEN);
    await eventually(async () => {
      const got = await api.getRollout({ rolloutId }, ADMIN_TOKEN);
      expect(got.summary?.phase).toBe('cancelled');
    });
    await expectStatus(start(api, fixture, rolloutId), status.ALREADY_EXISTS);
  });

  it('refuses a rollout on a class that a running rollout owns, naming that rollout', async () => {
    const cp = await startTestControlPlane(testTemporalOption());
    const fixture = await startFixtureWorker(cp.nats);
    const api = rawClients(cp.address);
    const rollouts = await new Kvm(cp.nats).create(KV_BUCKETS.rollouts, { history: 1 });
    const lease = (hardwareClass: string, rolloutId: string) =>
      rollouts.put(
        classLeaseKey(hardwareClass),
        JSON.stringify({ rolloutId, hardwareClass, acquiredAt: '', targetSha256: null }),
      );
    const owner = newRolloutId('owner');
    await lease('x86_64-vnni-nofp16-cpu-8g', owner);
    await writeRecord(cp.nats, { rolloutId: owner, phase: 'rolling_out', finishedAt: null });

    await expectStatus(
      start(api, fixture, newRolloutId('second'), {
        hardwareClasses: ['x86_64-vnni-nofp16-cpu-8g'],
      }),
      status.FAILED_PRECONDITION,
      new RegExp(`x86_64-vnni-nofp16-cpu-8g \\(rollout ${owner}\\).*one rollout per class`),
    );
    // Every class (no hardwareClasses) includes the taken one: refused, with the way out.
    await expectStatus(
      start(api, fixture, newRolloutId('all')),
      status.FAILED_PRECONDITION,
      /name the other classes in hardwareClasses/,
    );
    // Another class is free; a lease whose rollout ended is stale and taken over.
    await start(api, fixture, newRolloutId('other'), {
      hardwareClasses: ['aarch64-neon-nofp16-cpu-4g'],
    });
    await writeRecord(cp.nats, { rolloutId: owner, phase: 'succeeded' });
    await start(api, fixture, newRolloutId('after'), {
      hardwareClasses: ['x86_64-vnni-nofp16-cpu-8g'],
    });
  });

  it('refuses a bad spec with INVALID_ARGUMENT naming the field, and starts nothing', async () => {
    const cp = await startTestControlPlane(testTemporalOption());
    const api = rawClients(cp.address);
    const { client } = await testTemporal();
    const cases: [string, RegExp][] = [
      [
        specJson('bad-1', { waves: { percents: [10, 50] } }),
        /^spec_json\.waves\.percents: must rise to 100, got \[10, 50\]/,
      ],
      [
        specJson('bad-2', { dataset: { source: 'mnist' } }),
        /^spec_json\.dataset\.source: is "mnist"; expected one of/,
      ],
      [
        specJson('bad-3', { accuracyBudget: 3, canaries: 0 }),
        /^spec_json\.accuracyBudget: .*; spec_json\.canaries: /,
      ],
      [specJson('bad id'), /^spec_json\.rolloutId: /],
      ['{"rolloutId": ', /^spec_json: is not valid JSON/],
      ['', /^spec_json: is required/],
    ];
    for (const [json, details] of cases) {
      await expectStatus(
        api.startRollout({ specJson: json }, ADMIN_TOKEN),
        status.INVALID_ARGUMENT,
        details,
      );
    }
    for (const id of ['bad-1', 'bad-2', 'bad-3']) {
      await expect(client.workflow.getHandle(rolloutWorkflowId(id)).describe()).rejects.toThrow(
        WorkflowNotFoundError,
      );
    }
    // And only the admin may start one.
    await expectStatus(api.startRollout({ specJson: specJson('ok') }), status.UNAUTHENTICATED);
    await expectStatus(
      api.getRollout({ rolloutId: 'has spaces' }, ADMIN_TOKEN),
      status.INVALID_ARGUMENT,
      /^rollout_id: /,
    );
  });

  it('lists rollouts from their records, newest first, a page at a time', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const base = Date.parse('2025-03-01T00:00:00Z');
    const ids = ['r-a', 'r-b', 'r-c', 'r-d', 'r-e'];
    // r-c and r-d started in the same second: the id breaks the tie.
    const offsets = [0, 60, 120, 120, 180];
    for (const [i, rolloutId] of ids.entries()) {
      await writeRecord(cp.nats, {
        rolloutId,
        startedAt: new Date(base + offsets[i]! * 1000).toISOString(),
      });
    }
    await writeRecord(cp.nats, 'not json');

    const seen: string[] = [];
    let pageToken = '';
    do {
      const page = await api.listRollouts({ pageSize: 2, pageToken }, ADMIN_TOKEN);
      expect(page.rollouts.length).toBeLessThanOrEqual(2);
      seen.push(...page.rollouts.map((r) => r.rolloutId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(['r-e', 'r-c', 'r-d', 'r-b', 'r-a']);

    await expectStatus(
      api.listRollouts({ pageSize: 2, pageToken: 'bm90LWEtdG9rZW4' }, ADMIN_TOKEN),
      status.INVALID_ARGUMENT,
      /^page_token: /,
    );
    await expectStatus(
      api.listRollouts({ pageSize: 5000, pageToken: '' }, ADMIN_TOKEN),
      status.INVALID_ARGUMENT,
      /^page_size: /,
    );
  });

  it('without Temporal: rollout calls fail with FAILED_PRECONDITION and say how to fix it', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const fix = /EDGEFORGE_TEMPORAL_ADDRESS.*`edgeforge up`/;
    await expectStatus(
      api.startRollout({ specJson: specJson('no-temporal') }, ADMIN_TOKEN),
      status.FAILED_PRECONDITION,
      fix,
    );
    await expectStatus(
      api.cancelRollout({ rolloutId: 'no-temporal', reason: '' }, ADMIN_TOKEN),
      status.FAILED_PRECONDITION,
      fix,
    );
    await expectStatus(
      api.getRollout({ rolloutId: 'no-temporal' }, ADMIN_TOKEN),
      status.FAILED_PRECONDITION,
      fix,
    );
    // What the records know is still served, and devices still report.
    await writeRecord(cp.nats, { rolloutId: 'recorded', phase: 'succeeded' });
    const got = await api.getRollout({ rolloutId: 'recorded' }, ADMIN_TOKEN);
    expect(got.summary?.phase).toBe('succeeded');
    expect(await api.cancelRollout({ rolloutId: 'recorded', reason: '' }, ADMIN_TOKEN)).toEqual({
      cancelled: false,
    });
    const device = await enrollDevice(api);
    const report = benchmarkReport('recorded', 'fp16');
    expect((await api.reportBenchmark(report, device.deviceCredential)).recorded).toBe(true);
  });

  it('with Temporal unreachable: UNAVAILABLE naming the address, and devices still report', async () => {
    const port = await closedPort();
    const cp = await startTestControlPlane({
      temporal: { address: `127.0.0.1:${port}`, namespace: 'default' },
    });
    const api = rawClients(cp.address);
    await expectStatus(
      api.startRollout({ specJson: specJson('unreachable') }, ADMIN_TOKEN),
      status.UNAVAILABLE,
      new RegExp(`127\\.0\\.0\\.1:${port}.*\`edgeforge up\``),
    );
    const device = await enrollDevice(api);
    const startedAt = Date.now();
    const report = benchmarkReport('unreachable', 'fp16');
    expect((await api.reportBenchmark(report, device.deviceCredential)).recorded).toBe(true);
    await api.reportStatus(
      {
        event: StatusEvent.STATUS_EVENT_ACTIVATED,
        rolloutId: 'unreachable',
        variant: 'fp16',
        activeModel: undefined,
        detail: '',
      },
      device.deviceCredential,
    );
    // The signals are sent in the background: a dead Temporal does not slow the device down.
    expect(Date.now() - startedAt).toBeLessThan(2_000);
  });

  it("forwards a canary's recorded benchmark reports to the class workflow as signals, no one else's", async () => {
    const cp = await startTestControlPlane(testTemporalOption());
    const fixture = await startFixtureWorker(cp.nats);
    const api = rawClients(cp.address);
    const device = await enrollDevice(api);
    const bystander = await enrollDevice(api);
    const rolloutId = newRolloutId('signals');
    await start(api, fixture, rolloutId, { hardwareClasses: [device.hardwareClass] });
    const classHandle = fixture.client.workflow.getHandle(
      classWorkflowId(rolloutId, device.hardwareClass),
    );
    const received = (check: (r: ReceivedSignals) => void) =>
      eventually(async () => {
        const r = await classHandle.query(receivedSignalsQuery);
        check(r);
        return r;
      });
    await received(() => {}); // the class workflow runs
    // As the class workflow does: the canary's own entry asks it to benchmark for the rollout.
    const desired = await new Kvm(cp.nats).open(KV_BUCKETS.desiredState);
    await desired.put(
      deviceDesiredKey(device.deviceId),
      JSON.stringify({ kind: 'benchmark', rolloutId, candidates: [], settings: {}, issuedAt: '' }),
    );

    // A device that was not asked is recorded (its own business) but never reaches the workflow.
    const unasked = benchmarkReport(rolloutId, 'int8_static_minmax');
    expect((await api.reportBenchmark(unasked, bystander.deviceCredential)).recorded).toBe(true);
    const report = benchmarkReport(rolloutId, 'int8_static_minmax');
    expect((await api.reportBenchmark(report, device.deviceCredential)).recorded).toBe(true);
    await received((r) => expect(r.benchmarks).toHaveLength(1));
    // A repeat is not recorded, so not signalled; a failed benchmark is.
    expect((await api.reportBenchmark(report, device.deviceCredential)).recorded).toBe(false);
    const failed = {
      ...benchmarkReport(rolloutId, 'fp16'),
      latency: undefined,
      error: 'session failed to load',
    };
    expect((await api.reportBenchmark(failed, device.deviceCredential)).recorded).toBe(true);
    const { benchmarks } = await received((r) => expect(r.benchmarks).toHaveLength(2));
    expect(benchmarks.map((b) => b.deviceId)).toEqual([device.deviceId, device.deviceId]);
    expect(benchmarks).toEqual(
      expect.arrayContaining([
        {
          deviceId: device.deviceId,
          variant: 'int8_static_minmax',
          modelSha256: 'b'.repeat(64),
          p50Ms: 1,
          p95Ms: 2.5,
          p99Ms: 3,
          cv: 0.1,
          runs: 100,
          roundP95Ms: [2.4, 2.5, 2.6],
          accuracy: 0.91,
          agreement: 0.98,
          error: null,
        },
        expect.objectContaining({
          deviceId: device.deviceId,
          variant: 'fp16',
          accuracy: null,
          error: 'session failed to load',
        }),
      ]),
    );
  });

  it('counts status reports per cohort in the census of a leased class', async () => {
    const cp = await startTestControlPlane(testTemporalOption());
    const api = rawClients(cp.address);
    const devices = [await enrollDevice(api), await enrollDevice(api), await enrollDevice(api)];
    const hardwareClass = devices[0]!.hardwareClass;
    const rolloutId = newRolloutId('census');
    const target = 'c'.repeat(64);
    const rollouts = await new Kvm(cp.nats).open(KV_BUCKETS.rollouts);
    await rollouts.put(
      classLeaseKey(hardwareClass),
      JSON.stringify({ rolloutId, hardwareClass, acquiredAt: '', targetSha256: target }),
    );
    onTestFinished(() => rollouts.delete(classLeaseKey(hardwareClass)));
    const activeModel = { modelId: 'm', variant: 'int8_static_minmax', version: 2, sha256: target };
    const status = (event: StatusEvent, detail: string) => ({
      event,
      rolloutId,
      variant: 'int8_static_minmax',
      activeModel,
      detail,
    });
    await api.reportStatus(
      status(StatusEvent.STATUS_EVENT_ACTIVATED, 'health check passed'),
      devices[0]!.deviceCredential,
    );
    await api.reportStatus(
      status(StatusEvent.STATUS_EVENT_ACTIVATED, 'health check passed'),
      devices[1]!.deviceCredential,
    );
    // Reported twice: counted once (the census counts devices by their last report).
    for (let i = 0; i < 2; i++) {
      await api.reportStatus(
        {
          ...status(StatusEvent.STATUS_EVENT_REFUSED, 'signature does not verify'),
          activeModel: undefined,
        },
        devices[2]!.deviceCredential,
      );
    }
    const census = await eventually(async () => {
      const entry = await rollouts.get(censusKey(rolloutId, hardwareClass));
      const value = entry!.json<ClassCensus>();
      expect(waveCounts(value, { from: 0, to: 100 }, 1)).toMatchObject({ activated: 2, failed: 1 });
      return value;
    });
    const all = waveCounts(census, { from: 0, to: 100 }, 1);
    expect(all).toMatchObject({ online: 3, servingTarget: 2, activated: 2, failed: 1 });
    expect(all.failures).toEqual([
      {
        deviceId: devices[2]!.deviceId,
        cohort: cohortOf(devices[2]!.deviceId),
        event: 'refused',
        detail: 'signature does not verify',
      },
    ]);
    // Each device is counted in its own cohort.
    const cohort = cohortOf(devices[0]!.deviceId);
    expect(census.cohorts[cohort]!.events.activated).toBeGreaterThanOrEqual(1);
  });

  it('a report for a rollout without a workflow still succeeds for the device and is stored', async () => {
    const cp = await startTestControlPlane(testTemporalOption());
    const api = rawClients(cp.address);
    const device = await enrollDevice(api);
    const report = benchmarkReport('manual-run', 'fp32');
    expect((await api.reportBenchmark(report, device.deviceCredential)).recorded).toBe(true);
    await api.reportStatus(
      {
        event: StatusEvent.STATUS_EVENT_REFUSED,
        rolloutId: 'manual-run',
        variant: 'fp32',
        activeModel: undefined,
        detail: 'signature mismatch',
      },
      device.deviceCredential,
    );
    const kv = await new Kvm(cp.nats).open(KV_BUCKETS.benchmarks);
    const stored = await kv.get(`manual-run.fp32.${device.deviceId}`);
    expect(stored?.json<{ variant: string }>().variant).toBe('fp32');
    expect(cp.registry.get(device.deviceId)?.lastStatus?.detail).toBe('signature mismatch');
  });

  it('answers for a running rollout from its record when its workflow cannot answer', async () => {
    const cp = await startTestControlPlane(testTemporalOption());
    const fixture = await startFixtureWorker(cp.nats);
    const api = rawClients(cp.address);
    const rolloutId = newRolloutId('silent');
    await start(api, fixture, rolloutId);
    await eventually(async () => {
      const got = await api.getRollout({ rolloutId }, ADMIN_TOKEN);
      expect(got.summary?.detail).toBe(LIVE_DETAIL);
    });

    await fixture.stop(); // no worker: the query cannot be answered
    const got = await api.getRollout({ rolloutId }, ADMIN_TOKEN);
    expect(got.summary).toMatchObject({ rolloutId, phase: 'rolling_out', detail: RECORDED_DETAIL });
    // The worker polled a moment ago, so it is not yet called gone; the record is called a record.
    expect(got.warnings).toEqual([
      expect.stringMatching(
        /^the workflow did not answer its status query; this is the rollout's saved record \(of \d{4}-/,
      ),
    ]);
  });
});
