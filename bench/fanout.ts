import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { connectNats, type NatsConnection } from '../common/nats.js';
import { OBJECT_BUCKETS } from '../common/names.js';
import { loadToolchain, REPO_ROOT, startNatsServer } from '../services/stack/index.js';

interface FanoutResult {
  agents: number;
  modelMiB: number;
  secondsUntilAllVerified: number;
  effectiveMiBps: number;
  rawObjectStoreMiBps: number;
  /** effective / raw: the share of the object store's read limit the fan-out reached. */
  shareOfLimit: number;
  failures: number;
  /** Transfers that stalled and were started over, as a real agent does. */
  retries: number;
}

/**
 * One model to N simulated agents over NATS: each agent has its own connection (as the read-only
 * agent user), streams the object and checks its sha256, as a real agent does before installing.
 * Beside it, in the same run, the raw object-store read throughput: one reader streaming the same
 * object back to back, the limit a fan-out can approach on this machine.
 */
export async function runFanoutBenchmark(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      agents: { type: 'string', default: '100,500,1000' },
      mib: { type: 'string', default: '5' },
    },
  });
  const sizes = values.agents.split(',').map(Number);
  const bytes = Number(values.mib) * 1024 * 1024;
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-fanout-'));
  const nats = await startNatsServer({
    binary: loadToolchain().natsServer,
    storeDir: join(dir, 'js'),
  });
  const central = await connectNats(nats.url, { name: 'bench-orchestrator' });
  const results: FanoutResult[] = [];
  try {
    const store = await new Objm(central).create(OBJECT_BUCKETS.models);
    const model = randomBytes(bytes);
    const sha256 = createHash('sha256').update(model).digest('hex');
    await store.putBlob({ name: 'bench/model.onnx' }, model);

    const raw = await rawReadMiBps(nats.agentUrl, sha256, 10);
    for (const agents of sizes) {
      process.stderr.write(`[fanout ${agents}] connecting agents\n`);
      const connections = await Promise.all(
        Array.from({ length: agents }, (_, i) =>
          connectNats(nats.agentUrl, { name: `bench-agent-${i}`, timeoutMs: 30_000 }),
        ),
      );
      try {
        process.stderr.write(`[fanout ${agents}] downloading\n`);
        const started = performance.now();
        let retries = 0;
        const outcomes = await Promise.allSettled(
          connections.map((nc) =>
            withRetries(
              () => download(nc, sha256),
              () => void retries++,
            ),
          ),
        );
        const seconds = (performance.now() - started) / 1000;
        const failures = outcomes.filter((o) => o.status === 'rejected').length;
        const effective = ((agents - failures) * bytes) / 1024 / 1024 / seconds;
        results.push({
          agents,
          modelMiB: bytes / 1024 / 1024,
          secondsUntilAllVerified: round(seconds),
          effectiveMiBps: round(effective),
          rawObjectStoreMiBps: round(raw),
          shareOfLimit: round(effective / raw),
          failures,
          retries,
        });
        console.table(results);
      } finally {
        await Promise.all(connections.map((nc) => nc.close()));
      }
    }
  } finally {
    await central.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const out = join(REPO_ROOT, 'bench-results');
  await mkdir(out, { recursive: true });
  const file = join(out, `fanout-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(
    file,
    JSON.stringify(
      { benchmark: 'fanout', machine: { cpus: cpus().length, node: process.version }, results },
      null,
      2,
    ),
  );
  console.log(`results written to ${file}`);
}

/** Streams the model as an agent does and checks its digest. */
async function download(nc: NatsConnection, sha256: string): Promise<void> {
  const store: ObjectStore = await new Objm(nc).open(OBJECT_BUCKETS.models);
  const result = await store.get('bench/model.onnx');
  if (!result) throw new Error('model object missing');
  const hash = createHash('sha256');
  for await (const chunk of result.data) hash.update(chunk);
  if (hash.digest('hex') !== sha256) throw new Error('digest mismatch');
}

/** A stalled transfer starts over, up to 3 times, as the agent's downloader does. */
async function withRetries(attempt: () => Promise<void>, onRetry: () => void): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (i >= 3) throw err;
      onRetry();
    }
  }
}

async function rawReadMiBps(url: string, sha256: string, times: number): Promise<number> {
  const nc = await connectNats(url, { name: 'bench-raw-reader' });
  try {
    await download(nc, sha256); // warm-up
    const started = performance.now();
    for (let i = 0; i < times; i++) await download(nc, sha256);
    const info = await (await new Objm(nc).open(OBJECT_BUCKETS.models)).info('bench/model.onnx');
    return ((info?.size ?? 0) * times) / 1024 / 1024 / ((performance.now() - started) / 1000);
  } finally {
    await nc.close();
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
