import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, onTestFinished } from 'vitest';
import { EdgeAgent, type EdgeAgentConfig, type SimulatedFaults } from '../../agent/index.js';
import { createLogger } from '../../common/logger.js';
import { ENROLLMENT_TOKEN } from './control-plane.js';
import { CPUINFO_FIXTURES } from './profiles.js';

export interface SimulatedDevice {
  /** A cpuinfo dump in test/fixtures/cpuinfo, without .txt. */
  cpuinfo: string;
  memoryBytes?: number;
  /** Hardware threads; the agent never runs a model with more. At least `cores`. */
  threads?: number;
  /** Physical cores; set it with threads below the dump's core count (1 and 1: a one-thread board). */
  cores?: number;
  /** Hardware faults the device pretends to have (the override file's `simulate` section). */
  simulate?: SimulatedFaults;
}

/**
 * A real edge agent (the same code `edgeforge agent` runs) simulating a device through a profile
 * override file, with its own data dir; stopped after the test.
 */
export async function startTestAgent(
  controlPlane: string,
  device: SimulatedDevice,
  config: Partial<EdgeAgentConfig> = {},
): Promise<EdgeAgent> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-agent-'));
  const overrideFile = join(dir, 'profile.json');
  await writeFile(
    overrideFile,
    JSON.stringify({
      cpuinfoFile: `${CPUINFO_FIXTURES}/${device.cpuinfo}.txt`,
      memoryBytes: device.memoryBytes ?? 4 * 1024 ** 3,
      ...(device.threads ? { threads: device.threads } : {}),
      ...(device.cores ? { cores: device.cores } : {}),
      ...(device.simulate ? { simulate: device.simulate } : {}),
    }),
  );
  const agent = new EdgeAgent({
    controlPlane,
    enrollmentToken: ENROLLMENT_TOKEN,
    dataDir: join(dir, 'data'),
    deviceName: `${device.cpuinfo}-${dir.slice(-6)}`,
    profileOverrideFile: overrideFile,
    metricsAddress: '127.0.0.1:0',
    // Free ports: several agents share one test process.
    servingAddress: '127.0.0.1:0',
    backoff: { baseMs: 50, capMs: 500 },
    logger: createLogger('agent', process.env.EDGEFORGE_LOG_LEVEL ?? 'error'),
    ...config,
  });
  onTestFinished(async () => {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  });
  await agent.start();
  return agent;
}

/** Polls `check` until it holds; tests wait for conditions, never for fixed times. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export { expect };
