import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { MissingPrerequisiteError, ServiceUnreachableError } from '../common/errors.js';
import { RolloutSpecError } from '../common/rollout-spec.js';
import { AdminCallError } from './admin-call-error.js';
import { EXIT, exitCodeForPhase, toCliError } from './exit-codes.js';

describe('exit codes', () => {
  it('a finished rollout exits with what its phase means', () => {
    expect(exitCodeForPhase('succeeded')).toBe(EXIT.ok);
    expect(exitCodeForPhase('partially_succeeded')).toBe(EXIT.partial);
    expect(exitCodeForPhase('failed')).toBe(EXIT.failed);
    expect(exitCodeForPhase('cancelled')).toBe(EXIT.failed);
    expect(exitCodeForPhase('distilling')).toBe(EXIT.ok);
  });

  it('errors map to the code a script can act on', () => {
    const spec = toCliError(
      new RolloutSpecError([{ path: 'waves.percents', problem: 'must rise to 100' }]),
    );
    expect([spec.exitCode, spec.message]).toEqual([
      EXIT.usage,
      'bad rollout spec: waves.percents: must rise to 100',
    ]);
    expect(toCliError(new ServiceUnreachableError('cannot reach NATS')).exitCode).toBe(
      EXIT.unreachable,
    );
    expect(toCliError(new MissingPrerequisiteError('run npm run bootstrap')).exitCode).toBe(
      EXIT.prerequisite,
    );
    expect(
      toCliError(new AdminCallError(status.INVALID_ARGUMENT, 'spec_json.x: bad')).exitCode,
    ).toBe(EXIT.usage);
    expect(toCliError(new AdminCallError(status.FAILED_PRECONDITION, 'no Temporal')).exitCode).toBe(
      EXIT.unreachable,
    );
    expect(toCliError(new AdminCallError(status.NOT_FOUND, 'no rollout r')).message).toBe(
      'NOT_FOUND: no rollout r',
    );
    expect(toCliError(new Error('boom')).exitCode).toBe(EXIT.failed);
  });

  it('a port in use, anywhere in the cause chain, says what to do (exit 5)', () => {
    const cause = Object.assign(
      new Error('listen EADDRINUSE: address already in use 127.0.0.1:9465'),
      {
        code: 'EADDRINUSE',
        address: '127.0.0.1',
        port: 9465,
      },
    );
    const err = toCliError(new Error('cannot serve /metrics on 127.0.0.1:9465', { cause }));
    expect(err.exitCode).toBe(EXIT.prerequisite);
    expect(err.message).toMatch(
      /127\.0\.0\.1:9465 is in use by another process.*--metrics 127\.0\.0\.1:0/s,
    );
  });
});
