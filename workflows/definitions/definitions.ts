import { defineQuery, defineSignal } from '@temporalio/workflow';
import {
  ROLLOUT_QUERIES,
  ROLLOUT_SIGNALS,
  type BenchmarkReportSignal,
  type ClassStatus,
  type RolloutStatus,
} from '../../common/rollout.js';

/** Signals and queries of the rollout workflows, by the names common/rollout.ts fixes. */
export const benchmarkReported = defineSignal<[BenchmarkReportSignal]>(
  ROLLOUT_SIGNALS.benchmarkReported,
);
export const cancelReason = defineSignal<[string]>(ROLLOUT_SIGNALS.cancelReason);
export const rolloutStatus = defineQuery<RolloutStatus>(ROLLOUT_QUERIES.status);

/** A class workflow tells its parent how it stands, so one query answers for the rollout. */
export const classProgress = defineSignal<[ClassStatus]>('classProgress');
