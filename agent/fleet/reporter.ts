import { status } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import {
  StatusEvent,
  type ReportBenchmarkRequest,
  type ReportStatusRequest,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { Backoff, type BackoffOptions } from '../heartbeat/backoff.js';
import { pause } from '../heartbeat/pause.js';
import type { DeviceSession } from './device-session.js';
import { FleetCallError } from './fleet-client.js';

/**
 * Delivers ReportBenchmark and ReportStatus calls. The orchestrator waits on them, so a transient
 * failure (the control plane restarting, the network) or a rejected credential (the heartbeat
 * loop enrolls again meanwhile) is retried with backoff until the call goes through or the agent
 * stops. Other failures (INVALID_ARGUMENT, say) cannot be fixed by retrying: logged, dropped.
 * ReportBenchmark is idempotent on the control plane, so a retry of a report that did arrive
 * records nothing twice. Reports outlive the step that produced them (a newer desired state
 * does not cancel the report of what the device already did); only stopping the agent does.
 */
export class Reporter {
  readonly #session: DeviceSession;
  readonly #backoff: BackoffOptions;
  readonly #logger: Logger;
  readonly #signal: AbortSignal;

  constructor(options: {
    session: DeviceSession;
    backoff: BackoffOptions;
    logger: Logger;
    /** Aborted when the agent stops. */
    signal: AbortSignal;
  }) {
    this.#session = options.session;
    this.#backoff = options.backoff;
    this.#logger = options.logger;
    this.#signal = options.signal;
  }

  async benchmark(request: ReportBenchmarkRequest): Promise<void> {
    const response = await this.#deliver('ReportBenchmark', (signal) =>
      this.#session.reportBenchmark(request, signal),
    );
    if (response) {
      this.#logger.info(
        { rolloutId: request.rolloutId, variant: request.variant, recorded: response.recorded },
        request.error ? 'reported a failed benchmark' : 'reported the benchmark',
      );
    }
  }

  async status(request: ReportStatusRequest): Promise<void> {
    const delivered = await this.#deliver('ReportStatus', (signal) =>
      this.#session.reportStatus(request, signal).then(() => true),
    );
    if (delivered) {
      this.#logger.info(
        {
          event: StatusEvent[request.event],
          rolloutId: request.rolloutId,
          variant: request.variant,
          detail: request.detail,
        },
        'reported the model status',
      );
    }
  }

  /** The call's response, or undefined when it was dropped or the agent stopped. */
  async #deliver<T>(
    method: string,
    call: (signal: AbortSignal) => Promise<T>,
  ): Promise<T | undefined> {
    const signal = this.#signal;
    const backoff = new Backoff(this.#backoff);
    for (;;) {
      try {
        return await call(signal);
      } catch (err) {
        if (signal.aborted) return undefined;
        const retryable =
          err instanceof FleetCallError && (err.transient || err.code === status.UNAUTHENTICATED);
        if (!retryable) {
          this.#logger.error({ err }, `${method} was refused; this report is dropped`);
          return undefined;
        }
        const retryInMs = backoff.next();
        this.#logger.warn(
          { error: err.message, retryInMs: Math.round(retryInMs) },
          `${method} failed; retrying`,
        );
        if (!(await pause(retryInMs, signal))) return undefined;
      }
    }
  }
}
