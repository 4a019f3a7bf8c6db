import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { buildAgentPackage } from '../../scripts/build-agent.js';
import { ManagedProcess, REPO_ROOT } from '../../services/stack/index.js';
import { eventually } from '../helpers/agents.js';
import {
  ENROLLMENT_TOKEN,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
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

const run = promisify(execFile);
const MODEL = { sampleShape: [16], classes: 4 };

let dir: string;
let tarball: string;
let prefix: string;

/** The packed agent, installed as a device installs it: the tarball and Node, no repository. */
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeforge-packed-agent-'));
  tarball = await buildAgentPackage(join(dir, 'pack'));
  prefix = join(dir, 'device', 'opt');
  await run(
    'sh',
    [join(REPO_ROOT, 'deploy/agent/install.sh'), '--no-service', '--prefix', prefix, tarball],
    {
      // Nothing of the repository's: a device's npm resolves from its registry (or cache).
      cwd: dir,
    },
  );
}, 300_000);

afterAll(() => rm(dir, { recursive: true, force: true }));

beforeEach(async () => {
  await resetFleetState(await testNats('reset'));
});

/** The shipped systemd unit as install.sh writes it: node by its path, the installed prefix. */
async function installedUnit(): Promise<string> {
  const shipped = await readFile(
    join(prefix, 'lib/node_modules/edgeforge-agent/dist/deploy/edgeforge-agent.service'),
    'utf8',
  );
  return shipped
    .replace('/usr/bin/env node', process.execPath)
    .replaceAll('/opt/edgeforge-agent', prefix);
}

/**
 * Starts the installed agent as the systemd unit does (its ExecStart), from a directory outside
 * the repository.
 */
async function startInstalledAgent(controlPlane: string, name: string) {
  const [command, ...execArgs] = /^ExecStart=(.*)$/m.exec(await installedUnit())![1]!.split(' ');
  const home = join(dir, 'device', name);
  await mkdir(home, { recursive: true });
  const tokenFile = join(home, 'enrollment-token');
  await writeFile(tokenFile, `${ENROLLMENT_TOKEN}\n`, { mode: 0o600 });
  const agent = new ManagedProcess({
    name: 'edgeforge-agent',
    command: command!,
    args: [
      ...execArgs,
      ...['--control-plane', controlPlane, '--data-dir', join(home, 'state')],
      ...['--device-name', name, '--metrics', '127.0.0.1:0', '--serve', '127.0.0.1:0'],
    ],
    cwd: home,
    env: {
      PATH: process.env.PATH,
      HOME: home,
      EDGEFORGE_ENROLLMENT_TOKEN_FILE: tokenFile,
      EDGEFORGE_LOG_LEVEL: 'warn',
    },
    logFile: join(home, 'agent.log'),
  });
  onTestFinished(() => agent.stop());
  const [, deviceId, inferenceUrl] = await agent.waitForLine(
    /^agent ready device_id=(\S+) .* inference_url=(\S+)$/,
    60_000,
  );
  return { deviceId: deviceId!, inferenceUrl: inferenceUrl!, process: agent };
}

describe('the packed agent', () => {
  it('is one bundled file plus onnxruntime-node, with the service files, and says its version', async () => {
    const { stdout: listing } = await run('tar', ['-tzf', tarball]);
    expect(listing.trim().split('\n').sort()).toEqual([
      'package/README.md',
      'package/dist/deploy/agent.env',
      'package/dist/deploy/edgeforge-agent.service',
      'package/dist/deploy/install.sh',
      'package/dist/edgeforge-agent.mjs',
      'package/dist/edgeforge-agent.mjs.LEGAL.txt',
      'package/package.json',
    ]);
    const installed = join(prefix, 'lib/node_modules/edgeforge-agent');
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as {
      version: string;
      dependencies: Record<string, string>;
    };
    expect(Object.keys(manifest.dependencies)).toEqual(['onnxruntime-node']);
    const { stdout: version } = await run(join(prefix, 'bin/edgeforge-agent'), ['--version']);
    expect(version.trim()).toBe(manifest.version);
    // The install script kept this machine's ONNX Runtime build only.
    const { stdout: builds } = await run('find', [installed, '-name', 'onnxruntime_binding.node']);
    expect(builds.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`/linux/${process.arch}/onnxruntime_binding\\.node$`)),
    ]);
  });

  it('ships a systemd unit that systemd accepts, sandboxed (exposure at most 4 of 10)', async () => {
    const unitDir = join(dir, 'unit');
    await mkdir(unitDir, { recursive: true });
    const unit = join(unitDir, 'edgeforge-agent.service');
    await writeFile(unit, await installedUnit());
    await run('systemd-analyze', ['verify', unit]);
    const { stdout } = await run('systemd-analyze', [
      'security',
      '--offline=yes',
      // Tenths: fails above an exposure of 4.0.
      '--threshold=40',
      unit,
    ]);
    expect(stdout).toMatch(/Overall exposure level for edgeforge-agent\.service: [0-3]\.\d/);
  });

  it('run as its systemd unit runs it: enrolls, receives a signed model over NATS, checks it and serves it', async () => {
    const cp = await startTestControlPlane();
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    const agent = await startInstalledAgent(cp.address, 'packed-1');
    const device = cp.registry.get(agent.deviceId);
    expect(device?.agentVersion).toBe('0.1.0');

    const release = await orchestrator.publish({
      model: hotFeatureClassifier({ ...MODEL, scale: 4 }),
      holdout: npzBytes(matchingHoldout({ ...MODEL, samples: 64 })),
      ...MODEL,
      variant: 'packed',
      version: 1,
      hardwareClasses: [device!.hardwareClass],
    });
    await orchestrator.run(agent.deviceId, 'r-packed', release);
    await eventually(() =>
      expect(cp.registry.get(agent.deviceId)?.lastStatus).toMatchObject({
        event: 'STATUS_EVENT_ACTIVATED',
        variant: 'packed',
      }),
    );
    expect(await servedModel(agent.inferenceUrl)).toMatchObject({
      variant: 'packed',
      sha256: release.manifest.model.sha256,
    });
    const answer = await infer(agent.inferenceUrl, hotSample(2));
    expect(answer.status).toBe(200);
    expect(topClass(answer.body)).toBe(2);
  });
});
