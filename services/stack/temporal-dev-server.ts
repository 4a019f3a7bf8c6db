import { Connection } from '@temporalio/client';
import { ManagedProcess, freePort, waitForTcp } from './managed-process.js';

export interface TemporalDevServerOptions {
  binary: string;
  /** SQLite file that holds workflow histories; kept across restarts of the stack. */
  dbFile: string;
  port?: number;
  /** Serve the Web UI on this port; headless when absent. */
  uiPort?: number;
  logFile?: string;
}

export interface RunningTemporalDevServer {
  /** host:port of the frontend gRPC service. */
  address: string;
  uiUrl: string | undefined;
  process: ManagedProcess;
  stop(): Promise<void>;
}

const START_ATTEMPTS = 3;

/**
 * Starts `temporal server start-dev` on 127.0.0.1 and waits until its frontend can serve the default
 * namespace. The CLI has no "pick a free port" option, so a port taken between our check and its
 * bind is retried with another one.
 */
export async function startTemporalDevServer(
  options: TemporalDevServerOptions,
): Promise<RunningTemporalDevServer> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = options.port ?? (await freePort());
    const proc = new ManagedProcess({
      name: 'temporal dev server',
      command: options.binary,
      args: [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        ...(options.uiPort ? ['--ui-port', String(options.uiPort)] : ['--headless']),
        '--db-filename',
        options.dbFile,
        '--log-level',
        'warn',
      ],
      logFile: options.logFile,
    });
    try {
      await waitForTcp('127.0.0.1', port, 60_000, proc);
      const address = `127.0.0.1:${port}`;
      await waitUntilServing(address, proc);
      const uiUrl = options.uiPort ? `http://127.0.0.1:${options.uiPort}` : undefined;
      return { address, uiUrl, process: proc, stop: () => proc.stop() };
    } catch (err) {
      lastError = err;
      await proc.stop();
      if (options.port !== undefined) break;
    }
  }
  throw lastError;
}

async function waitUntilServing(address: string, proc: ManagedProcess): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 10_000 });
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        // Serving RPCs and the default namespace exists: workers and clients can start.
        await connection.workflowService.describeNamespace({ namespace: 'default' });
        return;
      } catch {
        // Not up yet.
      }
      if (!proc.isRunning || Date.now() > deadline) {
        throw proc.failure(`did not become healthy at ${address}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await connection.close();
  }
}
