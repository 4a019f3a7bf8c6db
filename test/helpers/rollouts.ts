import { readFile } from 'node:fs/promises';
import type { Worker } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { expect, onTestFinished } from 'vitest';
import { loadManifestKeyPair } from '../../common/manifest.js';
import { parseRolloutSpec } from '../../common/rollout-spec.js';
import {
  rolloutWorkflowId,
  ROLLOUT_QUERIES,
  type RolloutSpec,
  type RolloutStatus,
} from '../../common/rollout.js';
import { createOrchestratorWorker } from '../../workflows/worker.js';
import { rolloutWorkflow } from '../../workflows/definitions/index.js';
import type { EdgeAgent } from '../../agent/index.js';
import { eventually, startTestAgent, type SimulatedDevice } from './agents.js';
import type { TestControlPlane } from './control-plane.js';
import { testNats, testStack, testTemporal, uniqueTaskQueue } from './stack.js';

/** Settings that keep a rollout on the 8×8 digits data set to a minute or two on 2 CPU cores. */
export const TINY_TRAINING = { epochs: 2, batch_size: 64 };
export const TINY_BENCHMARK = { warmupRuns: 2, minRuns: 20, minSeconds: 0.05, threads: 1 };

/** A spec file's JSON for a tiny rollout on digits: small teacher, two epochs, 1 s bakes. */
export function tinySpecJson(rolloutId: string, overrides: Record<string, unknown> = {}) {
  return {
    rolloutId,
    dataset: { source: 'digits' },
    source: {
      kind: 'distill',
      teacher: { source: 'train', architecture: 'small_cnn', training: TINY_TRAINING },
      student: { architecture: 'small_cnn', distill: { training: TINY_TRAINING } },
    },
    accuracyBudget: 0.05,
    maxCandidates: 2,
    canaries: 1,
    waves: { percents: [100], bakeSeconds: 1 },
    benchmark: TINY_BENCHMARK,
    reportTimeoutSeconds: 90,
    ...overrides,
  };
}

/** The same, parsed as the control plane parses it. */
export function tinySpec(rolloutId: string, overrides: Record<string, unknown> = {}): RolloutSpec {
  return parseRolloutSpec(tinySpecJson(rolloutId, overrides));
}

export interface RolloutHarness {
  taskQueue: string;
  worker: Worker;
  start(spec: RolloutSpec): Promise<WorkflowHandle<typeof rolloutWorkflow>>;
}

/**
 * A real orchestrator worker (the production activities, signing with the control plane's key)
 * on a task queue of its own, running until the test ends. Against the run's NATS and Temporal
 * unless `servers` names others (a TestNatsCluster's URL, a Temporal dev server of the test's).
 */
export async function startRolloutWorker(
  cp: TestControlPlane,
  servers: { natsUrl?: string; temporalAddress?: string } = {},
): Promise<RolloutHarness> {
  const { client, workerConnection } = await testTemporal(servers.temporalAddress);
  const taskQueue = uniqueTaskQueue('rollout');
  const pem = await readFile(`${cp.dataDir}/manifest-signing.pem`, 'utf8');
  const worker = await createOrchestratorWorker({
    connection: workerConnection,
    nats: await testNats('orchestrator', servers.natsUrl),
    taskQueue,
    manifestKey: loadManifestKeyPair(pem),
  });
  const running = worker.run();
  onTestFinished(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running;
  });
  return {
    taskQueue,
    worker,
    start: (spec) =>
      client.workflow.start(rolloutWorkflow, {
        taskQueue,
        workflowId: rolloutWorkflowId(spec.rolloutId),
        args: [spec],
      }),
  };
}

/** The control plane started with the run's Temporal, so device reports become signals. */
export function temporalOption() {
  return { temporal: { address: testStack().temporalAddress, namespace: 'default' } };
}

/** Polls the workflow's status query until `check` holds. */
export async function statusWhen(
  handle: WorkflowHandle,
  check: (status: RolloutStatus) => boolean,
  timeoutMs = 300_000,
): Promise<RolloutStatus> {
  return eventually(async () => {
    const status = await handle.query<RolloutStatus>(ROLLOUT_QUERIES.status);
    expect(check(status), `rollout phase ${status.phase}: ${status.detail}`).toBe(true);
    return status;
  }, timeoutMs);
}

/**
 * Two agents of one class: a healthy canary and a second device that fails the health check of
 * every model it activates (a simulated fault). Canaries are drawn at random: name the healthy
 * one in the spec (`canaryDevices: [canary.deviceId]`).
 */
export async function startCanaryAndBrokenAgent(
  controlPlane: string,
  device: SimulatedDevice,
  namePrefix: string,
): Promise<{ canary: EdgeAgent; broken: EdgeAgent }> {
  const canary = await startTestAgent(controlPlane, device, { deviceName: `${namePrefix}-a` });
  const broken = await startTestAgent(
    controlPlane,
    { ...device, simulate: { accuracyFaults: [{ variants: '*', flipShare: 0.9 }] } },
    { deviceName: `${namePrefix}-b` },
  );
  return { canary, broken };
}
