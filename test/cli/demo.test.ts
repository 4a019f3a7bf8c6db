import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli } from '../helpers/cli.js';

const CLASSES = [
  'x86_64-vnni-nofp16-cpu-32g',
  'x86_64-avx2-nofp16-cpu-16g',
  'aarch64-neon-nofp16-cpu-4g',
  'x86_64-sse-nofp16-cpu-1g',
];

/**
 * `edgeforge demo --quick` as a user runs it: its own embedded stack (nats-server, Temporal, the
 * control plane, gpu and orchestrator workers) in a fresh data dir, four real `edgeforge agent`
 * processes, a rollout through StartRollout, the result table. Twice: the second run loads the
 * teacher the first one cached.
 */
describe('edgeforge demo --quick', () => {
  it('ends with a result table and result files, and reuses its teacher the next time', async () => {
    const root = await mkdtemp(join(tmpdir(), 'edgeforge-cli-demo-'));
    onTestFinished(() => rm(root, { recursive: true, force: true }));
    const env = { EDGEFORGE_DATA_DIR: join(root, 'data'), EDGEFORGE_LOG_LEVEL: 'warn' };
    const args = ['demo', '--quick', '--cache-dir', join(root, 'cache')];

    const first = await runCli(args, env, 600_000);
    expect(first.code, `${first.stderr}\n${first.stdout}`).toBe(0);
    expect(first.stderr).toMatch(/training runs on the CPU|training on the GPU/);
    expect(first.stderr).toMatch(/4 agents enrolled/);
    for (const cls of CLASSES) {
      expect(first.stderr).toContain(cls);
      // One row per class: devices, chosen variant, size, latencies, accuracy.
      expect(first.stdout).toMatch(
        new RegExp(
          `^${cls} +1/1 +\\S+ +[\\d.]+ [kM]B +[\\d.]+ ms +[\\d.]+ ms +[\\d.]+ ms +[\\d.]+%`,
          'm',
        ),
      );
    }
    expect(first.stdout).toMatch(/^rollout demo-\d{8}-\d{6}: succeeded in /m);
    expect(first.stderr).toMatch(/teacher: training small_cnn now/);
    expect(first.stderr).toMatch(/cached the teacher: .*model\.pt/);
    const demoDir = join(root, 'data', 'demo');
    for (const name of ['result.md', 'result.json', 'result.svg']) {
      expect(existsSync(join(demoDir, name)), name).toBe(true);
      expect(first.stderr).toContain(join(demoDir, name));
    }
    expect(await readFile(join(demoDir, 'result.md'), 'utf8')).toMatch(
      /## Chosen variant per hardware class/,
    );
    // The simulated devices' profile override files are in the data dir.
    expect(readdirSync(join(demoDir, 'agents')).sort()).toEqual([
      'demo-celeron-1g',
      'demo-pi4-1thread',
      'demo-ryzen-avx2',
      'demo-xeon-vnni',
    ]);
    expect(first.stderr).toMatch(/wall time: +\S+ in all: stack /);

    const second = await runCli(args, env, 600_000);
    expect(second.code, `${second.stderr}\n${second.stdout}`).toBe(0);
    expect(second.stderr).toMatch(/teacher: the small_cnn trained by demo-\d{8}-\d{6}/);
    expect(second.stderr).not.toMatch(/cached the teacher/);
    expect(second.stdout).toMatch(/: succeeded in /);
  }, 1_300_000);
});
