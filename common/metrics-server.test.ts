import { Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseHostPort, serveMetrics } from './metrics-server.js';

describe('parseHostPort', () => {
  it.each([
    ['0.0.0.0:9464', { host: '0.0.0.0', port: 9464 }],
    ['device-7.local:0', { host: 'device-7.local', port: 0 }],
    ['[::1]:9464', { host: '::1', port: 9464 }],
  ])('%s', (address, expected) => {
    expect(parseHostPort(address)).toEqual(expected);
  });

  it.each(['9464', 'host', 'host:', ':9464', '::1:9464', 'host:70000'])('rejects %s', (address) => {
    expect(() => parseHostPort(address)).toThrow(/is not host:port/);
  });
});

describe('serveMetrics', () => {
  it('serves /metrics, and /healthz from the health callback', async () => {
    const register = new Registry();
    new Gauge({ name: 'x_up', help: 'h', registers: [register] }).set(1);
    let health: true | string = true;
    const server = await serveMetrics(register, '127.0.0.1:0', { health: () => health });
    try {
      const metrics = await fetch(server.url);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('x_up 1');
      const healthz = server.url.replace(/\/metrics$/, '/healthz');
      expect((await fetch(healthz)).status).toBe(200);
      health = 'the worker stopped';
      const down = await fetch(healthz);
      expect(down.status).toBe(503);
      expect(await down.text()).toBe('the worker stopped\n');
      expect((await fetch(server.url.replace(/\/metrics$/, '/other'))).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
