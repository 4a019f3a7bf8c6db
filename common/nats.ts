import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
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
 * control plane must survive server restarts). The first connect fails fast with an error that
 * names the address and the fix.
 */
export async function connectNats(
  url: string,
  options: NatsConnectOptions,
): Promise<NatsConnection> {
  const { server, user, pass } = splitCredentials(url);
  try {
    return await connect({
      servers: server,
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

/** The URL with any password masked, for logs and error messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/** A KV update or create that lost a compare-and-swap race: read again and retry. */
export function isRevisionConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}
