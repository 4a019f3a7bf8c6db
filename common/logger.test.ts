import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED } from './logger.js';

describe('logs', () => {
  it('mask secret fields at the top level and one level down, and keep the ids', () => {
    const lines: string[] = [];
    const logger = createLogger('test', 'info', { write: (line: string) => lines.push(line) });
    logger.info(
      {
        deviceId: 'd-1',
        credential: 'efd1.secret-a',
        request: { enrollmentToken: 'secret-b', deviceName: 'pi' },
        identity: { credential: 'secret-c', natsUrl: 'nats://host:4222' },
        nats: { password: 'secret-d', seed: 'SAsecret-e' },
      },
      'enrolled',
    );
    const line = lines.join('');
    expect(line).not.toContain('secret');
    expect(line.split(REDACTED)).toHaveLength(6);
    expect(line).toContain('"deviceId":"d-1"');
    expect(line).toContain('"deviceName":"pi"');
  });
});
