import { describe, expect, it } from 'vitest';
import { parseHostPort } from './metrics-server.js';

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
