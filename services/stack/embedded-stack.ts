import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { redactUrl } from '../../common/nats.js';
import { REPO_ROOT, type Toolchain } from './toolchain.js';
import { writeSecretFileAtomic } from '../../common/secrets.js';
import { lockDataDir } from './data-dir-lock.js';
import { ManagedProcess } from './managed-process.js';
import { Supervisor, type PartInstance } from './supervisor.js';
import type { RunningTemporalDevServer } from './temporal-dev-server.js';
import {
  generateNatsServerSecrets,
  startNatsServer,
  type RunningNatsServer,
} from './nats-server.js';
import { loadStackState, saveStackState, stablePort, type StackPort } from './stack-state.js';
import { startTemporalDevServer } from './temporal-dev-server.js';
import { startGpuWorker } from './gpu-worker.js';
import { startPrometheus } from './prometheus.js';

export const ENDPOINTS_FILE = 'endpoints.json';

/** Where a running embedded stack can be reached; written to `<dataDir>/endpoints.json`. */
export interface StackEndpoints {
  natsUrl: string;
  temporalAddress: string;
  temporalUiUrl: string | undefined;
  /** gRPC address of the control plane (agents and the CLI). */
  controlPlaneAddress: string;
  controlPlaneMetricsUrl: string;
  orchestratorMetricsUrl: string;
  gpuWorkerMetricsUrl: string;
  /** Prometheus (`edgeforge up --prometheus`), scraping all of the above and the agents. */
  prometheusUrl?: string;
  /** Its file_sd file for agents' /metrics: add to it with addAgentMetricsTargets. */
  prometheusAgentTargetsFile?: string;
  /** A file (mode 0600) holding natsUrl, for `export EDGEFORGE_NATS_URL=$(cat FILE)`. */
  natsUrlFile: string;
  /** Files holding the fleet's enrollment token and the admin token. */
  enrollmentTokenFile: string;
  adminTokenFile: string;
  logDir: string;
  pid: number;
}

export interface EmbeddedStack {
  endpoints: StackEndpoints;
  stop(): Promise<void>;
  /** How often each part was started again after it died. */
  restarts(): Record<string, number>;
  /** Sends a signal to one part's process (a fault, for the chaos tests). */
  kill(part: StackPart, signal?: NodeJS.Signals): void;
}

export type StackPart =
  'nats-server' | 'temporal' | 'control plane' | 'gpu worker' | 'orchestrator worker';

export interface EmbeddedStackOptions {
  toolchain: Toolchain;
  /** Holds the Temporal SQLite file, JetStream storage and logs; kept across runs. */
  dataDir: string;
  /** Serve the Temporal Web UI (on a free port). */
  ui?: boolean;
  /** Also run Prometheus (on a free port) with deploy/prometheus's config and rules. */
  prometheus?: boolean;
  /** Called as each part comes up, for progress output. */
  onProgress?: (message: string) => void;
  /**
   * A part kept dying and is not restarted any more: the stack cannot run (the CLI stops it and
   * exits). By default only said through onProgress.
   */
  onPartGaveUp?: (part: string, reason: string) => void;
}

/**
 * The whole central side on one machine: nats-server (JetStream), the Temporal dev server, the
 * control plane, the Python gpu worker and the orchestrator worker, each a real process on free
 * loopback ports; with `prometheus`, Prometheus scraping them (and agents added later).
 */
