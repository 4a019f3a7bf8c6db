import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { loadManifestKeyPair } from '../../common/manifest.js';
import { TASK_QUEUES } from '../../common/names.js';
import type { RolloutStatus } from '../../common/rollout.js';
import { createOrchestratorWorker } from '../../workflows/worker.js';
import { startTestAgent } from '../helpers/agents.js';
import { runCli } from '../helpers/cli.js';
import {
  ADMIN_TOKEN,
  resetFleetState,
  startTestControlPlane,
  type TestControlPlane,
} from '../helpers/control-plane.js';
import { temporalOption, tinySpecJson } from '../helpers/rollouts.js';
import { testNats, testStack, testTemporal } from '../helpers/stack.js';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-cli-rollout-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function specFile(dir: string, name: string, spec: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, typeof spec === 'string' ? spec : JSON.stringify(spec, null, 2));
  return file;
}

/**
 * The orchestrator worker on the production task queue, which the control plane's StartRollout
 * uses; stopped after the test. Test files run one at a time, so no other worker takes its tasks.
 */
async function startOrchestrator(cp: TestControlPlane): Promise<void> {
  const { workerConnection } = await testTemporal();
  const pem = await readFile(`${cp.dataDir}/manifest-signing.pem`, 'utf8');
  const worker = await createOrchestratorWorker({
    connection: workerConnection,
    nats: await testNats('orchestrator'),
    taskQueue: TASK_QUEUES.orchestrator,
    manifestKey: loadManifestKeyPair(pem),
  });
  const running = worker.run();
  onTestFinished(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running;
  });
}

describe('edgeforge rollout: mistakes a user makes', () => {
  it('names the bad field of a spec file, before any service is needed (exit 2)', async () => {
    const dir = await tempDir();
    const down = { EDGEFORGE_CONTROL_PLANE: '127.0.0.1:1', EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN };

    const typo = await specFile(dir, 'typo.json', {
      dataset: { source: 'digits' },
      source: { kind: 'distill', student: { architecture: 'small_cnnn' } },
    });
    const r1 = await runCli(['rollout', 'start', typo], down);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(
      new RegExp(
        `spec file ${typo}: source\\.student\\.architecture: is "small_cnnn"; expected one of .*small_cnn`,
      ),
    );

    const waves = await specFile(
      dir,
      'waves.yaml',
      [
        'dataset: { source: digits }',
        'source: { kind: distill, student: { architecture: small_cnn } }',
        'waves: { percents: [50, 10] }',
        'accuracyBudget: 3',
      ].join('\n'),
    );
    const r2 = await runCli(['rollout', 'start', waves], down);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/accuracyBudget: must be from 0 to 1, got 3/);
    expect(r2.stderr).toMatch(/waves\.percents: must rise to 100/);

    const broken = await specFile(dir, 'broken.json', '{ "dataset": { "source": "digits" }, ');
    const r3 = await runCli(['rollout', 'start', broken], down);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/is not valid JSON/);

    const r4 = await runCli(['rollout', 'start', join(dir, 'missing.json')], down);
    expect(r4.code).toBe(2);
    expect(r4.stderr).toMatch(
      /missing\.json: no such file.*docs\/examples\/rollout-fashion-mnist\.json/,
    );
  });

  it('the shipped example spec is valid', async () => {
    // Valid spec, unreachable control plane: it gets past the spec and fails on the address.
    const r = await runCli(['rollout', 'start', 'docs/examples/rollout-fashion-mnist.json'], {
      EDGEFORGE_CONTROL_PLANE: '127.0.0.1:1',
      EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    expect(r.stderr).not.toMatch(/spec file/);
    expect(r.code).toBe(3);
  });

  it('names the unreachable address and `edgeforge up` (exit 3)', async () => {
    const env = { EDGEFORGE_CONTROL_PLANE: '127.0.0.1:1', EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN };
    for (const args of [
      ['rollout', 'list'],
      ['rollout', 'status', 'r-1'],
      ['rollout', 'cancel', 'r-1'],
    ]) {
      const r = await runCli(args, env);
      expect(r.code, args.join(' ')).toBe(3);
      expect(r.stderr).toMatch(/cannot reach the control plane at 127\.0\.0\.1:1.*edgeforge up/s);
    }
    const none = await runCli(['rollout', 'list'], {
      EDGEFORGE_CONTROL_PLANE: '',
      EDGEFORGE_ADMIN_TOKEN: '',
    });
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(
      /no control plane to talk to: start the embedded stack with `edgeforge up`/,
    );
  });

  it('refuses bad flags and arguments with usage (exit 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['rollout', 'start', 'x.json', '--bogus'], /unknown option '--bogus'/],
      [['rollout', 'watch'], /missing required argument 'rolloutId'/],
      [['rollout', 'list', '--limit', '0'], /--limit.*expected a whole number above 0/],
      [['rollout', 'watch', 'r-1', '--interval', 'soon'], /--interval.*expected seconds above 0/],
      [['rollout'], /Usage: edgeforge rollout/],
      [['rollouts'], /unknown command 'rollouts'/],
      [['demo', '--quik'], /unknown option '--quik'.*Did you mean --quick\?/s],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });

  it('an unknown rollout is NOT_FOUND (exit 1), an invalid id INVALID_ARGUMENT (exit 2)', async () => {
    const cp = await startTestControlPlane(temporalOption());
    const env = { EDGEFORGE_CONTROL_PLANE: cp.address, EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN };
    const missing = await runCli(['rollout', 'status', 'no-such-rollout'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/NOT_FOUND: no rollout no-such-rollout/);
    const invalid = await runCli(['rollout', 'status', 'not/an/id'], env);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/INVALID_ARGUMENT: rollout_id/);
  });
});

