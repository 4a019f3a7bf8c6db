import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { EdgeforgeError } from './errors.js';

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9464/metrics */
  url: string;
  close(): Promise<void>;
}

/** Serves a prom-client registry on GET /metrics at host:port (port 0 picks a free one). */
export async function serveMetrics(register: Registry, listen: string): Promise<MetricsServer> {
  const { host, port } = parseHostPort(listen);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    register.metrics().then(
      (body) => res.writeHead(200, { 'content-type': register.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(`metrics failed: ${String(err)}\n`),
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new EdgeforgeError(
      `cannot serve /metrics on ${listen}: ${(err as Error).message}` +
        (code === 'EADDRINUSE' ? '; another process has that port: choose another one' : ''),
      { cause: err },
    );
  }
  const boundPort = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}/metrics`,
    // Also drops idle keep-alive connections a scraper may hold open.
    close: async () => {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port" or "[ipv6]:port"; port 0 lets the OS pick one. Throws on anything else. */
export function parseHostPort(address: string): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || port > 65_535) {
    throw new RangeError(`"${address}" is not host:port (e.g. 0.0.0.0:9465, [::1]:9465)`);
  }
  return { host, port };
}
