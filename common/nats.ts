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
  try {
    return await connect({
      servers: url,
      name: options.name,
      user: options.user,
      pass: options.pass,
      timeout: options.timeoutMs ?? 5_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
    });
  } catch (cause) {
    throw new ServiceUnreachableError(
      `cannot reach NATS at ${url} (${(cause as Error).message}). Start the embedded stack with ` +
        '`edgeforge up`, or set EDGEFORGE_NATS_URL to your NATS server.',
      { cause, context: { natsUrl: url } },
    );
  }
}
