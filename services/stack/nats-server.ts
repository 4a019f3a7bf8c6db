import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createAccount, fromSeed } from '@nats-io/nkeys';
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
  /** Keep the secrets across a restart on the same port; random otherwise. */
  secrets?: NatsServerSecrets;
  /** This server's name (`--server_name`); nodes of a JetStream cluster need distinct ones. */
  serverName?: string;
  /** Run as a node of a cluster: its route port on 127.0.0.1 and the route URLs of every node. */
  cluster?: {
    name: string;
    /** The route port this node listens on (the others' `routes` name it). */
    port: number;
    /** Every node's route URL, this one's included (a server skips the route to itself). */
    routes: string[];
  };
  /** Serve the HTTP monitoring endpoints (/jsz, /healthz) on a port the server picks. */
  monitor?: boolean;
}

/**
 * What deploy/nats/dev.conf reads from the environment: the central services' password, the
 * system account's (the control plane closes revoked devices' connections through it) and the
 * auth callout's issuer, whose seed the control plane signs devices' user JWTs with.
 */
export interface NatsServerSecrets {
  servicePassword: string;
  systemPassword: string;
  /** An account nkey seed (`SA…`). */
  calloutIssuerSeed: string;
}

export function generateNatsServerSecrets(): NatsServerSecrets {
  return {
    servicePassword: randomPassword(),
    systemPassword: randomPassword(),
    calloutIssuerSeed: new TextDecoder().decode(createAccount().getSeed()),
  };
}

export interface RunningNatsServer {
  /** For the central services: credentials of the full-access user embedded. */
  url: string;
  /** For the control plane's system-account connection (closing device connections). */
  systemUrl: string;
  /**
   * For edge agents: the server only. A device authenticates with its fleet credential and gets
   * its own rights from the control plane's auth callout.
   */
  agentUrl: string;
  port: number;
  secrets: NatsServerSecrets;
  /** http://127.0.0.1:PORT of the monitoring endpoints, with `monitor`. */
  monitorUrl: string | undefined;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Starts nats-server with JetStream on 127.0.0.1 and waits until it accepts clients (a cluster
 * node: until it does; its JetStream may still be waiting for a meta leader). The users of
 * deploy/nats/dev.conf get fresh random passwords (unless `secrets` is given), which the
 * returned URLs carry.
 */
export async function startNatsServer(options: NatsServerOptions): Promise<RunningNatsServer> {
  const secrets = options.secrets ?? generateNatsServerSecrets();
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
      ...(options.serverName ? ['--server_name', options.serverName] : []),
      ...(options.cluster
        ? [
            ...['--cluster_name', options.cluster.name],
            ...['--cluster', `nats://127.0.0.1:${options.cluster.port}`],
            ...['--routes', options.cluster.routes.join(',')],
          ]
        : []),
      // -1: a free port, which the server reports.
      ...(options.monitor ? ['-m', '-1'] : []),
    ],
    env: {
      ...process.env,
      ...natsServerEnvironment(secrets),
    },
    logFile: options.logFile,
  });
  try {
    const match = await proc.waitForLine(
      /Listening for client connections on [\d.]+:(\d+)/,
      20_000,
    );
    const monitor = options.monitor
      ? await proc.waitForLine(/Starting http monitor on [\d.]+:(\d+)/, 20_000)
      : undefined;
    await proc.waitForLine(/Server is ready/, 20_000);
    const port = Number(match[1]);
    return {
      url: `nats://edgeforge:${secrets.servicePassword}@127.0.0.1:${port}`,
      systemUrl: `nats://system:${secrets.systemPassword}@127.0.0.1:${port}`,
      agentUrl: `nats://127.0.0.1:${port}`,
      port,
      secrets,
      monitorUrl: monitor ? `http://127.0.0.1:${monitor[1]}` : undefined,
      process: proc,
      stop: () => proc.stop(),
    };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** The variables deploy/nats/dev.conf reads. */
export function natsServerEnvironment(secrets: NatsServerSecrets): Record<string, string> {
  return {
    EDGEFORGE_NATS_PASSWORD: secrets.servicePassword,
    EDGEFORGE_NATS_SYSTEM_PASSWORD: secrets.systemPassword,
    EDGEFORGE_NATS_CALLOUT_ISSUER: fromSeed(
      new TextEncoder().encode(secrets.calloutIssuerSeed),
    ).getPublicKey(),
  };
}

/**
 * nats-server parses an environment variable in its config as a config value: one starting with
 * a digit or '-' is read as a number and fails. A letter first keeps it a string.
 */
const randomPassword = () => `p${randomBytes(18).toString('hex')}`;
