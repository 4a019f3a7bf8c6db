import { status } from '@grpc/grpc-js';
import { DeviceState } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import type { DeviceSession, HeartbeatReport } from '../fleet/device-session.js';
import { FleetCallError } from '../fleet/fleet-client.js';
import { jitter, type Backoff } from './backoff.js';
import { pause } from './pause.js';

/** Used when the control plane leaves nextHeartbeatSeconds unset (0). */
export const DEFAULT_HEARTBEAT_SECONDS = 30;
const INTERVAL_JITTER = 0.1;

export interface HeartbeatLoopOptions {
  session: DeviceSession;
  /** Failures wait `backoff.next()`; a successful heartbeat resets it. */
  backoff: Backoff;
  /** What each heartbeat reports; an idle device when absent. */
  report?: () => HeartbeatReport;
  /** The control plane accepted a beat carrying `report` (its latency counts can be dropped). */
  accepted?: (report: HeartbeatReport) => void;
  /** Replaces the control plane's nextHeartbeatSeconds, which cannot go below 1 s (tests). */
  intervalMs?: number;
}

/**
 * Heartbeats until stopped. Success: the next beat after the control plane's interval ±10%.
 * UNAUTHENTICATED: enroll again (same device name, so the same device id), then beat. Revoked by
 * an operator (PERMISSION_DENIED saying so): one error, then a heartbeat at the backoff's cap,
 * never an enrollment, until the operator lifts it (or deletes the device: the next beat is then
 * UNAUTHENTICATED and it enrolls as new). Anything else: log and back off; transient failures
 * (the control plane restarting, the network) keep the credential, which still works once the
 * control plane is back.
 */
export class HeartbeatLoop {
  readonly #options: HeartbeatLoopOptions;
  readonly #abort = new AbortController();
  #running: Promise<void> | undefined;
  #revoked = false;

  constructor(options: HeartbeatLoopOptions) {
    this.#options = options;
  }

  /** The first heartbeat goes out at once, so the control plane sees the device online. */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Cancels the call in flight and the pending wait; resolves once the loop has exited. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#running;
  }

  /** Whether the last call was refused because an operator revoked this device. */
  get revoked(): boolean {
    return this.#revoked;
  }

  async #run(): Promise<void> {
    const { session, backoff } = this.#options;
    const report = this.#options.report ?? (() => ({ state: DeviceState.DEVICE_STATE_IDLE }));
    const signal = this.#abort.signal;
    let reenroll = false;
    let delayMs = 0;
    while (await pause(delayMs, signal)) {
      try {
        if (reenroll) {
          await session.enroll(signal);
          reenroll = false;
          delayMs = 0;
          continue;
        }
        const sent = report();
        const { nextHeartbeatSeconds } = await session.heartbeat(sent, signal);
        this.#options.accepted?.(sent);
        backoff.reset();
        if (this.#revoked) {
          this.#revoked = false;
          session.logger.info('the control plane accepts this device again (no longer revoked)');
        }
        const intervalMs =
          this.#options.intervalMs ?? (nextHeartbeatSeconds || DEFAULT_HEARTBEAT_SECONDS) * 1000;
        delayMs = jitter(intervalMs, INTERVAL_JITTER);
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof FleetCallError && err.revoked) {
          // Enrolling again is refused too: ask at the slowest pace, and say so once.
          delayMs = jitter(backoff.capMs, INTERVAL_JITTER);
          backoff.next();
          if (!this.#revoked) {
            session.logger.error(
              { error: err.message, code: status[err.code], retryEveryMs: backoff.capMs },
              `${err.method} refused: an operator revoked this device; it will not enrol again ` +
                'by itself (an operator must delete it first) and heartbeats at the slowest pace ' +
                'meanwhile',
            );
          }
          this.#revoked = true;
          reenroll = false;
          continue;
        }
        delayMs = backoff.next();
        reenroll = this.#onFailure(err, reenroll, delayMs);
      }
    }
  }

  /** Logs the failure; returns whether the next attempt is an enrollment. */
  #onFailure(err: unknown, enrolling: boolean, retryInMs: number): boolean {
    const log = this.#options.session.logger;
    // A failed call is an expected event with a status and a message; a stack says nothing more.
    const context =
      err instanceof FleetCallError
        ? { error: err.message, code: status[err.code], retryInMs: Math.round(retryInMs) }
        : { err, retryInMs: Math.round(retryInMs) };
    if (err instanceof FleetCallError && err.transient) {
      log.warn(context, `${err.method} failed; the control plane is unreachable or busy, retrying`);
      return enrolling;
    }
    if (!enrolling && err instanceof FleetCallError && err.code === status.UNAUTHENTICATED) {
      log.warn(context, 'the device credential was rejected (invalid or expired); enrolling again');
      return true;
    }
    // INVALID_ARGUMENT, PERMISSION_DENIED, a refused enrollment token, a full disk: retrying at
    // full speed cannot help, so back off like any failure and say what happened.
    log.error(
      context,
      enrolling
        ? 'enrolling again failed; check the enrollment token and the control plane logs'
        : 'heartbeat failed; this needs a fix in the configuration or the code, retrying meanwhile',
    );
    return enrolling;
  }
}
