import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { TASK_QUEUES } from '../../common/names.js';
import { ROLLOUT_WORKFLOW_TYPE, rolloutWorkflowId } from '../../common/rollout.js';
import { ManagedProcess, REPO_ROOT } from '../../services/stack/index.js';
import type { rolloutWorkflow } from '../../workflows/definitions/index.js';
import { startTestAgent } from '../helpers/agents.js';
import {
  resetFleetState,
  startTestControlPlane,
  type TestControlPlane,
} from '../helpers/control-plane.js';
import { servedModel } from '../helpers/distribution.js';
import { statusWhen, temporalOption, tinySpec } from '../helpers/rollouts.js';
import { testNats, testStack, testTemporal } from '../helpers/stack.js';

/** The orchestrator worker as its own process (workflows/main.ts), so that it can be SIGKILLed. */
async function startOrchestratorProcess(
  cp: TestControlPlane,
  dir: string,
): Promise<ManagedProcess> {
  const orchestrator = new ManagedProcess({
    name: 'orchestrator worker',
    command: process.execPath,
    args: ['--import', 'tsx', `${REPO_ROOT}workflows/main.ts`],
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      EDGEFORGE_TEMPORAL_ADDRESS: testStack().temporalAddress,
      EDGEFORGE_NATS_URL: testStack().natsUrl,
      EDGEFORGE_MANIFEST_KEY_FILE: join(cp.dataDir, 'manifest-signing.pem'),
      EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN: '127.0.0.1:0',
      EDGEFORGE_LOG_LEVEL: 'info',
    },
    logFile: join(dir, `orchestrator-${Date.now()}.log`),
  });
  onTestFinished(() => orchestrator.stop());
  await orchestrator.waitForLine(/orchestrator worker ready/, 90_000);
  return orchestrator;
}

describe('orchestrator worker crash', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('a rollout whose orchestrator is SIGKILLed mid-rollout completes on a new one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-crash-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const cp = await startTestControlPlane(temporalOption());
    const agents = [
      await startTestAgent(cp.address, { cpuinfo: 'intel-xeon-gold-6242-cascade-lake' }),
      await startTestAgent(cp.address, { cpuinfo: 'intel-xeon-gold-6242-cascade-lake' }),
    ];
    const first = await startOrchestratorProcess(cp, dir);
    const { client } = await testTemporal();
    const spec = tinySpec(`crash-${Date.now()}`, {
      waves: { percents: [100], bakeSeconds: 3, maxFailedShare: 0.2, maxP95Regression: 10 },
    });
    // The production worker polls the production task queue; no other test runs one.
    const handle = await client.workflow.start<typeof rolloutWorkflow>(ROLLOUT_WORKFLOW_TYPE, {
      taskQueue: TASK_QUEUES.orchestrator,
      workflowId: rolloutWorkflowId(spec.rolloutId),
      args: [spec],
    });
    onTestFinished(async () => {
      await handle.terminate().catch(() => {});
    });

    // Kill it while the canary wave is live on a device: the worst moment for a device.
    await statusWhen(handle, (s) => s.classes.some((c) => c.waves[0]?.state === 'baking'));
    first.kill('SIGKILL');
    await first.stop();
    await startOrchestratorProcess(cp, dir);

    const status = await handle.result();
    expect(status.phase, status.detail).toBe('succeeded');
    const [cls] = status.classes;
    expect(cls!.devicesDone).toBe(2);
    for (const agent of agents) {
      expect(await servedModel(agent.inferenceUrl!)).toMatchObject({ sha256: cls!.chosen!.sha256 });
    }
  }, 300_000);
});
