import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ManagedProcess } from './managed-process.js';

export const NATS_DEV_CONFIG = fileURLToPath(
  new URL('../../deploy/nats/dev.conf', import.meta.url),
);

export interface NatsServerOptions {
  binary: string;
  /** JetStream storage (KV buckets, model objects). */
  storeDir: string;
  /** 0 (default) lets the server pick a free port, which it then reports. */
  port?: number;
  configFile?: string;
  logFile?: string;
  /** Keep the passwords across a restart on the same port; random otherwise. */
  passwords?: { service: string; agent: string };
}

export interface RunningNatsServer {
  /** For the central services: credentials of the full-access user embedded. */
  url: string;
  /** For edge agents: credentials of the read-only agent user embedded. */
  agentUrl: string;
  port: number;
  passwords: { service: string; agent: string };
  process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Starts nats-server with JetStream on 127.0.0.1 and waits until it accepts clients. The users of
 * deploy/nats/dev.conf get fresh random passwords, which the returned URLs carry.
 */
export async function startNatsServer(options: NatsServerOptions): Promise<RunningNatsServer> {
  const password = options.passwords?.service ?? randomPassword();
  const agentPassword = options.passwords?.agent ?? randomPassword();
  const proc = new ManagedProcess({
    name: 'nats-server',
    command: options.binary,
    args: [
      '-c',
      options.configFile ?? NATS_DEV_CONFIG,
      '-a',
      '127.0.0.1',
      // -1 asks nats-server for a random free port: no race between choosing and binding.
      '-p',
      String(options.port || -1),
      '-js',
      '-sd',
      options.storeDir,
    ],
    env: {
      ...process.env,
      EDGEFORGE_NATS_PASSWORD: password,
      EDGEFORGE_NATS_AGENT_PASSWORD: agentPassword,
    },
    logFile: options.logFile,
  });
  try {
    const match = await proc.waitForLine(
      /Listening for client connections on [\d.]+:(\d+)/,
      20_000,
    );
    await proc.waitForLine(/Server is ready/, 20_000);
    const port = Number(match[1]);
    return {
      url: `nats://edgeforge:${password}@127.0.0.1:${port}`,
      agentUrl: `nats://agent:${agentPassword}@127.0.0.1:${port}`,
      port,
      passwords: { service: password, agent: agentPassword },
      process: proc,
      stop: () => proc.stop(),
    };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/**
 * nats-server parses an environment variable in its config as a config value: one starting with
 * a digit or '-' is read as a number and fails. A letter first keeps it a string.
 */
const randomPassword = () => `p${randomBytes(18).toString('hex')}`;
