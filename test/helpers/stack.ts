import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { inject, onTestFinished } from 'vitest';
import { connectNats, type NatsConnection } from '../../common/nats.js';

/** Addresses of the services that global-setup.ts started for this run. */
export interface TestStack {
  /** Full-access NATS user (what the central services use). */
  natsUrl: string;
  /** The server only (what the control plane hands to agents: they bring their credential). */
  agentNatsUrl: string;
  /** The system-account user (the control plane closes devices' connections with it). */
  systemNatsUrl: string;
  /** Seed of the auth callout issuer the server trusts (the control plane signs with it). */
  calloutIssuerSeed: string;
  temporalAddress: string;
  logDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: TestStack;
  }
}

export function testStack(): TestStack {
  return inject('stack');
}

/**
 * A NATS connection to the shared test server (or to `url`, e.g. a TestNatsCluster's), drained
 * when the test finishes.
 */
export async function testNats(
  name = 'edgeforge-test',
  url = testStack().natsUrl,
): Promise<NatsConnection> {
  const nats = await connectNats(url, { name });
  onTestFinished(async () => {
    await nats.drain();
  });
  return nats;
}

/**
 * Temporal client and worker connections to the shared dev server (or the one at `address`),
 * closed after the test.
 */
export async function testTemporal(address = testStack().temporalAddress): Promise<{
  client: Client;
  workerConnection: NativeConnection;
}> {
  const connection = await Connection.connect({ address });
  const workerConnection = await NativeConnection.connect({ address });
  onTestFinished(async () => {
    await connection.close();
    await workerConnection.close();
  });
  return { client: new Client({ connection }), workerConnection };
}

/** A task queue no other test uses, so that tests sharing one server never steal each other's tasks. */
export function uniqueTaskQueue(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}