describe('edgeforge rollout against the real stack', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('starts, watches, lists and shows a rollout, and writes the result files', async () => {
    const cp = await startTestControlPlane(temporalOption());
    await startOrchestrator(cp);
    const vnni = await startTestAgent(cp.address, { cpuinfo: 'intel-xeon-gold-6242-cascade-lake' });
    const pi = await startTestAgent(cp.address, {
      cpuinfo: 'raspberry-pi-4',
      threads: 1,
      cores: 1,
    });
    const dir = await tempDir();
    const rolloutId = `cli-${Date.now()}`;
    const file = await specFile(dir, 'spec.json', tinySpecJson(rolloutId));
    const env = {
      EDGEFORGE_CONTROL_PLANE: cp.address,
      EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN,
      // Lets the watcher read training progress from the workflow's activities.
      EDGEFORGE_TEMPORAL_ADDRESS: testStack().temporalAddress,
    };

    const out = join(dir, 'result');
    const run = await runCli(['rollout', 'start', file, '--watch', '--out', out], env, 400_000);
    expect(run.code, run.stderr).toBe(0);
    // Progress (stderr, a log since it is not a terminal), then the table (stdout).
    expect(run.stderr).toMatch(new RegExp(`started rollout ${rolloutId}`));
    expect(run.stderr).toMatch(/\]\s+preparing teacher/);
    expect(run.stderr).toMatch(/\]\s+rolling out/);
    expect(run.stderr).toMatch(
      new RegExp(`${vnni.hardwareClass}\\s+\\S.*devices 1/1 \\[##########\\]`),
    );
    expect(run.stdout).toMatch(new RegExp(`^rollout ${rolloutId}: succeeded in `, 'm'));
    expect(run.stdout).toMatch(/HARDWARE CLASS +DEVICES +CHOSEN +SIZE +P50 +P95 +P99 +ACCURACY/);
    for (const cls of [vnni.hardwareClass!, pi.hardwareClass!]) {
      expect(run.stdout).toMatch(new RegExp(`^${cls} +1/1 +\\S+ +\\d.* kB +[\\d.]+ ms`, 'm'));
      expect(run.stdout).toMatch(new RegExp(`^${cls} → \\S+: `, 'm'));
    }
    expect(run.stdout).toMatch(/teacher_fp32 +reference \(teacher\)/);
    for (const name of ['result.md', 'result.json', 'result.svg']) {
      expect(existsSync(join(out, name)), name).toBe(true);
    }
    expect(await readFile(join(out, 'result.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    const saved = JSON.parse(await readFile(join(out, 'result.json'), 'utf8')) as {
      phase: string;
      classes: { chosen: { variant: string } | null }[];
    };
    expect(saved.phase).toBe('succeeded');
    expect(saved.classes.every((c) => c.chosen !== null)).toBe(true);

    const list = await runCli(['rollout', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(`^${rolloutId} +succeeded +${rolloutId}-small_cnn +2 +2/2`, 'm'),
    );

    const status = await runCli(['rollout', 'status', rolloutId, '--json'], env);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout) as RolloutStatus;
    expect(parsed.phase).toBe('succeeded');
    expect(parsed.classes.map((c) => c.hardwareClass).sort()).toEqual(
      [vnni.hardwareClass, pi.hardwareClass].sort(),
    );

    const again = await runCli(['rollout', 'start', file], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(new RegExp(`ALREADY_EXISTS: rollout ${rolloutId} already exists`));

    const cancel = await runCli(['rollout', 'cancel', rolloutId], env);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(/had already finished \(succeeded\): nothing to cancel/);
  });

  it('cancels a running rollout; watching it then ends with exit 1', async () => {
    const cp = await startTestControlPlane(temporalOption());
    await startOrchestrator(cp);
    await startTestAgent(cp.address, { cpuinfo: 'amd-ryzen-9-5950x-zen3' });
    const dir = await tempDir();
    const rolloutId = `cli-cancel-${Date.now()}`;
    const file = await specFile(
      dir,
      'spec.json',
      tinySpecJson(rolloutId, {
        // Long enough to still be running when the cancel arrives.
        source: {
          kind: 'distill',
          teacher: { source: 'train', architecture: 'small_cnn', training: { epochs: 30 } },
          student: { architecture: 'small_cnn' },
        },
      }),
    );
    const env = { EDGEFORGE_CONTROL_PLANE: cp.address, EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN };
    const start = await runCli(['rollout', 'start', file, '--json'], env);
    expect(start.code, start.stderr).toBe(0);
    expect(JSON.parse(start.stdout)).toMatchObject({
      rolloutId,
      workflowId: `rollout-${rolloutId}`,
    });

    const running = await runCli(['rollout', 'status', rolloutId], env);
    expect(running.code).toBe(0);
    expect(running.stderr).toMatch(
      new RegExp(`rollout ${rolloutId} +(preparing teacher|distilling)`),
    );

    const cancel = await runCli(
      ['rollout', 'cancel', rolloutId, '--reason', 'testing cancel'],
      env,
    );
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(/cancelling rollout .*earlier model/);

    const watched = await runCli(['rollout', 'watch', rolloutId], env, 120_000);
    expect(watched.code).toBe(1);
    expect(watched.stdout).toMatch(new RegExp(`rollout ${rolloutId}: cancelled`));
  });
});
