/**
 * What `edgeforge demo` rolls out and to which simulated devices. The sizes are chosen so that a
 * full rollout ends within minutes on a 2-core CPU; a real rollout trains on everything for longer
 * (docs/examples/rollout-fashion-mnist.json).
 */
import type { DatasetSpec, TeacherConfig } from '../../common/gpu-contracts.js';
import { parseRolloutSpec } from '../../common/rollout-spec.js';
import type { RolloutSpec } from '../../common/rollout.js';

/** A simulated device: a real /proc/cpuinfo dump and the profile fields it overrides. */
export interface DemoDevice {
  /** Device name, also its agent's data dir and log file. */
  name: string;
  /** What it stands for, for the output. */
  description: string;
  /** test/fixtures/cpuinfo/<cpuinfo>.txt */
  cpuinfo: string;
  memoryBytes: number;
  threads?: number;
  cores?: number;
}

const GiB = 1024 ** 3;

export const DEMO_DEVICES: readonly DemoDevice[] = [
  {
    name: 'demo-xeon-vnni',
    description: 'x86 server with AVX-512 VNNI (Xeon Gold 6242), 32 GiB',
    cpuinfo: 'intel-xeon-gold-6242-cascade-lake',
    memoryBytes: 32 * GiB,
  },
  {
    name: 'demo-ryzen-avx2',
    description: 'x86 box with AVX2 but no VNNI (Ryzen 9 5950X), 16 GiB',
    cpuinfo: 'amd-ryzen-9-5950x-zen3',
    memoryBytes: 16 * GiB,
  },
  {
    name: 'demo-pi4-1thread',
    description: 'Raspberry Pi 4 class ARM board limited to one thread, 4 GiB',
    cpuinfo: 'raspberry-pi-4',
    memoryBytes: 4 * GiB,
    threads: 1,
    cores: 1,
  },
  {
    name: 'demo-celeron-1g',
    description: 'memory-starved x86 gateway (Celeron J1900, SSE4 only), 1 GiB',
    cpuinfo: 'intel-celeron-j1900',
    memoryBytes: 1 * GiB,
  },
];

/**
 * The profile override file an agent reads (see `edgeforge agent --profile`). The simulated
 * devices share this machine's CPU, so they take turns at timed benchmarks through
 * `sharedHostLock` instead of slowing down each other's measurements.
 */
export function profileOverride(
  device: DemoDevice,
  cpuinfoDir: string,
  sharedHostLock: string,
): Record<string, unknown> {
  return {
    cpuinfoFile: `${cpuinfoDir}/${device.cpuinfo}.txt`,
    memoryBytes: device.memoryBytes,
    ...(device.threads ? { threads: device.threads } : {}),
    ...(device.cores ? { cores: device.cores } : {}),
    simulate: { sharedHostLock },
  };
}

export interface DemoPlan {
  /** One line for the output: what is trained on what, and how much. */
  summary: string;
  dataset: DatasetSpec;
  /** The teacher to train when none is cached; also the cache key's main part. */
  teacher: Required<Pick<TeacherConfig, 'architecture' | 'training'>>;
  build(rolloutId: string, teacher: TeacherConfig): RolloutSpec;
}

/** Fashion-MNIST: 12,000 of the 60,000 training images, few epochs; measured < 10 min warm. */
export const FULL_DEMO: DemoPlan = {
  summary:
    'Fashion-MNIST, 12,000 of its 60,000 training images; teacher resnet10_w32 3 epochs, ' +
    'student small_cnn distilled 4 epochs (a real rollout trains on all of it for longer)',
  dataset: { source: 'fashion_mnist', max_train_samples: 12_000 },
  teacher: {
    architecture: 'resnet10_w32',
    training: { epochs: 3, batch_size: 128, learning_rate: 0.1 },
  },
  build: (rolloutId, teacher) =>
    parseRolloutSpec({
      rolloutId,
      dataset: FULL_DEMO.dataset,
      source: {
        kind: 'distill',
        teacher,
        student: {
          architecture: 'small_cnn',
          distill: { temperature: 4, alpha: 0.5, training: { epochs: 4, batch_size: 128 } },
        },
      },
      accuracyBudget: 0.01,
      maxCandidates: 3,
      canaries: 1,
      waves: { percents: [100], bakeSeconds: 5, maxFailedShare: 0.5, maxP95Regression: 1 },
      // Sub-millisecond latencies: enough runs for a p95 that holds still on a busy machine.
      benchmark: { warmupRuns: 20, minRuns: 200, minSeconds: 1, threads: 0 },
      reportTimeoutSeconds: 300,
    }),
};

/** The built-in 8×8 digits, two epochs each: a minute or two, for tests and a first look. */
export const QUICK_DEMO: DemoPlan = {
  summary: "scikit-learn's 8×8 digits (built in); teacher and student small_cnn, 2 epochs each",
  dataset: { source: 'digits' },
  teacher: { architecture: 'small_cnn', training: { epochs: 2, batch_size: 64 } },
  build: (rolloutId, teacher) =>
    parseRolloutSpec({
      rolloutId,
      dataset: QUICK_DEMO.dataset,
      source: {
        kind: 'distill',
        teacher,
        student: {
          architecture: 'small_cnn',
          distill: { training: { epochs: 2, batch_size: 64 } },
        },
      },
      accuracyBudget: 0.05,
      maxCandidates: 2,
      canaries: 1,
      waves: { percents: [100], bakeSeconds: 1, maxFailedShare: 0.5, maxP95Regression: 10 },
      benchmark: { warmupRuns: 2, minRuns: 20, minSeconds: 0.05, threads: 1 },
      reportTimeoutSeconds: 120,
    }),
};

/** `demo-20250102-030405`: sorts by time, and names the run in the Temporal UI. */
export function demoRolloutId(now = new Date()): string {
  const iso = now.toISOString();
  return `demo-${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}`;
}
