import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { onTestFinished } from 'vitest';
import {
  freePort,
  generateNatsServerSecrets,
  loadToolchain,
  startNatsServer,
  type NatsServerSecrets,
  type RunningNatsServer,
} from '../../services/stack/index.js';
import { eventually } from './agents.js';
import { testStack } from './stack.js';

/** One node of a TestNatsCluster. */
export interface NatsClusterNode {
  /** Its server name, e.g. "n1". */
  name: string;
  /** Client port on 127.0.0.1; the same after a restart. */
  clientPort: number;
  /** Route port on 127.0.0.1; the same after a restart. */
  routePort: number;
  /** JetStream storage, kept across a restart. */
  storeDir: string;
  /** The running server; undefined while the node is killed. */
  server: RunningNatsServer | undefined;
}

/** What a node's /jsz says about the JetStream meta group. */
interface MetaCluster {
  leader?: string;
  cluster_size?: number;
  replicas?: { name: string; current: boolean }[];
}

/**
 * A JetStream cluster of real nats-server processes on 127.0.0.1 (deploy/nats/dev.conf's users and
 * limits), every port chosen at run time, each node tethered to the test process like the run's
 * own server and storing in its own folder of the run's temp dir.
 */
export interface TestNatsCluster {
  nodes: readonly NatsClusterNode[];
  /** The folder of the nodes' storage (`<node>/jetstream`) and logs (`<node>.log`). */
  dir: string;
  /** Full-access (service) user, every node: `nats://edgeforge:…@127.0.0.1:A,127.0.0.1:B,…`. */
  url: string;
  /** Every node, no credentials: what agents are given (they bring their own credential). */
  agentUrl: string;
  /** The system-account user, every node. */
  systemUrl: string;
  /** Every node's secrets (the same): the callout issuer seed for the control plane. */
  secrets: NatsServerSecrets;
  /** The service URL of one node only. */
  nodeUrl(index: number): string;
  /** Resolves once every running node agrees on a JetStream meta leader; returns its name. */
  waitForMetaLeader(timeoutMs?: number): Promise<string>;
  /** SIGKILLs one node (no shutdown of any kind) and waits until the process is gone. */
  kill(index: number): Promise<void>;
  /**
   * Starts a killed node again on its ports and storage, then waits until it is back in the
   * cluster with JetStream current (its /healthz).
   */
  restart(index: number, timeoutMs?: number): Promise<void>;
  /** Index of the node named `name` (a leader, as the API or /jsz reports it). */
  indexOf(name: string): number;
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  /** Nodes (3 by default). */
  size?: number;
  /** Where the nodes' storage and logs go; a folder of the run's temp dir by default. */
  dir?: string;
  binary?: string;
}

const START_ATTEMPTS = 3;

/** startNatsCluster, stopped when the test ends. */
export async function startTestNatsCluster(
  options: NatsClusterOptions = {},
): Promise<TestNatsCluster> {
  const cluster = await startNatsCluster(options);
  onTestFinished(() => cluster.stop());
  return cluster;
}

/**
 * Starts `size` nats-server nodes with JetStream routed to each other, and waits until they have
 * a meta leader. Client and monitoring ports are picked by the servers; route ports are picked
 * here (every node must name all of them), so a start that lost one to another process is retried
 * with new ones.
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<TestNatsCluster> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

async function startOnce(options: NatsClusterOptions): Promise<TestNatsCluster> {
  const size = options.size ?? 3;
  const binary = options.binary ?? loadToolchain().natsServer;
  const dir =
    options.dir ?? join(testStack().logDir, `nats-cluster-${randomBytes(4).toString('hex')}`);
  const clusterName = `edgeforge-test-${randomBytes(3).toString('hex')}`;
  const secrets = generateNatsServerSecrets();
  const routePorts: number[] = [];
  while (routePorts.length < size) {
    const port = await freePort();
    if (!routePorts.includes(port)) routePorts.push(port);
  }
  const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`);
  const nodes: NatsClusterNode[] = routePorts.map((routePort, i) => ({
    name: `n${i + 1}`,
    clientPort: 0,
    routePort,
    storeDir: join(dir, `n${i + 1}`, 'jetstream'),
    server: undefined,
  }));

  const startNode = async (node: NatsClusterNode) => {
    await mkdir(node.storeDir, { recursive: true });
    node.server = await startNatsServer({
      binary,
      storeDir: node.storeDir,
      port: node.clientPort,
      secrets,
      serverName: node.name,
      cluster: { name: clusterName, port: node.routePort, routes },
      monitor: true,
      logFile: join(dir, `${node.name}.log`),
    });
    node.clientPort = node.server.port;
  };

  const stop = async () => {
    await Promise.all(nodes.map(async (node) => node.server && (await node.server.stop())));
  };
  try {
    await Promise.all(nodes.map(startNode));
  } catch (err) {
    await stop();
    throw err;
  }

  const hosts = nodes.map((node) => `127.0.0.1:${node.clientPort}`).join(',');
  const running = () => nodes.filter((node) => node.server?.process.isRunning);
  const jsz = async (node: NatsClusterNode): Promise<MetaCluster> => {
    const response = await fetch(`${node.server!.monitorUrl}/jsz`);
    return ((await response.json()) as { meta_cluster?: MetaCluster }).meta_cluster ?? {};
  };

  // 200 once the node's JetStream (meta group, streams and consumers) has caught up.
  const waitHealthy = (node: NatsClusterNode, timeoutMs: number) =>
    eventually(async () => {
      const response = await fetch(`${node.server!.monitorUrl}/healthz`);
      if (!response.ok) throw new Error(`${node.name} /healthz: ${await response.text()}`);
    }, timeoutMs);

  const waitForMetaLeader = (timeoutMs = 30_000) =>
    eventually(async () => {
      const metas = await Promise.all(running().map(jsz));
      const leaders = new Set(metas.map((meta) => meta.leader ?? ''));
      const [leader] = leaders;
      if (leaders.size !== 1 || !leader) {
        throw new Error(`no agreed JetStream meta leader yet: ${[...leaders].join(', ')}`);
      }
      return leader;
    }, timeoutMs);

  const cluster: TestNatsCluster = {
    nodes,
    dir,
    url: `nats://edgeforge:${secrets.servicePassword}@${hosts}`,
    agentUrl: `nats://${hosts}`,
    systemUrl: `nats://system:${secrets.systemPassword}@${hosts}`,
    secrets,
    nodeUrl: (index) =>
      `nats://edgeforge:${secrets.servicePassword}@127.0.0.1:${nodes[index]!.clientPort}`,
    waitForMetaLeader,
    indexOf(name) {
      const index = nodes.findIndex((node) => node.name === name);
      if (index < 0) throw new Error(`no node ${name} in ${nodes.map((n) => n.name).join(', ')}`);
      return index;
    },
    async kill(index) {
      const node = nodes[index]!;
      const server = node.server;
      if (!server) throw new Error(`node ${node.name} is not running`);
      server.process.kill('SIGKILL');
      await server.process.exited;
      node.server = undefined;
    },
    async restart(index, timeoutMs = 60_000) {
      const node = nodes[index]!;
      if (node.server) throw new Error(`node ${node.name} is running`);
      await startNode(node);
      await waitForMetaLeader(timeoutMs);
      await waitHealthy(node, timeoutMs);
    },
    stop,
  };
  try {
    await waitForMetaLeader();
    await Promise.all(nodes.map((node) => waitHealthy(node, 30_000)));
  } catch (err) {
    await stop();
    throw err;
  }
  return cluster;
}
