import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ThrottledProxy {
  port: number;
  /** Bytes sent from the server to clients so far. */
  readonly downstreamBytes: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 to `targetPort` that lets server-to-client traffic through at about
 * `bytesPerSecond`: a slow edge link, so a test can act while a download is under way. When
 * either side closes, the other is closed too, as a real link would be; a new client connection
 * dials the target again (so it reaches a restarted server).
 */
export async function startThrottledProxy(
  targetPort: number,
  bytesPerSecond: number,
): Promise<ThrottledProxy> {
  const sockets = new Set<Socket>();
  let downstreamBytes = 0;
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    void (async () => {
      // Slices of a tenth of a second's worth: smooth enough for the client, cheap enough here.
      const slice = Math.max(1, Math.floor(bytesPerSecond / 10));
      for await (const chunk of upstream as AsyncIterable<Buffer>) {
        for (let at = 0; at < chunk.length; at += slice) {
          if (client.destroyed) return;
          const part = chunk.subarray(at, at + slice);
          client.write(part);
          downstreamBytes += part.length;
          await sleep((part.length / bytesPerSecond) * 1000);
        }
      }
    })().catch(() => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get downstreamBytes() {
      return downstreamBytes;
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
