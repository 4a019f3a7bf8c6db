import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, credentials } from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import { profileToProto } from '../common/fleet-api.js';
import { callUnary } from '../common/grpc-unary.js';
import { EDGE_LATENCY_BUCKETS } from '../common/latency-histogram.js';
import { KV_BUCKETS } from '../common/names.js';
import { connectNats } from '../common/nats.js';
import {
  DeviceState,
  FleetServiceService,
  type EnrollRequest,
  type EnrollResponse,
  type HeartbeatRequest,
} from '../proto/gen/edgeforge/v1/fleet.pb.js';
import {
  controlPlaneNatsEnvironment,
  freePort,
  loadToolchain,
  ManagedProcess,
  REPO_ROOT,
  startNatsServer,
} from '../services/stack/index.js';
import { fixtureProfile } from '../test/helpers/profiles.js';

const ENROLLMENT_TOKEN = 'bench-enrollment-token-0123456789';
/** Timed scrapes of /metrics after the heartbeat phase. */
const SCRAPES = 15;
const PROFILES = [
  'raspberry-pi-4',
  'raspberry-pi-5',
  'intel-xeon-gold-6242-cascade-lake',
  'amd-ryzen-9-5950x-zen3',
];

interface FleetResult {
  agents: number;
  enrollSeconds: number;
  enrollmentsPerSecond: number;
  heartbeatIntervalSeconds: number;
  heartbeats: number;
  heartbeatErrors: number;
  heartbeatP50Ms: number;
  heartbeatP99Ms: number;
  heartbeatMaxMs: number;
  controlPlaneCpuPercent: number;
  controlPlaneRssMiB: number;
  /** Sum of heartbeatCount over the registry: equals `heartbeats` when no update was lost. */
  registryHeartbeatsStored: number;
  /** Median of SCRAPES GET /metrics with every device in the registry... */
  metricsScrapeMs: number;
  /** ...and the fastest: what the scrape costs when nothing else competes for the CPU. */
  metricsScrapeMinMs: number;
  /** Size of that response: what Prometheus ingests per scrape. */
  metricsScrapeKiB: number;
  metricsSeries: number;
  serving: boolean;
}

/**
 * N simulated agents, each with its own gRPC channel, enroll with a control plane running as its
 * own process, then heartbeat every 10 s (random phase) for the measured period. Reports
 * enrollment rate, heartbeat latency, the control plane's CPU and memory, and whether every
 * accepted heartbeat reached the registry.
 */
export async function runFleetBenchmark(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      agents: { type: 'string', default: '1000,5000' },
      seconds: { type: 'string', default: '60' },
      interval: { type: 'string', default: '10' },
      // Heartbeats carry an active model and serving latencies, as serving devices' do.
      serving: { type: 'boolean', default: false },
    },
  });
  const sizes = values.agents.split(',').map(Number);
  const results: FleetResult[] = [];
  for (const n of sizes) {
    results.push(await measure(n, Number(values.seconds), Number(values.interval), values.serving));
    console.table(results);
  }
  const dir = join(REPO_ROOT, 'bench-results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `fleet-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(
    file,
    JSON.stringify({ benchmark: 'fleet', machine: machine(), results }, null, 2),
  );
  console.log(`results written to ${file}`);
}

/** What a serving device's heartbeat carries: its model (two variants) and 20 latencies. */
function servingReport(i: number): Pick<HeartbeatRequest, 'activeModel' | 'inferenceLatency'> {
  const variant = i % 2 === 0 ? 'fp32' : 'int8_dynamic';
  const bucketCounts = new Array<number>(EDGE_LATENCY_BUCKETS.length + 1).fill(0);
  bucketCounts[3 + (i % 4)] = 20;
  return {
    activeModel: {
      modelId: 'bench-model',
      variant,
      version: 1,
      sha256: (variant === 'fp32' ? 'a' : 'b').repeat(64),
    },
    inferenceLatency: {
      bucketUpperBounds: [...EDGE_LATENCY_BUCKETS],
      bucketCounts,
      sumSeconds: 20 * EDGE_LATENCY_BUCKETS[3 + (i % 4)]!,
      count: 20,
    },
  };
}

