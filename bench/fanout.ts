import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { Objm } from '@nats-io/obj';
import type { ObjectRef } from '../common/manifest.js';
import { connectNats } from '../common/nats.js';
import { OBJECT_BUCKETS } from '../common/names.js';
import { loadToolchain, REPO_ROOT, startNatsServer } from '../services/stack/index.js';
import type { FanoutWorkerData, FanoutWorkerMessage } from './fanout-agents.js';

const OBJECT = 'bench/model.onnx';
/** Agents per worker thread: few enough that no socket waits long for its event loop. */
const AGENTS_PER_THREAD = 125;
/** Readers of the raw limit; the agents get at least as many threads, to be compared fairly. */
const RAW_READERS = [1, 2, 4];

interface FanoutResult {
  agents: number;
  modelMiB: number;
  secondsUntilAllVerified: number;
  effectiveMiBps: number;
  rawObjectStoreMiBps: number;
  /** effective / raw: the share of the object store's read limit the fan-out reached. */
  shareOfLimit: number;
  failures: number;
  /** Transfers that stalled or were interrupted and were started over, as a real agent does. */
  retries: number;
}

/**
 * One model to N simulated agents over NATS: each agent has its own connection (as the read-only
 * agent user) and downloads the model with the agent's own code (streamed into a file, size and
 * sha256 checked, fsynced; a stalled transfer, or one a reconnect interrupted, started over); the
 * agents run in worker threads, at most 125 to a thread and at least as many threads as the
 * raw limit's readers. Beside it, in the same run, the raw object-store
 * read throughput (rawLimitMiBps), the limit a fan-out can approach on this machine.
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
  const out = join(REPO_ROOT, 'bench-results');
  await mkdir(out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-fanout-'));
  const logFile = join(out, `fanout-nats-${stamp}.log`);
  const nats = await startNatsServer({
    binary: loadToolchain().natsServer,
    storeDir: join(dir, 'js'),
    logFile,
  });
  process.stderr.write(`nats-server log: ${logFile}\n`);
  const central = await connectNats(nats.url, { name: 'bench-orchestrator' });
  const results: FanoutResult[] = [];
  let rawByReaders: Record<string, number> = {};
  try {
    const store = await new Objm(central).create(OBJECT_BUCKETS.models);
    const model = randomBytes(bytes);
    const sha256 = createHash('sha256').update(model).digest('hex');
    await store.putBlob({ name: OBJECT }, model);
    const ref: ObjectRef = { bucket: OBJECT_BUCKETS.models, name: OBJECT, size: bytes, sha256 };
    const downloads = join(dir, 'downloads');
    await mkdir(downloads);

    // The readers use the service user: this measures the server's object reads, and a device's
    // identity needs a control plane (its auth callout) that this bench does not run.
    const target = { url: nats.url, ref, downloads };
    const raw = await rawLimitMiBps(target);
    rawByReaders = raw.byReaders;
    process.stderr.write(
      `raw object-store reads, MiB/s by readers: ${JSON.stringify(raw.byReaders)}\n`,
    );
    for (const agents of sizes) {
      results.push(await fanOut(agents, { ...target, raw: raw.limit }));
      console.table(results);
    }
  } finally {
    await central.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const file = join(out, `fanout-${stamp}.json`);
  await writeFile(
    file,
    JSON.stringify(
      {
        benchmark: 'fanout',
        machine: { cpus: cpus().length, node: process.version },
        rawObjectStoreMiBpsByReaders: rawByReaders,
        results,
      },
      null,
      2,
    ),
  );
  console.log(`results written to ${file}`);
}

async function fanOut(
  agents: number,
  o: { url: string; ref: ObjectRef; downloads: string; raw: number },
): Promise<FanoutResult> {
  const { raw, ...target } = o;
  const threads = Math.min(
    agents,
    Math.max(Math.ceil(agents / AGENTS_PER_THREAD), Math.max(...RAW_READERS)),
  );
  const say = (m: string) => process.stderr.write(`[fanout ${agents}] ${m}\n`);
  say(`connecting agents (${threads} worker threads)`);
  let verified = 0;
  let retries = 0;
  const retryErrors = new Map<string, number>();
  const run = await startWorkers(threads, agents, { ...target, mode: 'agents', times: 1 }, (m) => {
    if (m.kind === 'verified') verified++;
    if (m.kind === 'retry') {
      retries++;
      // Digits vary (ms, byte counts, object names); the kind of failure does not.
      const key = m.error.replace(/\d+/g, 'N').slice(0, 120);
      retryErrors.set(key, (retryErrors.get(key) ?? 0) + 1);
    }
  });
  say('downloading');
  const started = performance.now();
  const progress = setInterval(() => {
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    say(`${seconds} s: ${verified}/${agents} verified, ${retries} retries`);
  }, 10_000);
  const { seconds, failures, errors } = await run().finally(() => clearInterval(progress));
  for (const error of errors) say(`failed: ${error}`);
  for (const [error, n] of retryErrors) say(`retried ${n}×: ${error}`);
  const effective = ((agents - failures) * target.ref.size) / 1024 / 1024 / seconds;
  return {
    agents,
    modelMiB: target.ref.size / 1024 / 1024,
    secondsUntilAllVerified: round(seconds),
    effectiveMiBps: round(effective),
    rawObjectStoreMiBps: round(raw),
    shareOfLimit: round(effective / raw),
    failures,
    retries,
  };
}

/**
 * The object store's read limit on this machine: the best aggregate rate of 1, 2 or 4 readers,
 * each in its own thread, streaming and hashing the object back to back (after one warm-up read).
 * One reader alone is bounded by its own event loop, not by the store.
 */
