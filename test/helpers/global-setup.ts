import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import {
  loadToolchain,
  startGpuWorker,
  startNatsServer,
  startTemporalDevServer,
} from '../../services/stack/index.js';
import { redactUrl } from '../../common/nats.js';
import type { TestStack } from './stack.js';

const DIR_PREFIX = 'edgeforge-test-';

/** A run killed with SIGKILL could not delete its temp dir; the next run does. */
async function removeDirsOfDeadRuns(): Promise<void> {
  for (const name of await readdir(tmpdir())) {
    const pid = Number(name.slice(DIR_PREFIX.length).split('-')[0]);
    if (!name.startsWith(DIR_PREFIX) || !Number.isInteger(pid) || isAlive(pid)) continue;
    await rm(join(tmpdir(), name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Starts one real nats-server (JetStream), Temporal dev server (SQLite) and gpu worker for the
 * whole integration run, on ports chosen now, in a fresh temp dir; stops them afterwards. The
 * processes are tethered to this one, so they stop even when the run is interrupted or killed.
 * EDGEFORGE_KEEP_TEST_LOGS=1 keeps their logs.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const toolchain = loadToolchain();
  await removeDirsOfDeadRuns();
  const dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const started = Date.now();
  const [nats, temporal] = await Promise.all([
    startNatsServer({
      binary: toolchain.natsServer,
      storeDir: join(dir, 'jetstream'),
      logFile: join(dir, 'nats-server.log'),
    }),
    startTemporalDevServer({
      binary: toolchain.temporal,
      dbFile: join(dir, 'temporal.sqlite'),
      logFile: join(dir, 'temporal.log'),
    }),
  ]);
  const gpuWorker = await startGpuWorker({
    python: toolchain.python,
    temporalAddress: temporal.address,
    natsUrl: nats.url,
    logFile: join(dir, 'gpu-worker.log'),
  });
  console.log(
    `[stack] nats ${redactUrl(nats.url)}, temporal ${temporal.address}, gpu worker pid ${gpuWorker.pid}` +
      ` (up in ${((Date.now() - started) / 1000).toFixed(1)}s, logs in ${dir})`,
  );
  const stack: TestStack = {
    natsUrl: nats.url,
    agentNatsUrl: nats.agentUrl,
    systemNatsUrl: nats.systemUrl,
    calloutIssuerSeed: nats.secrets.calloutIssuerSeed,
    temporalAddress: temporal.address,
    logDir: dir,
  };
  project.provide('stack', stack);

  return async () => {
    await gpuWorker.stop();
    await Promise.all([temporal.stop(), nats.stop()]);
    if (process.env.EDGEFORGE_KEEP_TEST_LOGS === '1') {
      console.log(`[stack] logs kept in ${dir}`);
    } else {
      await rm(dir, { recursive: true, force: true });
    }
  };
}
