import { Connection, WorkflowClient } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { rolloutWorkflowId } from '../../common/rollout.js';

/**
 * What a running gpu activity last reported in its heartbeat: training epochs and batches
 * (prepare_teacher, distill_student) or the variant being built (build_variants). The Python SDK
 * forwards heartbeats to Temporal at most about once a minute, so this is coarse.
 */
export interface ActivityProgress {
  activity: string;
  /** The heartbeat's phase: teacher, distill, variants, loading data, evaluating, ... */
  phase: string;
  epoch?: number;
  epochs?: number;
  batch?: number;
  batches?: number;
  loss?: number;
  accuracy?: number;
  validation_accuracy?: number | null;
  /** build_variants: the format being built, and its step. */
  format?: string;
  step?: string;
  attempt: number;
  /** Why the previous attempt failed, when this is a retry. */
  lastFailure?: string;
}

export interface ActivityProbe {
  /** The rollout workflow's running activities; [] when Temporal cannot tell right now. */
  read(rolloutId: string): Promise<ActivityProgress[]>;
  close(): Promise<void>;
}

/**
 * Reads the rollout workflow's pending activities straight from Temporal, for the training and
 * quantization progress the control plane's status does not carry. Null when Temporal cannot be
 * reached: progress is then shown without it.
 */
export async function openActivityProbe(
  address: string,
  namespace = 'default',
): Promise<ActivityProbe | null> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address, connectTimeout: 2_000 });
  } catch {
    return null;
  }
  const client = new WorkflowClient({ connection, namespace });
  return {
    async read(rolloutId) {
      try {
        const description = await client.getHandle(rolloutWorkflowId(rolloutId)).describe();
        return (description.raw.pendingActivities ?? []).map((a): ActivityProgress => {
          const payload = a.heartbeatDetails?.payloads?.[0];
          let details: Record<string, unknown> = {};
          if (payload) {
            try {
              const value: unknown = defaultPayloadConverter.fromPayload(payload);
              if (value && typeof value === 'object') details = value as Record<string, unknown>;
            } catch {
              // A heartbeat in another shape: show the activity without details.
            }
          }
          return {
            ...(details as Partial<ActivityProgress>),
            activity: a.activityType?.name ?? 'activity',
            phase: typeof details.phase === 'string' ? details.phase : 'starting',
            attempt: a.attempt ?? 1,
            ...(a.lastFailure?.message ? { lastFailure: a.lastFailure.message } : {}),
          };
        });
      } catch {
        return [];
      }
    },
    close: () => connection.close(),
  };
}
