/** Ids that locate a problem in the fleet; every error and log line carries those it knows. */
export interface ErrorContext {
  deviceId?: string;
  rolloutId?: string;
  variant?: string;
  hardwareClass?: string;
  [key: string]: string | number | boolean | undefined;
}

/**
 * Base class for edgeforge's errors: a message that says what went wrong and what to do, the ids
 * involved, and the underlying cause.
 */
export class EdgeforgeError extends Error {
  override name = 'EdgeforgeError';
  readonly context: ErrorContext;

  constructor(message: string, options: { cause?: unknown; context?: ErrorContext } = {}) {
    super(message, { cause: options.cause });
    this.context = options.context ?? {};
  }
}

/** A service edgeforge needs (NATS, Temporal, the control plane) could not be reached. */
export class ServiceUnreachableError extends EdgeforgeError {
  override name = 'ServiceUnreachableError';
}

/** A required program or file is missing from this machine. */
export class MissingPrerequisiteError extends EdgeforgeError {
  override name = 'MissingPrerequisiteError';
}
