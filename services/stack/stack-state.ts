import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { writeSecretFileAtomic } from '../../common/secrets.js';
import { freePort } from './managed-process.js';
import type { NatsServerSecrets } from './nats-server.js';

export const STATE_FILE = 'stack-state.json';

/** The parts of the embedded stack that listen on a port of their own. */
export type StackPort =
  | 'nats'
  | 'temporal'
  | 'temporalUi'
  | 'controlPlane'
  | 'controlPlaneMetrics'
  | 'orchestratorMetrics'
  | 'gpuWorkerMetrics';

/**
 * What an embedded stack keeps in its data dir across restarts (mode 0600: it holds the NATS
 * secrets): the ports it listened on, so devices, shells and dashboards pointed at it find it
 * again after a restart, and the NATS secrets, so `EDGEFORGE_NATS_URL` exported in another shell
 * stays valid.
 */
export interface StackState {
  ports: Partial<Record<StackPort, number>>;
  natsSecrets?: NatsServerSecrets;
}

export async function loadStackState(dataDir: string): Promise<StackState> {
  try {
    const state = JSON.parse(await readFile(join(dataDir, STATE_FILE), 'utf8')) as StackState;
    return { ports: state.ports ?? {}, natsSecrets: state.natsSecrets };
  } catch {
    // None yet (a first start), or unreadable: start fresh; it is rewritten once up.
    return { ports: {} };
  }
}

export async function saveStackState(dataDir: string, state: StackState): Promise<void> {
  await writeSecretFileAtomic(join(dataDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

/**
 * The port `part` had last time when it is free now; else a free one, saying so (whoever was
 * pointed at the old one must be told the new one).
 */
export async function stablePort(
  state: StackState,
  part: StackPort,
  say: (message: string) => void,
): Promise<number> {
  const previous = state.ports[part];
  let port: number;
  if (previous !== undefined && (await isFree(previous))) {
    port = previous;
  } else {
    port = await freePort();
    if (previous !== undefined) {
      say(`port ${previous} of the ${part} is taken now: using ${port} (clients must move)`);
    }
  }
  state.ports[part] = port;
  return port;
}

async function isFree(port: number): Promise<boolean> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  try {
    // Rejects with the 'error' event (EADDRINUSE) instead.
    await once(server, 'listening');
  } catch {
    return false;
  }
  server.close();
  await once(server, 'close');
  return true;
}
