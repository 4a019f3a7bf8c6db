import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { SignedManifest } from '../../common/manifest.js';
import { startAgentProcess, type AgentProcess } from '../helpers/agent-process.js';
import { eventually } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import {
  hotSample,
  infer,
  servedModel,
  topClass,
  TestOrchestrator,
} from '../helpers/distribution.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../helpers/onnx-models.js';
import { testNats } from '../helpers/stack.js';

/**
 * A 4 MB model with 500 holdout samples: its health check runs long enough (a few tenths of a
 * second) to kill the agent in the middle of it reliably.
 */
const BIG = { sampleShape: [1, 32, 32], classes: 1000 };
const HOLDOUT = npzBytes(matchingHoldout({ ...BIG, samples: 500 }));
const DEVICE = { cpuinfo: 'raspberry-pi-4' };

async function setUp() {
  const cp = await startTestControlPlane();
  const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-crash-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const agent = await startAgentProcess(cp.address, DEVICE, dir);
  const hardwareClasses = [cp.registry.get(agent.deviceId)!.hardwareClass];
  const publish = (variant: string, version: number) =>
    orchestrator.publish({
      model: hotFeatureClassifier({ ...BIG, scale: version + 3 }),
      holdout: HOLDOUT,
      ...BIG,
      variant,
      version,
      hardwareClasses,
    });
  const [old, next] = [await publish('old', 1), await publish('new', 2)];
  const lastStatus = () => cp.registry.get(agent.deviceId)?.lastStatus;
  await orchestrator.run(agent.deviceId, 'r-old', old);
  await eventually(() =>
    expect(lastStatus()).toMatchObject({ event: 'STATUS_EVENT_ACTIVATED', variant: 'old' }),
  );
  return { cp, orchestrator, dir, agent, old, next, lastStatus };
}

/**
 * Kills the agent with SIGKILL in the middle of its `attempt`-th bring-up of `model`: once its
 * crash-loop marker counts that attempt, which it writes before loading the model.
 */
async function killDuringActivation(
  agent: AgentProcess,
  model: SignedManifest,
  attempt = 1,
): Promise<void> {
  const marker = join(agent.dataDir, 'activations-in-progress.json');
  const attempts = async () => {
    const text = await readFile(marker, 'utf8').catch(() => '{}');
    return (JSON.parse(text) as Record<string, number>)[model.manifest.model.sha256] ?? 0;
  };
  const deadline = Date.now() + 60_000;
  while ((await attempts()) < attempt) {
    if (Date.now() > deadline)
      throw new Error(`the agent never began activating ${model.manifest.variant}`);
    await sleep(2);
  }
  agent.process.kill('SIGKILL');
  await agent.process.exited;
}

describe('an agent killed during activation', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('comes back serving one complete model, old or new, then finishes the activation', async () => {
    const { cp, orchestrator, dir, agent, old, next, lastStatus } = await setUp();
    await orchestrator.run(agent.deviceId, 'r-new', next);
    await killDuringActivation(agent, next);

    const back = await startAgentProcess(cp.address, DEVICE, dir);
    const served = await servedModel(back.inferenceUrl);
    expect([old.manifest.model.sha256, next.manifest.model.sha256]).toContain(
      typeof served === 'number' ? served : served.sha256,
    );
    const { status, body } = await infer(back.inferenceUrl, hotSample(9, 1024));
    expect([status, topClass(body)]).toEqual([200, 9]);

    // The revision was not recorded as applied, so the agent applies it again.
    await eventually(() =>
      expect(lastStatus()).toMatchObject({ event: 'STATUS_EVENT_ACTIVATED', variant: 'new' }),
    );
    expect(await servedModel(back.inferenceUrl)).toMatchObject({
      sha256: next.manifest.model.sha256,
    });
  });

  it('gives up a model that took it down on three activations and keeps the old one', async () => {
    const { cp, orchestrator, dir, agent, next, lastStatus } = await setUp();
    await orchestrator.run(agent.deviceId, 'r-new', next);
    // Three activations of the new model, each ending in the agent's death, as a model that
    // crashes ONNX Runtime would end them.
    let current = agent;
    for (let crash = 1; crash <= 3; crash++) {
      await killDuringActivation(current, next, crash);
      current = await startAgentProcess(cp.address, DEVICE, dir);
    }
    await eventually(() =>
      expect(lastStatus()).toMatchObject({
        event: 'STATUS_EVENT_ROLLED_BACK',
        variant: 'new',
        detail:
          'health_check_failed: hot-feature new v2 took the agent down on 3 activations in a row; ' +
          'given up; still serving hot-feature old v1',
      }),
    );
    expect(await servedModel(current.inferenceUrl)).toMatchObject({ variant: 'old', version: 1 });
  });
});
