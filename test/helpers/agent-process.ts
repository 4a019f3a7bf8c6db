import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { onTestFinished } from 'vitest';
import { ManagedProcess, REPO_ROOT } from '../../services/stack/index.js';
import type { SimulatedDevice } from './agents.js';
import { ENROLLMENT_TOKEN } from './control-plane.js';
import { CPUINFO_FIXTURES } from './profiles.js';

export interface AgentProcess {
  deviceId: string;
  inferenceUrl: string;
  /** The agent's data dir: `<dir>/data`. */
  dataDir: string;
  process: ManagedProcess;
}

/**
 * The agent as a separate process (`agent/main.ts`, what `edgeforge agent` runs), for tests that
 * kill it. Everything it keeps lives in `dir`, so starting it again on the same `dir` is the same
 * device coming back. Resolves once it printed its ready line; stopped after the test.
 */
export async function startAgentProcess(
  controlPlane: string,
  device: SimulatedDevice,
  dir: string,
): Promise<AgentProcess> {
  const dataDir = join(dir, 'data');
  const profile = join(dir, 'profile.json');
  await mkdir(dir, { recursive: true });
  await writeFile(
    profile,
    JSON.stringify({
      cpuinfoFile: `${CPUINFO_FIXTURES}/${device.cpuinfo}.txt`,
      memoryBytes: device.memoryBytes ?? 4 * 1024 ** 3,
    }),
  );
  const flags = {
    'control-plane': controlPlane,
    'data-dir': dataDir,
    'device-name': `${device.cpuinfo}-${basename(dir)}`,
    profile,
    metrics: '127.0.0.1:0',
    serve: '127.0.0.1:0',
  };
  const agent = new ManagedProcess({
    name: 'edgeforge agent',
    command: process.execPath,
    args: [
      '--import',
      'tsx',
      `${REPO_ROOT}agent/main.ts`,
      ...Object.entries(flags).flatMap(([flag, value]) => [`--${flag}`, value]),
    ],
    cwd: REPO_ROOT,
    // The token in the environment, as on a device: never on the command line.
    env: {
      ...process.env,
      EDGEFORGE_ENROLLMENT_TOKEN: ENROLLMENT_TOKEN,
      EDGEFORGE_LOG_LEVEL: process.env.EDGEFORGE_LOG_LEVEL ?? 'warn',
    },
    logFile: join(dir, 'agent.log'),
  });
  onTestFinished(() => agent.stop());
  const [, deviceId, inferenceUrl] = await agent.waitForLine(
    /^agent ready device_id=(\S+) .* inference_url=(\S+)$/,
    60_000,
  );
  return { deviceId: deviceId!, inferenceUrl: inferenceUrl!, dataDir, process: agent };
}
