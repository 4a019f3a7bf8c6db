import { WorkflowNotFoundError } from '@temporalio/client';
import type { Logger } from 'pino';
import { ROLLOUT_SIGNALS, classWorkflowId, benchmarkSignal } from '../../../common/rollout.js';
import type { ReportBenchmarkRequest } from '../../../proto/gen/edgeforge/v1/fleet.pb.js';
import { TemporalNotConfiguredError, type RolloutTemporal } from './temporal-connection.js';

/** Where a report goes: the class workflow of the device's hardware class. */
export interface ReportingDevice {
  deviceId: string;
  hardwareClass: string;
}

const SIGNAL_TIMEOUT_MS = 5_000;

/**
 * Forwards canaries' benchmark reports to the rollout's class workflow as signals (status
 * reports reach rollouts as counts: rollouts/census-publisher.ts). A signal is a shortcut, not
 * the record: the report is already stored (benchmarks bucket, device registry), and the workflow
 * re-reads those when signals are missing. So a signal that fails (no such workflow: an old or
 * hand-made rollout id; Temporal down) is logged and dropped, and never fails or slows the
 * device's call: signals are sent in the background.
 */
export class RolloutSignals {
  readonly #temporal: RolloutTemporal;
  readonly #log: Logger;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(temporal: RolloutTemporal, log: Logger) {
    this.#temporal = temporal;
    this.#log = log;
  }

  /** A recorded ReportBenchmark → ROLLOUT_SIGNALS.benchmarkReported. */
  benchmarkReported(device: ReportingDevice, report: ReportBenchmarkRequest): void {
    const signal = benchmarkSignal(device.deviceId, report);
    this.#send(device, report.rolloutId, ROLLOUT_SIGNALS.benchmarkReported, signal);
  }

  /** Waits (up to `timeoutMs`) for signals still being sent, before the connection closes. */
  async drain(timeoutMs = SIGNAL_TIMEOUT_MS): Promise<void> {
    if (this.#inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#inFlight]),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  #send(device: ReportingDevice, rolloutId: string, name: string, payload: object): void {
    if (!this.#temporal.configured) return;
    const workflowId = classWorkflowId(rolloutId, device.hardwareClass);
    const log = this.#log.child({
      deviceId: device.deviceId,
      rolloutId,
      hardwareClass: device.hardwareClass,
      signal: name,
    });
    const sending = this.#temporal
      .run(
        `signalling ${workflowId}`,
        (client) => client.workflow.getHandle(workflowId).signal(name, payload),
        SIGNAL_TIMEOUT_MS,
      )
      .then(
        () => log.debug({ workflowId }, 'report signalled to the rollout'),
        (err: unknown) => {
          if (err instanceof WorkflowNotFoundError) {
            log.info(
              { workflowId },
              'no running workflow for this report (finished, old or hand-made rollout id); the report stays stored',
            );
          } else if (err instanceof TemporalNotConfiguredError) {
            log.warn(
              { err },
              'report not signalled: Temporal is not usable; the report stays stored',
            );
          } else {
            log.warn(
              { err, workflowId },
              'report not signalled; the report stays stored and the workflow re-reads it',
            );
          }
        },
      )
      .finally(() => this.#inFlight.delete(sending));
    this.#inFlight.add(sending);
  }
}
