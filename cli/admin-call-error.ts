import { status } from '@grpc/grpc-js';
import { EdgeforgeError } from '../common/errors.js';

/** The control plane answered an admin call with an error status (not: could not be reached). */
export class AdminCallError extends EdgeforgeError {
  override name = 'AdminCallError';
  constructor(
    readonly code: status,
    readonly details: string,
    options: { cause?: unknown } = {},
  ) {
    // "NOT_FOUND: no device d-1": the status name tells scripts and people what kind of failure.
    super(`${status[code]}: ${details}`, options);
  }
}
