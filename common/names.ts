/**
 * Every NATS bucket, subject and Temporal task-queue name lives here; no other file spells one
 * out. The subject layout keeps one key per device so that per-device permissions can be added
 * without renaming anything.
 */

export const TASK_QUEUES = {
  /** TypeScript workflows and fleet/publishing activities. */
  orchestrator: 'edgeforge-orchestrator',
  /** Python activities: training, distillation, export, quantization, evaluation. */
  gpu: 'edgeforge-gpu',
} as const;

export const KV_BUCKETS = {
  devices: 'edgeforge_devices',
  desiredState: 'edgeforge_desired',
  rollouts: 'edgeforge_rollouts',
  /** On-device benchmark reports, one per (rollout, variant, device). */
  benchmarks: 'edgeforge_benchmarks',
  /** Scratch bucket that smoke checks write to; never holds product state. */
  probe: 'edgeforge_probe',
} as const;

export const OBJECT_BUCKETS = {
  models: 'edgeforge_models',
} as const;

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** KV key of a device's desired state: `desired.<deviceId>`. */
export function desiredStateKey(deviceId: string): string {
  if (!DEVICE_ID.test(deviceId)) {
    throw new RangeError(`device id ${JSON.stringify(deviceId)} is not 1-64 of [A-Za-z0-9_-]`);
  }
  return `desired.${deviceId}`;
}
