/**
 * The central side for `npm run bench -- rollout-scale`, every part a real process on 127.0.0.1
 * with ports chosen at run time: nats-server (JetStream, and its monitoring port for /jsz and
 * /connz), the Temporal dev server, the control plane, the gpu worker and the orchestrator
 * worker. Like services/stack/embedded-stack.ts, but it hands out each process's pid (to measure
 * CPU) and the heartbeat interval is the bench's.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  controlPlaneNatsEnvironment,
  freePort,
  type ManagedProcess,
  NATS_DEV_CONFIG,
  startGpuWorker,
  startNodeService,
  startNatsServer,
  startTemporalDevServer,
  type Toolchain,
} from '../../services/stack/index.js';

export interface ScaleStack {
  natsUrl: string;
  /** The monitoring endpoints (/jsz, /connz). */
  natsMonitorUrl: string;
  temporalAddress: string;
  controlPlaneAddress: string;
  controlPlaneMetricsUrl: string;
  enrollmentToken: string;
  logDir: string;
  /** The program (not its tether shell) of each process, by name, for /proc readings. */
  pids: Record<ProcessName, number>;
  stop(): Promise<void>;
}

export type ProcessName =
  'nats-server' | 'temporal' | 'control-plane' | 'gpu-worker' | 'orchestrator';

