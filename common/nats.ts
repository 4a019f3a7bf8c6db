import { readFileSync } from 'node:fs';
import * as nodeTls from 'node:tls';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import {
  connect,
  tokenAuthenticator,
  type NatsConnection,
  type TlsOptions,
} from '@nats-io/transport-node';
import { loadNatsReplicas } from './config.js';
import { EdgeforgeError, ServiceUnreachableError } from './errors.js';

export type { NatsConnection };

export interface NatsConnectOptions {
  /** Shown in the server's connection list: which component this is. */
  name: string;
  /** Credentials, when the server requires them (deploy/nats). */
  user?: string;
  pass?: string;
  /** A device's fleet credential, read at every (re)connect (the auth callout checks it). */
  token?: () => string;
  /** Where replies to this connection's requests go (a device may read its own inbox only). */
  inboxPrefix?: string;
  /** How long the first connect may take before giving up. */
  timeoutMs?: number;
  /**
   * A CA certificate file (PEM) to trust for the server's certificate, in addition to Node's
   * default CA store; TLS is then required. Default: EDGEFORGE_NATS_CA_FILE, so that every central
   * service (control plane, orchestrator, CLI) takes it the same way (`caFile: ''` ignores it).
   */
  caFile?: string;
}

/** Where a NATS client finds the extra CA for the server's certificate (connectNats' default). */
export const NATS_CA_FILE_ENV = 'EDGEFORGE_NATS_CA_FILE';

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
  const caFile = options.caFile ?? process.env[NATS_CA_FILE_ENV];
  const tls = natsTlsOptions(servers, caFile || undefined);
  try {
    return await connect({
      servers,
      name: options.name,
      ...(options.token
        ? { authenticator: tokenAuthenticator(options.token) }
        : { user: options.user ?? user, pass: options.pass ?? pass }),
      ...(options.inboxPrefix ? { inboxPrefix: options.inboxPrefix } : {}),
      ...(tls ? { tls } : {}),
      timeout: options.timeoutMs ?? 5_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
    });
  } catch (cause) {
    throw new ServiceUnreachableError(connectFailure(redactUrl(url), cause, tls, caFile), {
      cause,
      context: { natsUrl: redactUrl(url) },
    });
  }
}

/** What went wrong connecting, and what to do about it. */
function connectFailure(
  url: string,
  cause: unknown,
  tls: TlsOptions | undefined,
  caFile: string | undefined,
): string {
  const message = (cause as Error).message;
  if (tls && /does not support 'tls'/.test(message)) {
    return (
      `NATS at ${url} offers no TLS, but tls:// or a CA file requires it: the client does not ` +
      'fall back to plaintext. Turn TLS on in the server (a `tls` block), or use a nats:// URL ' +
      `without ${NATS_CA_FILE_ENV} for a server on a trusted network.`
    );
  }
  if (isCertificateError(cause)) {
    return (
      `cannot reach NATS at ${url}: its TLS certificate is not trusted (${message}). ` +
      (caFile
        ? `Check that ${caFile} holds the CA that signed the server's certificate, and that the ` +
          'certificate names the host in the URL.'
        : `Give the CA that signed it: ${NATS_CA_FILE_ENV} (the agent: --nats-ca-file).`)
    );
  }
  return (
    `cannot reach NATS at ${url} (${message}). Start the embedded stack with \`edgeforge up\`, ` +
    'or set EDGEFORGE_NATS_URL to your NATS server.'
  );
}

/**
 * TLS for a tls:// server or an extra CA file: required (the client refuses a server that offers
 * no TLS, so nobody in between can downgrade it), and verified against Node's default CA store
 * plus the extra CA. Otherwise undefined: the client still upgrades when the server requires TLS,
 * verifying against the default store.
 */
export function natsTlsOptions(servers: string[], caFile?: string): TlsOptions | undefined {
  if (caFile === undefined) return servers.some((s) => s.startsWith('tls://')) ? {} : undefined;
  let extra: string;
  try {
    extra = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new EdgeforgeError(
      `cannot read the NATS CA file ${caFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ` +
        `${NATS_CA_FILE_ENV} (the agent: --nats-ca-file) must name a PEM file`,
      { cause: err },
    );
  }
  if (!extra.includes('-----BEGIN CERTIFICATE-----')) {
    throw new EdgeforgeError(
      `the NATS CA file ${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  }
  // Node's `ca` replaces its default store; keep the default roots and add the extra CA (one
  // string of concatenated PEM certificates, which is what the client's types take).
  return { ca: [...defaultCaCertificates(), extra].join('\n') };
}

/** Node's default CA store: its bundled roots (Node 22.15+ adds NODE_EXTRA_CA_CERTS and --use-system-ca). */
function defaultCaCertificates(): readonly string[] {
  const getCACertificates = (nodeTls as { getCACertificates?: (type: 'default') => string[] })
    .getCACertificates;
  return getCACertificates ? getCACertificates('default') : nodeTls.rootCertificates;
}

/** Whether a connect failed on the server's certificate (untrusted, expired, wrong name). */
function isCertificateError(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/.test(code)) return true;
    if (/certificate/i.test(e.message)) return true;
  }
  return false;
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
