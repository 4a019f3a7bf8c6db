import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadNatsReplicas } from './config.js';
import { ServiceUnreachableError } from './errors.js';

export type { NatsConnection };

export interface NatsConnectOptions {
  /** Shown in the server's connection list: which component this is. */
  name: string;
  /** Credentials, when the server requires them (deploy/nats). */
  user?: string;
  pass?: string;
  /** How long the first connect may take before giving up. */
  timeoutMs?: number;
}

/**
 * Connects to NATS and keeps reconnecting forever after the first success (devices and the
 * control plane must survive server restarts). `url` is one server or several nodes of a cluster
 * separated by commas (`parseNatsUrl`); the client moves to another node when its node goes away.
 * The first connect fails fast with an error that names the address and the fix.
 */
export async function connectNats(
  url: string,
  options: NatsConnectOptions,
): Promise<NatsConnection> {
  const { servers, user, pass } = parseNatsUrl(url);
  try {
    return await connect({
      servers,
      name: options.name,
      user: options.user ?? user,
      pass: options.pass ?? pass,
      timeout: options.timeoutMs ?? 5_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
    });
  } catch (cause) {
    throw new ServiceUnreachableError(
      `cannot reach NATS at ${redactUrl(url)} (${(cause as Error).message}). Start the embedded stack with ` +
        '`edgeforge up`, or set EDGEFORGE_NATS_URL to your NATS server.',
      { cause, context: { natsUrl: redactUrl(url) } },
    );
  }
}

/**
 * nats://user:pass@host:port → the server and the credentials: URLs carry credentials through
 * one environment variable (EDGEFORGE_NATS_URL), but the client takes them as options.
 */
export function splitCredentials(url: string): { server: string; user?: string; pass?: string } {
  const match = /^([a-z]+:\/\/)([^:@/]+):([^@/]*)@(.+)$/.exec(url);
  if (!match) return { server: url };
  const [, scheme, user, pass, rest] = match;
  return {
    server: `${scheme}${rest}`,
    user: decodeURIComponent(user!),
    pass: decodeURIComponent(pass!),
  };
}

/**
 * EDGEFORGE_NATS_URL → the servers and the credentials. It is one URL, or the nodes of one
 * cluster separated by commas: `nats://user:pass@10.0.0.1:4222,10.0.0.2:4222,10.0.0.3:4222` (a
 * node written without a scheme takes the first one's; credentials may be written on any node,
 * the first ones found count for all).
 */
export function parseNatsUrl(url: string): { servers: string[]; user?: string; pass?: string } {
  const parts = url
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  const scheme = /^[a-z]+:\/\//.exec(parts[0] ?? '')?.[0] ?? '';
  let user: string | undefined;
  let pass: string | undefined;
  const servers = parts.map((part) => {
    const split = splitCredentials(/^[a-z]+:\/\//.test(part) ? part : `${scheme}${part}`);
    if (user === undefined && split.user !== undefined) {
      user = split.user;
      pass = split.pass;
    }
    return split.server;
  });
  return { servers, ...(user === undefined ? {} : { user, pass }) };
}

/** The URL with any password masked (every node's, in a list), for logs and error messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/,]+):[^@/,]*@/g, '//$1:***@');
}

/**
 * Options for creating a KV bucket or an object store, so that every bucket gets the replica
 * count of EDGEFORGE_NATS_REPLICAS (1 for a single nats-server, 3 on a three-node cluster):
 * `new Kvm(nc).create(KV_BUCKETS.devices, bucketOptions({ history: 1 }))`,
 * `new Objm(nc).create(OBJECT_BUCKETS.models, bucketOptions())`. A `replicas` in `options` wins.
 * It applies when the bucket is created: `create` opens an existing bucket as it is.
 */
export function bucketOptions<T extends object = Record<never, never>>(
  options?: T,
  replicas: number = loadNatsReplicas(),
): T & { replicas: number } {
  return { replicas, ...(options ?? ({} as T)) };
}

/** A KV update or create that lost a compare-and-swap race: read again and retry. */
export function isRevisionConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/**
 * `make()`, once it has succeeded: later calls share that result, concurrent ones the pending
 * call. A call that failed is not kept, so the next one tries again. For buckets opened lazily,
 * `const rollouts = onceSucceeded(() => new Kvm(nats).create(KV_BUCKETS.rollouts, bucketOptions()))`:
 * a create that timed out while a NATS node failed over must not fail every later call of the
 * process (a cached rejected promise does, even on a healthy cluster).
 */
export function onceSucceeded<T>(make: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () =>
    (pending ??= make().catch((err: unknown) => {
      pending = undefined;
      throw err;
    }));
}