export async function startScaleStack(options: {
  toolchain: Toolchain;
  dataDir: string;
  heartbeatIntervalSeconds: number;
  say: (m: string) => void;
  /**
   * JetStream's default consumer limit per stream (nats-server 2.15: 1000); undefined keeps the
   * product's deploy/nats/dev.conf as it is.
   */
  natsDefaultMaxConsumers?: number;
}): Promise<ScaleStack> {
  const { toolchain, dataDir, say } = options;
  const logDir = join(dataDir, 'logs');
  const started: { stop(): Promise<void> }[] = [];
  const stop = async () => {
    for (const part of started.reverse()) await part.stop().catch(() => {});
  };
  await mkdir(logDir, { recursive: true });
  try {
    say('starting nats-server and the Temporal dev server');
    const monitorPort = await freePort();
    const [nats, temporal] = await Promise.all([
      startNatsServer({
        binary: toolchain.natsServer,
        storeDir: join(dataDir, 'jetstream'),
        logFile: join(logDir, 'nats-server.log'),
        configFile: await natsConfig(dataDir, monitorPort, options.natsDefaultMaxConsumers),
      }),
      startTemporalDevServer({
        binary: toolchain.temporal,
        dbFile: join(dataDir, 'temporal.sqlite'),
        logFile: join(logDir, 'temporal.log'),
      }),
    ]);
    started.push(nats, temporal);
    const env = {
      ...process.env,
      EDGEFORGE_NATS_URL: nats.url,
      EDGEFORGE_NATS_REPLICAS: '1',
      EDGEFORGE_TEMPORAL_ADDRESS: temporal.address,
      EDGEFORGE_LOG_LEVEL: 'info',
    };
    const cpDir = join(dataDir, 'control-plane');
    const [cpPort, cpMetricsPort, orchestratorMetricsPort, gpuMetricsPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    say('starting the control plane');
    // First, alone: it creates the manifest signing key the orchestrator signs with.
    const controlPlane = await startNodeService(
      'control plane',
      'services/control-plane/main.ts',
      {
        ...env,
        EDGEFORGE_CP_LISTEN: `127.0.0.1:${cpPort}`,
        EDGEFORGE_CP_METRICS_LISTEN: `127.0.0.1:${cpMetricsPort}`,
        EDGEFORGE_CP_DATA_DIR: cpDir,
        ...(await controlPlaneNatsEnvironment(nats, cpDir)),
        EDGEFORGE_HEARTBEAT_INTERVAL_SECONDS: String(options.heartbeatIntervalSeconds),
      },
      join(logDir, 'control-plane.log'),
    );
    started.push(controlPlane);
    say('starting the gpu worker and the orchestrator worker');
    const [gpuWorker, orchestrator] = await Promise.all([
      startGpuWorker({
        python: toolchain.python,
        temporalAddress: temporal.address,
        natsUrl: nats.url,
        natsReplicas: 1,
        metricsListen: `127.0.0.1:${gpuMetricsPort}`,
        logFile: join(logDir, 'gpu-worker.log'),
      }),
      startNodeService(
        'orchestrator worker',
        'workflows/main.ts',
        {
          ...env,
          EDGEFORGE_MANIFEST_KEY_FILE: join(cpDir, 'manifest-signing.pem'),
          EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN: `127.0.0.1:${orchestratorMetricsPort}`,
        },
        join(logDir, 'orchestrator.log'),
      ),
    ]);
    started.push(gpuWorker, orchestrator);
    return {
      natsUrl: nats.url,
      natsMonitorUrl: `http://127.0.0.1:${monitorPort}`,
      temporalAddress: temporal.address,
      controlPlaneAddress: `127.0.0.1:${cpPort}`,
      controlPlaneMetricsUrl: `http://127.0.0.1:${cpMetricsPort}/metrics`,
      enrollmentToken: (await readFile(join(cpDir, 'enrollment-token'), 'utf8')).trim(),
      logDir,
      pids: {
        'nats-server': await programPid(nats.process),
        temporal: await programPid(temporal.process),
        'control-plane': await programPid(controlPlane),
        'gpu-worker': await programPid(gpuWorker),
        orchestrator: await programPid(orchestrator),
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * deploy/nats/dev.conf as deployed, copied into the run's directory with the monitoring port on
 * 127.0.0.1 and, when asked, JetStream's default consumer limit: the product's file is never
 * touched.
 */
export async function natsConfig(
  dir: string,
  monitorPort: number,
  defaultMaxConsumers: number | undefined,
): Promise<string> {
  // nats-server resolves an include relative to the including file: the accounts go along.
  const accounts = join(NATS_DEV_CONFIG, '..', 'accounts.conf');
  await writeFile(join(dir, 'accounts.conf'), await readFile(accounts, 'utf8'));
  let text = await readFile(NATS_DEV_CONFIG, 'utf8');
  text += `\n# Added by bench/rollout-scale: /jsz and /connz on loopback.\nhttp: "127.0.0.1:${monitorPort}"\n`;
  if (defaultMaxConsumers !== undefined && /default_max_consumers: -?\d+/.test(text)) {
    text = text.replace(
      /default_max_consumers: -?\d+/,
      `default_max_consumers: ${defaultMaxConsumers} # set by bench/rollout-scale`,
    );
  } else if (defaultMaxConsumers !== undefined) {
    text = text.replace(
      /jetstream \{/,
      `jetstream {\n  # Added by bench/rollout-scale (--nats-default-max-consumers).\n  limits {\n    default_max_consumers: ${defaultMaxConsumers}\n  }`,
    );
  }
  const file = join(dir, 'nats.conf');
  await writeFile(file, text);
  return file;
}

async function programPid(proc: ManagedProcess): Promise<number> {
  const tether = proc.pid!;
  for (let i = 0; i < 50; i++) {
    const children = await readFile(`/proc/${tether}/task/${tether}/children`, 'utf8');
    const pid = Number(children.trim().split(' ')[0]);
    if (pid > 0) return pid;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${proc.name}: no program under its tether (pid ${tether})`);
}

/** User + system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat, 100 Hz). */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

export async function rssMiB(pid: number): Promise<number> {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return Number(match?.[1] ?? 0) / 1024;
  } catch {
    return NaN;
  }
}

/** CPU seconds of every measured process (and of this one: the simulator and the bench). */
export async function cpuSnapshot(pids: Record<string, number>): Promise<Record<string, number>> {
  const entries = await Promise.all(
    Object.entries(pids).map(async ([name, pid]) => [name, await cpuSeconds(pid)] as const),
  );
  const self = process.cpuUsage();
  return {
    ...Object.fromEntries(entries),
    'bench+simulator': (self.user + self.system) / 1e6,
  };
}