async function measure(
  agents: number,
  seconds: number,
  intervalSeconds: number,
  serving: boolean,
): Promise<FleetResult> {
  const toolchain = loadToolchain();
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-bench-'));
  const nats = await startNatsServer({ binary: toolchain.natsServer, storeDir: join(dir, 'js') });
  const port = await freePort();
  const metricsPort = await freePort();
  const controlPlane = new ManagedProcess({
    name: 'control plane',
    command: process.execPath,
    args: ['--import', 'tsx', join(REPO_ROOT, 'services/control-plane/main.ts')],
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      EDGEFORGE_NATS_URL: nats.url,
      ...(await controlPlaneNatsEnvironment(nats, join(dir, 'cp'))),
      EDGEFORGE_CP_LISTEN: `127.0.0.1:${port}`,
      EDGEFORGE_CP_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
      EDGEFORGE_CP_DATA_DIR: join(dir, 'cp'),
      EDGEFORGE_ENROLLMENT_TOKEN: ENROLLMENT_TOKEN,
      EDGEFORGE_HEARTBEAT_INTERVAL_SECONDS: String(intervalSeconds),
      EDGEFORGE_LOG_LEVEL: 'info',
    },
  });
  const clients: Client[] = [];
  try {
    await controlPlane.waitForLine(/control plane ready/, 60_000);
    const pid = await programPid(controlPlane);

    for (let i = 0; i < agents; i++) {
      clients.push(new Client(`127.0.0.1:${port}`, credentials.createInsecure()));
    }
    const profiles = PROFILES.map((p) => profileToProto(fixtureProfile(p)));
    process.stderr.write(`[fleet ${agents}] enrolling\n`);
    const enrollStart = performance.now();
    const enrolled = await mapLimit(clients, 64, (client, i) =>
      callUnary<EnrollRequest, EnrollResponse>(client, FleetServiceService.enroll, {
        enrollmentToken: ENROLLMENT_TOKEN,
        deviceName: `bench-${i}`,
        profile: profiles[i % profiles.length],
        agentVersion: 'bench',
      }),
    );
    const enrollSeconds = (performance.now() - enrollStart) / 1000;

    process.stderr.write(`[fleet ${agents}] heartbeating for ${seconds}s\n`);
    const latencies: number[] = [];
    let errors = 0;
    const cpuBefore = await cpuSeconds(pid);
    const phaseStart = performance.now();
    const deadline = phaseStart + seconds * 1000;
    const timers: NodeJS.Timeout[] = [];
    const inFlight = new Set<Promise<void>>();
    const beat = (i: number) => {
      if (performance.now() >= deadline) return;
      const started = performance.now();
      const p = callUnary(
        clients[i]!,
        FleetServiceService.heartbeat,
        serving
          ? { state: DeviceState.DEVICE_STATE_SERVING, ...servingReport(i) }
          : { state: DeviceState.DEVICE_STATE_IDLE },
        { credential: enrolled[i]!.deviceCredential, deadlineMs: 30_000 },
      )
        .then(
          () => void latencies.push(performance.now() - started),
          () => void errors++,
        )
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      timers[i] = setTimeout(() => beat(i), intervalSeconds * 1000);
    };
    enrolled.forEach((_, i) => {
      timers[i] = setTimeout(() => beat(i), Math.random() * intervalSeconds * 1000);
    });
    let peakRss = 0;
    while (performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      peakRss = Math.max(peakRss, await rssMiB(pid));
    }
    timers.forEach(clearTimeout);
    await Promise.all(inFlight);
    const cpu = (await cpuSeconds(pid)) - cpuBefore;
    const elapsed = (performance.now() - phaseStart) / 1000;

    // The first fetch() of a process loads its HTTP client; time the scrapes after it, a second
    // apart (Prometheus scrapes every 15 s or so, never back to back).
    const scrapeMs: number[] = [];
    let body = '';
    for (let i = 0; i <= SCRAPES; i++) {
      const scrapeStart = performance.now();
      body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      if (i > 0) scrapeMs.push(performance.now() - scrapeStart);
      await new Promise((r) => setTimeout(r, 1000));
    }
    scrapeMs.sort((a, b) => a - b);
    const metricsScrapeMs = scrapeMs[Math.floor(SCRAPES / 2)]!;
    const stored = await heartbeatsInRegistry(nats.url);

    latencies.sort((a, b) => a - b);
    const q = (p: number) =>
      round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN);
    return {
      agents,
      enrollSeconds: round(enrollSeconds),
      enrollmentsPerSecond: round(agents / enrollSeconds),
      heartbeatIntervalSeconds: intervalSeconds,
      heartbeats: latencies.length,
      heartbeatErrors: errors,
      heartbeatP50Ms: q(0.5),
      heartbeatP99Ms: q(0.99),
      heartbeatMaxMs: round(latencies.at(-1) ?? NaN),
      controlPlaneCpuPercent: round((100 * cpu) / elapsed),
      controlPlaneRssMiB: round(peakRss),
      registryHeartbeatsStored: stored,
      metricsScrapeMs: round(metricsScrapeMs),
      metricsScrapeMinMs: round(scrapeMs[0]!),
      metricsScrapeKiB: round(body.length / 1024),
      metricsSeries: body.split('\n').filter((l) => l && !l.startsWith('#')).length,
      serving,
    };
  } finally {
    clients.forEach((c) => c.close());
    await controlPlane.stop();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!, i);
      }
    }),
  );
  return results;
}

async function cpuSeconds(pid: number): Promise<number> {
  // Fields 14 and 15 of /proc/<pid>/stat: user and system time in clock ticks (100 Hz).
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function rssMiB(pid: number): Promise<number> {
  const match = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

const round = (x: number) => Math.round(x * 10) / 10;

function machine() {
  return { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version };
}

/** The program under the tether shell (services/stack/tether.sh): the process to measure. */
async function programPid(proc: ManagedProcess): Promise<number> {
  const tether = proc.pid!;
  const children = await readFile(`/proc/${tether}/task/${tether}/children`, 'utf8');
  return Number(children.trim().split(' ')[0]);
}

async function heartbeatsInRegistry(natsUrl: string): Promise<number> {
  const nats = await connectNats(natsUrl, { name: 'bench' });
  try {
    const kv = await new Kvm(nats).open(KV_BUCKETS.devices);
    let total = 0;
    for await (const key of await kv.keys()) {
      total += (await kv.get(key))?.json<{ heartbeatCount: number }>().heartbeatCount ?? 0;
    }
    return total;
  } finally {
    await nats.close();
  }
}
