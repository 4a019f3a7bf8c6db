import { fileURLToPath } from 'node:url';
import { ManagedProcess } from './managed-process.js';

export const GPU_WORKER_DIR = fileURLToPath(new URL('../gpu-worker/', import.meta.url));

export interface GpuWorkerOptions {
  /** The bootstrapped venv's interpreter. */
  python: string;
  temporalAddress: string;
  namespace?: string;
  natsUrl?: string;
  /** Replicas of the object store when the worker creates it (EDGEFORGE_NATS_REPLICAS). */
  natsReplicas?: number;
  /** host:port of its /metrics (EDGEFORGE_GPU_METRICS_LISTEN); a free loopback port if unset. */
  metricsListen?: string;
  logFile?: string;
  logLevel?: string;
}

/** Starts the Python gpu worker and waits until it polls its task queue. */
export async function startGpuWorker(options: GpuWorkerOptions): Promise<ManagedProcess> {
  const proc = new ManagedProcess({
    name: 'gpu worker',
    command: options.python,
    args: ['-m', 'edgeforge_gpu'],
    cwd: GPU_WORKER_DIR,
    env: {
      ...process.env,
      PYTHONPATH: GPU_WORKER_DIR,
      PYTHONUNBUFFERED: '1',
      EDGEFORGE_TEMPORAL_ADDRESS: options.temporalAddress,
      EDGEFORGE_TEMPORAL_NAMESPACE: options.namespace ?? 'default',
      ...(options.natsUrl ? { EDGEFORGE_NATS_URL: options.natsUrl } : {}),
      ...(options.natsReplicas ? { EDGEFORGE_NATS_REPLICAS: String(options.natsReplicas) } : {}),
      ...(options.metricsListen ? { EDGEFORGE_GPU_METRICS_LISTEN: options.metricsListen } : {}),
      EDGEFORGE_LOG_LEVEL: options.logLevel ?? 'info',
    },
    logFile: options.logFile,
  });
  try {
    await proc.waitForLine(/gpu worker ready/, 120_000);
    return proc;
  } catch (err) {
    await proc.stop();
    throw err;
  }
}
