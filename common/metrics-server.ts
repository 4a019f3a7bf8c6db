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

export interface MetricsServerOptions {
  /**
   * Answers GET /healthz: healthy (200) or a reason why not (503). Without it /healthz says 200
   * while the process serves HTTP.
   */
  health?: () => true | string;
}

/**
 * Serves a prom-client registry on GET /metrics, and GET /healthz, at host:port (port 0 picks a
 * free one).
 */
export async function serveMetrics(
  register: Registry,
  listen: string,
  options: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const { host, port } = parseHostPort(listen);
  const server: Server = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      let health: true | string;
      try {
        health = options.health?.() ?? true;
      } catch (err) {
        health = `health check failed: ${String(err)}`;
      }
      res
        .writeHead(health === true ? 200 : 503, { 'content-type': 'text/plain' })
        .end(health === true ? 'ok\n' : `${health}\n`);
      return;
    }
    if (req.method !== 'GET' || path !== '/metrics') {
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
