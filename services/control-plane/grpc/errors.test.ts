import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  sendableDetails,
  toGrpcStatus,
} from './errors.js';

describe('toGrpcStatus', () => {
  it('names the field of an invalid argument and keeps precondition messages', () => {
    expect(toGrpcStatus(new InvalidArgumentError('spec_json', 'is empty'))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'spec_json: is empty',
    });
    expect(toGrpcStatus(new FailedPreconditionError('a running rollout owns x')).code).toBe(
      status.FAILED_PRECONDITION,
    );
  });

  it('says UNAVAILABLE, to retry, while NATS is down or electing a stream leader', () => {
    for (const message of [
      'no responders',
      'jetstream is not enabled',
      'jetstream temporarily unavailable',
    ]) {
      expect(toGrpcStatus(new Error(message))).toEqual({
        code: status.UNAVAILABLE,
        details: 'the fleet registry (NATS) is unreachable; retry with backoff',
      });
    }
    const timeout = Object.assign(new Error('timeout'), { name: 'TimeoutError' });
    expect(toGrpcStatus(timeout).code).toBe(status.UNAVAILABLE);
  });

  it('keeps anything unexpected INTERNAL, without its details', () => {
    expect(toGrpcStatus(new Error('secret stack'))).toEqual({
      code: status.INTERNAL,
      details: 'internal error; the control plane log has the details',
    });
  });
});

describe('sendableDetails', () => {
  it('replaces lone surrogates (encodeURI would throw on them) and cuts long details', () => {
    const quoted = toGrpcStatus(new InvalidArgumentError('profile.arch', 'is "\ud83d"')).details;
    expect(() => encodeURI(quoted)).not.toThrow();
    expect(quoted).toBe('profile.arch: is "\ufffd"');
    expect(sendableDetails('😀 ok')).toBe('😀 ok');
    expect(sendableDetails('x'.repeat(5000))).toHaveLength(1024 + 3);
  });
});
