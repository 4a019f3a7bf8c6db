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
}

export interface RunningNatsServer {
  url: string;
  port: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** Starts nats-server with JetStream on 127.0.0.1 and waits until it accepts clients. */
export async function startNatsServer(options: NatsServerOptions): Promise<RunningNatsServer> {
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
    logFile: options.logFile,
  });
  try {
    const match = await proc.waitForLine(
      /Listening for client connections on [\d.]+:(\d+)/,
      20_000,
    );
    await proc.waitForLine(/Server is ready/, 20_000);
    const port = Number(match[1]);
    return { url: `nats://127.0.0.1:${port}`, port, process: proc, stop: () => proc.stop() };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}
