import { status } from '@grpc/grpc-js';
import {
  Client,
  Connection,
  ServiceError,
  isGrpcDeadlineError,
  isGrpcServiceError,
} from '@temporalio/client';
import type { Logger } from 'pino';
import { EdgeforgeError, ServiceUnreachableError } from '../../../common/errors.js';

export interface TemporalSettings {
  /** host:port of the Temporal frontend. */
  address: string;
  namespace: string;
}

/** The control plane was started without a Temporal connection, or its namespace is missing. */
export class TemporalNotConfiguredError extends EdgeforgeError {
  override name = 'TemporalNotConfiguredError';
}

/** Temporal did not answer; the message names the address and the fix. */
export class TemporalUnavailableError extends ServiceUnreachableError {
  override name = 'TemporalUnavailableError';
}

export interface RolloutTemporalOptions {
  /** How long the first connection may take. */
  connectTimeoutMs: number;
  /** After a failed connect, calls fail at once for this long instead of each waiting again. */
  retryAfterMs: number;
  /** Deadline of each call unless the caller gives one. */
  callTimeoutMs: number;
}

const DEFAULTS: RolloutTemporalOptions = {
  connectTimeoutMs: 5_000,
  retryAfterMs: 2_000,
  callTimeoutMs: 10_000,
};

/**
 * The control plane's Temporal client, connected on first use rather than at start: the fleet
 * API (enrollment, heartbeats) must work while Temporal is down or not deployed yet, and only the
 * rollout calls need it. A failed connect is retried on a later call.
 */
export class RolloutTemporal {
  readonly settings: TemporalSettings | undefined;
  readonly #log: Logger;
  readonly #options: RolloutTemporalOptions;
  #connection: Connection | null = null;
  #client: Promise<Client> | null = null;
  #lastFailure: { at: number; error: EdgeforgeError } | null = null;
  #closed = false;

  constructor(
    settings: TemporalSettings | undefined,
    log: Logger,
    options: Partial<RolloutTemporalOptions> = {},
  ) {
    this.settings = settings;
    this.#log = log;
    this.#options = { ...DEFAULTS, ...options };
  }

  get configured(): boolean {
    return this.settings !== undefined;
  }

  /** "Temporal at host:port (namespace x)", for messages. */
  get where(): string {
    return this.settings
      ? `Temporal at ${this.settings.address} (namespace ${this.settings.namespace})`
      : 'Temporal (not configured)';
  }

  /**
   * Runs `fn` with a connected client and a deadline. Temporal being unreachable or too slow
   * becomes a TemporalUnavailableError that says what failed and what to do.
   */
  async run<T>(what: string, fn: (client: Client) => Promise<T>, timeoutMs?: number): Promise<T> {
    const client = await this.client();
    try {
      return await client.withDeadline(
        Date.now() + (timeoutMs ?? this.#options.callTimeoutMs),
        () => fn(client),
      );
    } catch (err) {
      if (isUnavailable(err)) {
        throw new TemporalUnavailableError(
          `${what}: ${this.where} did not answer (${grpcDetails(err)}). ${this.#fix()}`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async client(): Promise<Client> {
    if (!this.settings) {
      throw new TemporalNotConfiguredError(
        'this control plane has no Temporal connection, so it cannot run rollouts: start it with ' +
          'EDGEFORGE_TEMPORAL_ADDRESS (and EDGEFORGE_TEMPORAL_NAMESPACE) set, or use `edgeforge up`',
      );
    }
    if (this.#closed) throw new TemporalUnavailableError('the control plane is stopping');
    if (!this.#client) {
      const failure = this.#lastFailure;
      if (failure && Date.now() - failure.at < this.#options.retryAfterMs) throw failure.error;
      const connecting = this.#connect(this.settings);
      this.#client = connecting;
      void connecting.catch(() => {
        if (this.#client === connecting) this.#client = null;
      });
    }
    return this.#client;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = null;
    this.#client = null;
    await connection?.close();
  }

  async #connect(settings: TemporalSettings): Promise<Client> {
    const connection = Connection.lazy({
      address: settings.address,
      connectTimeout: this.#options.connectTimeoutMs,
    });
    try {
      await connection.ensureConnected();
      await connection.withDeadline(Date.now() + this.#options.connectTimeoutMs, () =>
        connection.workflowService.describeNamespace({ namespace: settings.namespace }),
      );
    } catch (cause) {
      await connection.close();
      const error =
        isGrpcServiceError(cause) && cause.code === status.NOT_FOUND
          ? new TemporalNotConfiguredError(
              `namespace ${settings.namespace} does not exist on Temporal at ${settings.address}: ` +
                `create it (temporal operator namespace create ${settings.namespace}) or set ` +
                'EDGEFORGE_TEMPORAL_NAMESPACE to an existing one',
              { cause },
            )
          : new TemporalUnavailableError(
              `cannot reach ${this.where} (${grpcDetails(cause)}). ${this.#fix()}`,
              { cause },
            );
      this.#lastFailure = { at: Date.now(), error };
      this.#log.warn({ err: error, temporal: settings.address }, 'temporal connection failed');
      throw error;
    }
    if (this.#closed) {
      await connection.close();
      throw new TemporalUnavailableError('the control plane is stopping');
    }
    this.#connection = connection;
    this.#lastFailure = null;
    this.#log.info(
      { temporal: settings.address, namespace: settings.namespace },
      'temporal connected',
    );
    return new Client({ connection, namespace: settings.namespace });
  }

  #fix(): string {
    return (
      'Start the embedded stack with `edgeforge up`, or point EDGEFORGE_TEMPORAL_ADDRESS at ' +
      'your Temporal frontend, then retry'
    );
  }
}

function grpcCause(err: unknown): unknown {
  return err instanceof ServiceError && err.cause ? err.cause : err;
}

/** Temporal is down, unreachable, or slower than the deadline. */
export function isUnavailable(err: unknown): boolean {
  const cause = grpcCause(err);
  if (isGrpcDeadlineError(cause)) return true;
  return (
    isGrpcServiceError(cause) && [status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(cause.code)
  );
}

function grpcDetails(err: unknown): string {
  const cause = grpcCause(err);
  if (isGrpcServiceError(cause)) return cause.details || status[cause.code];
  return cause instanceof Error ? cause.message : String(cause);
}
