import { status } from '@grpc/grpc-js';
import { EdgeforgeError, ServiceUnreachableError } from '../../../common/errors.js';
import { PermissionDeniedError, UnauthenticatedError } from '../auth/credentials.js';
import { RegistryConflictError } from '../registry/device-registry.js';

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

/**
 * The one place where errors become gRPC status codes. Anything unexpected is INTERNAL, and its
 * details stay in the server log rather than going to the caller.
 */
export function toGrpcStatus(err: unknown): { code: status; details: string } {
  if (err instanceof InvalidArgumentError)
    return { code: status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof UnauthenticatedError)
    return { code: status.UNAUTHENTICATED, details: err.message };
  if (err instanceof PermissionDeniedError)
    return { code: status.PERMISSION_DENIED, details: err.message };
  if (err instanceof NotFoundError) return { code: status.NOT_FOUND, details: err.message };
  if (err instanceof RegistryConflictError) return { code: status.ABORTED, details: err.message };
  if (err instanceof ServiceUnreachableError || isNatsUnavailable(err)) {
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
  return ['TimeoutError', 'ClosedConnectionError', 'NoRespondersError', 'RequestError'].includes(
    name,
  );
}