export async function startEmbeddedStack(options: EmbeddedStackOptions): Promise<EmbeddedStack> {
  const { toolchain, dataDir } = options;
  const progress = options.onProgress ?? (() => {});
  // Before anything is started or written: a second stack on this data dir stops here.
  const lock = await lockDataDir(dataDir);
  const logDir = join(dataDir, 'logs');
  // Every part is watched from its start: one that dies is started again (same ports and data).
  const supervisor = new Supervisor({
    say: progress,
    onGiveUp:
      options.onPartGaveUp ?? ((part, reason) => progress(`giving up on ${part}: ${reason}`)),
  });
  // Parts with a metrics port answer /healthz there: one that is up but hung is killed, so restarted.
  const asPart = (proc: ManagedProcess, metricsPort: number): PartInstance => ({
    process: proc,
    stop: () => proc.stop(),
    healthUrl: `http://127.0.0.1:${metricsPort}/healthz`,
  });
  let prometheus: Awaited<ReturnType<typeof startPrometheus>> | undefined;
  const stopAll = async () => {
    await prometheus?.stop();
    await supervisor.stopAll();
    // Only the owner gets here: endpoints.json is its own.
    await rm(join(dataDir, ENDPOINTS_FILE), { force: true });
    await lock.release();
  };

  try {
    await mkdir(logDir, { recursive: true });
    // The ports and NATS secrets of the last run, so that devices and shells find it again.
    const state = await loadStackState(dataDir);
    const port = (part: StackPort) => stablePort(state, part, progress);
    state.natsSecrets ??= generateNatsServerSecrets();
    progress('starting nats-server and the Temporal dev server');
    const natsOptions = {
      binary: toolchain.natsServer,
      storeDir: join(dataDir, 'jetstream'),
      port: await port('nats'),
      secrets: state.natsSecrets,
      logFile: join(logDir, 'nats-server.log'),
    };
    const temporalOptions = {
      binary: toolchain.temporal,
      dbFile: join(dataDir, 'temporal.sqlite'),
      port: await port('temporal'),
      uiPort: options.ui ? await port('temporalUi') : undefined,
      logFile: join(logDir, 'temporal.log'),
    };
    const [nats, temporal] = (await Promise.all([
      supervisor.add('nats-server', () => startNatsServer(natsOptions)),
      supervisor.add('temporal', () => startTemporalDevServer(temporalOptions)),
    ])) as [RunningNatsServer, RunningTemporalDevServer];
    progress(`nats ${redactUrl(nats.url)}, temporal ${temporal.address}`);

    progress('starting the control plane, the gpu worker and the orchestrator worker');
    const env = {
      ...process.env,
      EDGEFORGE_NATS_URL: nats.url,
      // One nats-server: a bucket can have one copy only, whatever the shell says.
      EDGEFORGE_NATS_REPLICAS: '1',
      EDGEFORGE_TEMPORAL_ADDRESS: temporal.address,
    };
    const controlPlaneDir = join(dataDir, 'control-plane');
    const [cpPort, cpMetricsPort, orchestratorMetricsPort, gpuMetricsPort] = [
      await port('controlPlane'),
      await port('controlPlaneMetrics'),
      await port('orchestratorMetrics'),
      await port('gpuWorkerMetrics'),
    ];
    const cpEnv = {
      ...env,
      EDGEFORGE_CP_LISTEN: `127.0.0.1:${cpPort}`,
      EDGEFORGE_CP_METRICS_LISTEN: `127.0.0.1:${cpMetricsPort}`,
      EDGEFORGE_CP_DATA_DIR: controlPlaneDir,
      ...(await controlPlaneNatsEnvironment(nats, controlPlaneDir)),
    };
    await Promise.all([
      supervisor.add('control plane', async () =>
        asPart(
          await startNodeService(
            'control plane',
            'services/control-plane/main.ts',
            cpEnv,
            join(logDir, 'control-plane.log'),
          ),
          cpMetricsPort,
        ),
      ),
      supervisor.add('gpu worker', async () =>
        asPart(
          await startGpuWorker({
            python: toolchain.python,
            temporalAddress: temporal.address,
            natsUrl: nats.url,
            natsReplicas: 1,
            metricsListen: `127.0.0.1:${gpuMetricsPort}`,
            logFile: join(logDir, 'gpu-worker.log'),
          }),
          gpuMetricsPort,
        ),
      ),
      supervisor.add('orchestrator worker', async () =>
        asPart(
          await startNodeService(
            'orchestrator worker',
            'workflows/main.ts',
            {
              ...env,
              EDGEFORGE_MANIFEST_KEY_FILE: join(controlPlaneDir, 'manifest-signing.pem'),
              EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN: `127.0.0.1:${orchestratorMetricsPort}`,
            },
            join(logDir, 'orchestrator.log'),
          ),
          orchestratorMetricsPort,
        ),
      ),
    ]);
    const metricsUrls = {
      controlPlane: `http://127.0.0.1:${cpMetricsPort}/metrics`,
      orchestrator: `http://127.0.0.1:${orchestratorMetricsPort}/metrics`,
      gpuWorker: `http://127.0.0.1:${gpuMetricsPort}/metrics`,
    };

    if (options.prometheus) {
      progress('starting Prometheus');
      // Not supervised: a restarted Prometheus would listen on another port.
      prometheus = await startPrometheus({
        binary: toolchain.prometheus,
        dir: join(dataDir, 'prometheus'),
        metricsUrls,
        logFile: join(logDir, 'prometheus.log'),
      });
      progress(`prometheus ${prometheus.url}`);
    }

    const natsUrlFile = join(dataDir, 'nats-url');
    await writeSecretFileAtomic(natsUrlFile, `${nats.url}\n`);
    const endpoints: StackEndpoints = {
      natsUrl: nats.url,
      natsUrlFile,
      temporalAddress: temporal.address,
      temporalUiUrl: temporal.uiUrl,
      controlPlaneAddress: `127.0.0.1:${cpPort}`,
      controlPlaneMetricsUrl: metricsUrls.controlPlane,
      orchestratorMetricsUrl: metricsUrls.orchestrator,
      gpuWorkerMetricsUrl: metricsUrls.gpuWorker,
      ...(prometheus
        ? { prometheusUrl: prometheus.url, prometheusAgentTargetsFile: prometheus.agentTargetsFile }
        : {}),
      enrollmentTokenFile: join(controlPlaneDir, 'enrollment-token'),
      adminTokenFile: join(controlPlaneDir, 'admin-token'),
      logDir,
      pid: process.pid,
    };
    await saveStackState(dataDir, state);
    // Atomically (a reader never sees half of it), 0600: natsUrl carries the password.
    await writeSecretFileAtomic(join(dataDir, ENDPOINTS_FILE), JSON.stringify(endpoints, null, 2));
    return {
      endpoints,
      stop: stopAll,
      restarts: () => Object.fromEntries(supervisor.restarts),
      kill: (part, signal = 'SIGKILL') => supervisor.kill(part, signal),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * What the control plane needs to give devices NATS identities on `nats`: the advertised URL
 * (no credentials), the system user's URL and the callout issuer's seed, written into its data
 * dir readable by this user only (a new server's seed replaces the last one's).
 */
export async function controlPlaneNatsEnvironment(
  nats: RunningNatsServer,
  controlPlaneDir: string,
): Promise<Record<string, string>> {
  const seedFile = join(controlPlaneDir, 'nats-callout-issuer.seed');
  await writeSecretFileAtomic(seedFile, nats.secrets.calloutIssuerSeed);
  return {
    EDGEFORGE_CP_ADVERTISED_NATS_URL: nats.agentUrl,
    EDGEFORGE_NATS_SYSTEM_URL: nats.systemUrl,
    EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE: seedFile,
  };
}

/** Runs one of our TypeScript entry points as its own process and waits for its ready line. */
export async function startNodeService(
  name: string,
  entry: string,
  env: NodeJS.ProcessEnv,
  logFile: string,
): Promise<ManagedProcess> {
  // The ready line is logged at info: a quieter level would hide it from us.
  const quiet = ['warn', 'error', 'fatal', 'silent'].includes(env.EDGEFORGE_LOG_LEVEL ?? '');
  const proc = new ManagedProcess({
    name,
    command: process.execPath,
    args: ['--import', 'tsx', join(REPO_ROOT, entry)],
    cwd: REPO_ROOT,
    env: quiet ? { ...env, EDGEFORGE_LOG_LEVEL: 'info' } : env,
    logFile,
  });
  try {
    await proc.waitForLine(/ready/, 120_000);
    return proc;
  } catch (err) {
    await proc.stop();
    throw err;
  }
}