async function rawLimitMiBps(o: { url: string; ref: ObjectRef; downloads: string }) {
  const times = 8;
  const byReaders: Record<string, number> = {};
  for (const readers of RAW_READERS) {
    await (
      await startWorkers(readers, readers, { ...o, mode: 'raw', times: 1 }, () => {})
    )();
    const run = await startWorkers(readers, readers, { ...o, mode: 'raw', times }, () => {});
    const { seconds, failures, errors } = await run();
    if (failures > 0) throw new Error(`raw readers failed: ${errors.join('; ')}`);
    byReaders[readers] = round((readers * times * o.ref.size) / 1024 / 1024 / seconds);
  }
  return { limit: Math.max(...Object.values(byReaders)), byReaders };
}

/**
 * Starts `threads` worker threads (bench/fanout-agents.ts) sharing `connections` connections and
 * waits until all are connected. The returned function tells them to go, resolves when all are
 * done with the seconds from go to the last one done, and stops them.
 */
async function startWorkers(
  threads: number,
  connections: number,
  o: Omit<FanoutWorkerData, 'first' | 'count'>,
  onMessage: (m: FanoutWorkerMessage) => void,
): Promise<() => Promise<{ seconds: number; failures: number; errors: string[] }>> {
  const workers = Array.from({ length: threads }, (_, t) => {
    const first = Math.floor((t * connections) / threads);
    const workerData: FanoutWorkerData = {
      ...o,
      first,
      count: Math.floor(((t + 1) * connections) / threads) - first,
    };
    return new Worker(new URL('./ts-worker.mjs', import.meta.url), {
      argv: [new URL('./fanout-agents.ts', import.meta.url).href],
      workerData,
    });
  });
  const until = <K extends FanoutWorkerMessage['kind']>(kind: K) =>
    Promise.all(
      workers.map(
        (w) =>
          new Promise<Extract<FanoutWorkerMessage, { kind: K }>>((resolve, reject) => {
            const listener = (m: FanoutWorkerMessage) => {
              onMessage(m);
              if (m.kind !== kind) return;
              w.off('message', listener);
              resolve(m as Extract<FanoutWorkerMessage, { kind: K }>);
            };
            w.on('message', listener);
            w.once('error', reject);
          }),
      ),
    );
  await until('connected').catch(async (err: unknown) => {
    await Promise.all(workers.map((w) => w.terminate()));
    throw err;
  });
  return async () => {
    try {
      const done = until('done');
      const started = performance.now();
      for (const w of workers) w.postMessage('go');
      const reports = await done;
      return {
        seconds: (performance.now() - started) / 1000,
        failures: reports.reduce((sum, r) => sum + r.failures, 0),
        errors: reports.flatMap((r) => r.errors),
      };
    } finally {
      for (const w of workers) w.postMessage('close');
      await Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
    }
  };
}

const round = (x: number) => Math.round(x * 100) / 100;
