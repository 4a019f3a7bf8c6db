/**
 * A worker thread of `npm run bench -- fanout`: a share of the simulated agents, each with its
 * own NATS connection as the read-only agent user, downloading the model the way a real agent
 * does. Real agents are separate devices; one event loop serving a thousand sockets starved some
 * for over a minute, and nats-server cut them off as slow consumers, so the load generator
 * spreads its agents over several threads.
 *
 * Protocol (parentPort): the worker connects its agents and posts {connected}; on 'go' every agent
 * downloads (a failed transfer starts over after the agent's backoff, up to 10 times); each verified download posts
 * {verified}, a retry {retry}; at the end it posts {done, failures}; on 'close' it disconnects and
 * exits. In raw mode the connections just read the object back to back (FanoutWorkerData).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { jetstream } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { DEFAULT_DOWNLOAD_STALL_MS } from '../agent/agent.js';
import { downloadObject, OBJECT_STORE_API_TIMEOUT_MS } from '../agent/download/object-download.js';
import { discardPartial } from '../agent/download/partial-download.js';
import { Backoff, DEFAULT_BACKOFF } from '../agent/heartbeat/backoff.js';
import type { ObjectRef } from '../common/manifest.js';
import { connectNats, type NatsConnection } from '../common/nats.js';

export interface FanoutWorkerData {
  /**
   * agents: download as agents do, once each. raw: each connection streams and hashes the object
   * `times` times back to back, no file: the object store's read rate, the fan-out's limit.
   */
  mode: 'agents' | 'raw';
  url: string;
  /** Agent numbers [first, first + count). */
  first: number;
  count: number;
  ref: ObjectRef;
  downloads: string;
  times: number;
}

export type FanoutWorkerMessage =
  | { kind: 'connected' }
  | { kind: 'verified' }
  | { kind: 'retry'; error: string }
  | { kind: 'done'; failures: number; errors: string[] };

/** A real agent retries until it succeeds; the benchmark has to end. */
const MAX_ATTEMPTS = 10;

/**
 * What an agent does with a model (agent/download/model-fetcher.ts): the agent's own
 * downloadObject (stream into a file, size and sha256 checked, fsync; a transfer without a chunk
 * for DEFAULT_DOWNLOAD_STALL_MS fails, and so does one the connection dropped under), then the
 * file is removed again.
 */
async function agentDownload(
  nc: NatsConnection,
  ref: ObjectRef,
  file: string,
  signal: AbortSignal,
): Promise<void> {
  const js = jetstream(nc, { timeout: OBJECT_STORE_API_TIMEOUT_MS });
  const store = await new Objm(js).open(ref.bucket);
  try {
    await downloadObject(store, ref, file, { js, stallMs: DEFAULT_DOWNLOAD_STALL_MS, signal });
  } finally {
    // The benchmark counts transfers started over: no attempt resumes an earlier one's file.
    await discardPartial(file);
  }
}

/** Streams the object and checks its digest: the read path alone. */
async function streamAndHash(nc: NatsConnection, ref: ObjectRef): Promise<void> {
  const result = await (await new Objm(nc).open(ref.bucket)).get(ref.name);
  if (!result) throw new Error(`object ${ref.name} missing`);
  const hash = createHash('sha256');
  for await (const chunk of result.data) hash.update(chunk);
  if (hash.digest('hex') !== ref.sha256) throw new Error('digest mismatch');
}

/** An abort signal per attempt that fires when `nc` reconnects, as the agent's NatsLink does. */
function attemptsOf(nc: NatsConnection): () => AbortSignal {
  let current = new AbortController();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'reconnect') current.abort(new Error('reconnected mid-transfer'));
    }
  })();
  return () => (current = new AbortController()).signal;
}

async function main(): Promise<void> {
  const port = parentPort!;
  const data = workerData as FanoutWorkerData;
  const post = (m: FanoutWorkerMessage) => port.postMessage(m);
  const agents = Array.from({ length: data.count }, (_, k) => data.first + k);
  const connections = await Promise.all(
    agents.map((n) => connectNats(data.url, { name: `bench-agent-${n}`, timeoutMs: 30_000 })),
  );
  const next = (expected: string) =>
    new Promise<void>((resolve) =>
      port.once('message', (m) => {
        if (m === expected) resolve();
      }),
    );
  const go = next('go');
  post({ kind: 'connected' });
  await go;

  const outcomes = await Promise.allSettled(
    connections.map(async (nc, k) => {
      if (data.mode === 'raw') {
        for (let i = 0; i < data.times; i++) await streamAndHash(nc, data.ref);
        return;
      }
      const file = join(data.downloads, `agent-${agents[k]}.onnx`);
      const nextAttempt = attemptsOf(nc);
      const backoff = new Backoff(DEFAULT_BACKOFF);
      for (let attempt = 1; ; attempt++) {
        try {
          await agentDownload(nc, data.ref, file, nextAttempt());
          post({ kind: 'verified' });
          return;
        } catch (err) {
          if (attempt >= MAX_ATTEMPTS) throw err;
          post({ kind: 'retry', error: (err as Error).message });
          await setTimeout(backoff.next());
        }
      }
    }),
  );
  const errors = outcomes.flatMap((o) =>
    o.status === 'rejected' ? [(o.reason as Error).message] : [],
  );
  const close = next('close');
  post({ kind: 'done', failures: errors.length, errors: errors.slice(0, 3) });
  await close;
  await Promise.all(connections.map((nc) => nc.close()));
}

await main();
