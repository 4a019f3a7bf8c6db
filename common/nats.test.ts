import { describe, expect, it } from 'vitest';
import { redactUrl, splitCredentials } from './nats.js';

describe('NATS URLs with credentials', () => {
  it('split into server and credentials', () => {
    expect(splitCredentials('nats://agent:p%40ss@10.0.0.1:4222')).toEqual({
      server: 'nats://10.0.0.1:4222',
      user: 'agent',
      pass: 'p@ss',
    });
    expect(splitCredentials('nats://127.0.0.1:4222')).toEqual({ server: 'nats://127.0.0.1:4222' });
  });

  it('never show the password', () => {
    expect(redactUrl('nats://agent:s3cret@host:4222')).toBe('nats://agent:***@host:4222');
    expect(redactUrl('nats://host:4222')).toBe('nats://host:4222');
  });
});
