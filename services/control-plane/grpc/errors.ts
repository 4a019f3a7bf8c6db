import { status } from '@grpc/grpc-js';
import { EdgeforgeError, ServiceUnreachableError } from '../../../common/errors.js';
import { PermissionDeniedError, UnauthenticatedError } from '../auth/credentials.js';
import { RegistryConflictError } from '../registry/device-registry.js';
import {
  TemporalNotConfiguredError,
  TemporalUnavailableError,
} from '../rollouts/temporal-connection.js';

/** A request field is missing or wrong; the message names the field. */
export class InvalidArgumentError extends EdgeforgeError {
  override name = 'InvalidArgumentError';
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

export class NotFoundError extends EdgeforgeError {
  override name = 'NotFoundError';
}

/** What the call would create exists already (a rollout id). */
export class AlreadyExistsError extends EdgeforgeError {
  override name = 'AlreadyExistsError';
}

/** The call cannot be done in the system's current state; the message says what to wait for. */
export class FailedPreconditionError extends EdgeforgeError {
  override name = 'FailedPreconditionError';
}

const MAX_DETAILS = 1024;

/**
 * Details fit to send: grpc-js percent-encodes them into the grpc-message trailer with encodeURI,
 * which throws on a lone surrogate (a client's string cut mid-pair, quoted back), and the call
 * would then get no answer at all. Long ones are cut, at a code point.
 */
export function sendableDetails(details: string): string {
  const points = Array.from(details);
  const cut = points.length > MAX_DETAILS ? `${points.slice(0, MAX_DETAILS).join('')}...` : details;
  return cut.replace(
    /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    '\uFFFD',
  );
}

/**
 * The one place where errors become gRPC status codes. Anything unexpected is INTERNAL, and its
 * details stay in the server log rather than going to the caller.
 */
export function toGrpcStatus(err: unknown): { code: status; details: string } {
  const { code, details } = statusOf(err);
  return { code, details: sendableDetails(details) };
}

function statusOf(err: unknown): { code: status; details: string } {
  if (err instanceof InvalidArgumentError)
    return { code: status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof UnauthenticatedError)
    return { code: status.UNAUTHENTICATED, details: err.message };
  if (err instanceof PermissionDeniedError)
    return { code: status.PERMISSION_DENIED, details: err.message };
  if (err instanceof NotFoundError) return { code: status.NOT_FOUND, details: err.message };
  if (err instanceof RegistryConflictError) return { code: status.ABORTED, details: err.message };
  if (err instanceof AlreadyExistsError)
    return { code: status.ALREADY_EXISTS, details: err.message };
  if (err instanceof FailedPreconditionError)
    return { code: status.FAILED_PRECONDITION, details: err.message };
  // Rollout calls need Temporal; their messages name the address and the fix.
  if (err instanceof TemporalNotConfiguredError)
    return { code: status.FAILED_PRECONDITION, details: err.message };
  if (err instanceof TemporalUnavailableError)
    return { code: status.UNAVAILABLE, details: err.message };
  if (err instanceof ServiceUnreachableError)
    return { code: status.UNAVAILABLE, details: err.message };
  if (isNatsUnavailable(err)) {
    return {
      code: status.UNAVAILABLE,
      details: 'the fleet registry (NATS) is unreachable; retry with backoff',
    };
  }
  return {
    code: status.INTERNAL,
    details: 'internal error; the control plane log has the details',
  };
}

function isNatsUnavailable(err: unknown): boolean {
  const name = (err as Error | undefined)?.name ?? '';
  const message = (err as Error | undefined)?.message ?? '';
  return (
    ['TimeoutError', 'ClosedConnectionError', 'NoRespondersError', 'RequestError'].includes(name) ||
    // A NATS cluster electing a new stream leader answers like this for a few seconds.
    /no responders|temporarily unavailable|jetstream is not enabled/i.test(message)
  );
}
