import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { REPO_ROOT, type StackEndpoints } from '../../services/stack/index.js';
import { LOCK_FILE } from '../../services/stack/data-dir-lock.js';
import { STATE_FILE, type StackState } from '../../services/stack/stack-state.js';
import { EXIT } from '../../cli/exit-codes.js';
import { eventually } from '../helpers/agents.js';

/** `edgeforge up --no-ui` in `dataDir`, as a user runs it; its output collected. */
function up(dataDir: string) {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', `${REPO_ROOT}cli/main.ts`, 'up', '--no-ui'],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, EDGEFORGE_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  onTestFinished(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    exited,
    get output() {
      return output;
    },
    ready: () =>
      eventually(() => {
        expect(child.exitCode, output).toBeNull();
        expect(output).toMatch(/edgeforge stack is up/);
      }, 240_000),
  };
}

const endpointsIn = (dataDir: string) =>
  JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8')) as StackEndpoints;

/** Whether something accepts TCP connections on host:port. */
const answers = (address: string) =>
  new Promise<boolean>((resolve) => {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), address.split(':').pop()];
    const socket = connect(Number(port), host, () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });

describe('edgeforge up owns its data dir and keeps its addresses', () => {
  it('refuses a second up on the same data dir, touching nothing, and comes back on the same ports', async () => {
    const root = await mkdtemp(join(tmpdir(), 'edgeforge-cli-up-'));
    onTestFinished(() => rm(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');

    const first = up(dataDir);
    await first.ready();
    const before = endpointsIn(dataDir);
    const state = JSON.parse(readFileSync(join(dataDir, STATE_FILE), 'utf8')) as StackState;
    // The password is in the URL file and the state file (0600), never on the screen.
    expect(first.output).not.toContain(state.natsSecrets!.servicePassword);
    expect(first.output).toContain(`export EDGEFORGE_NATS_URL="$(cat ${before.natsUrlFile})"`);
    expect(readFileSync(before.natsUrlFile, 'utf8').trim()).toBe(before.natsUrl);

    // A second stack on the same store and SQLite file would corrupt the first: refused.
    const second = up(dataDir);
    expect(await second.exited).toBe(EXIT.prerequisite);
    expect(second.output).toMatch(
      new RegExp(`is in use by another edgeforge stack \\(pid ${first.child.pid} `),
    );
    // The first one is untouched: its endpoints file is there, its control plane answers.
    expect(endpointsIn(dataDir)).toEqual(before);
    expect(await answers(before.controlPlaneAddress)).toBe(true);

    first.child.kill('SIGINT');
    await first.exited;
    expect(existsSync(join(dataDir, 'endpoints.json'))).toBe(false);
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(false);

    // Started again: the same addresses and NATS URL, so devices and shells find it again.
    const third = up(dataDir);
    await third.ready();
    const after = endpointsIn(dataDir);
    expect(after.controlPlaneAddress).toBe(before.controlPlaneAddress);
    expect(after.natsUrl).toBe(before.natsUrl);
    expect(after.temporalAddress).toBe(before.temporalAddress);
    expect(after.controlPlaneMetricsUrl).toBe(before.controlPlaneMetricsUrl);
    third.child.kill('SIGINT');
    await third.exited;
  });

  it('takes over a data dir whose stack was killed -9', async () => {
    const root = await mkdtemp(join(tmpdir(), 'edgeforge-cli-up-'));
    onTestFinished(() => rm(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    const first = up(dataDir);
    await first.ready();
    const before = endpointsIn(dataDir);
    // The whole process group would go with a real kill -9 of `up`; its children are tethered.
    first.child.kill('SIGKILL');
    await first.exited;
    await eventually(async () => expect(await answers(before.controlPlaneAddress)).toBe(false));

    const again = up(dataDir);
    await again.ready();
    expect(endpointsIn(dataDir).controlPlaneAddress).toBe(before.controlPlaneAddress);
    again.child.kill('SIGINT');
    await again.exited;
  });
});
