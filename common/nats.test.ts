import { describe, expect, it } from 'vitest';
import { loadNatsReplicas } from './config.js';
import { bucketOptions, parseNatsUrl, redactUrl, splitCredentials } from './nats.js';

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

describe('a NATS cluster URL', () => {
  it('lists every node, with the credentials of the first that has them', () => {
    expect(parseNatsUrl('nats://u:p@10.0.0.1:4222,10.0.0.2:4222, nats://10.0.0.3:4222')).toEqual({
      servers: ['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222', 'nats://10.0.0.3:4222'],
      user: 'u',
      pass: 'p',
    });
    expect(parseNatsUrl('nats://127.0.0.1:4222')).toEqual({ servers: ['nats://127.0.0.1:4222'] });
  });

  it('never shows any password in the list', () => {
    expect(redactUrl('nats://a:x@h1:1,nats://b:y@h2:2')).toBe(
      'nats://a:***@h1:1,nats://b:***@h2:2',
    );
  });
});

describe('bucket replicas', () => {
  it('come from EDGEFORGE_NATS_REPLICAS, 1 when unset, and a bad value is named', () => {
    expect(loadNatsReplicas({})).toBe(1);
    expect(loadNatsReplicas({ EDGEFORGE_NATS_REPLICAS: '3' })).toBe(3);
    for (const bad of ['0', '6', 'three', '2.5']) {
      expect(() => loadNatsReplicas({ EDGEFORGE_NATS_REPLICAS: bad })).toThrow(
        /EDGEFORGE_NATS_REPLICAS/,
      );
    }
    expect(bucketOptions({ history: 1 }, 3)).toEqual({ replicas: 3, history: 1 });
    expect(bucketOptions({ replicas: 5 }, 3)).toEqual({ replicas: 5 });
  });
});
