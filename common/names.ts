/**
 * Every NATS bucket, subject, key and Temporal task-queue name lives here; no other file spells
 * one out. The desired-state layout is built for per-device permissions (docs/rollouts.md,
 * "Release tracks"): a device reads `device.<its id>` and `track.<its class>.*` of the
 * desired-state bucket, nothing else; the orchestrator alone writes there.
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
  /** Pending enrolments (a known name with another device key) and one-time enrollment tokens. */
  enrollments: 'edgeforge_enrollments',
  /** Scratch bucket that smoke checks write to; never holds product state. */
  probe: 'edgeforge_probe',
} as const;

export const OBJECT_BUCKETS = {
  /**
   * Everything the gpu worker makes (teachers, logits, checkpoints, every variant): central
   * services only. Devices read models from their class's release bucket (releaseBucket).
   */
  models: 'edgeforge_models',
} as const;

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Hardware class keys (common/hardware) and rollout ids are single subject tokens. */
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

function token(what: string, value: string, pattern = TOKEN): string {
  if (!pattern.test(value)) {
    throw new RangeError(
      `${what} ${JSON.stringify(value)} is not a subject token of [A-Za-z0-9_-]`,
    );
  }
  return value;
}

/**
 * Desired-state key of one device's own entry, `device.<deviceId>`: set only where the device
 * must differ from its track (a canary's benchmark candidates, a pinned model).
 */
export function deviceDesiredKey(deviceId: string): string {
  return `device.${token('device id', deviceId, DEVICE_ID)}`;
}

/** Desired-state key of a release track: what one cohort of a hardware class should run. */
export function trackKey(hardwareClass: string, cohort: number): string {
  if (!Number.isInteger(cohort) || cohort < 0 || cohort > 99) {
    throw new RangeError(`cohort ${cohort} is not an integer in 0..99`);
  }
  return `${trackPrefix(hardwareClass)}${String(cohort).padStart(2, '0')}`;
}

/** `track.<hardwareClass>.`: every cohort of the class's track starts with it. */
export function trackPrefix(hardwareClass: string): string {
  return `track.${token('hardware class', hardwareClass)}.`;
}

/**
 * Rollouts-bucket key of a class's lease: the one rollout that may change the class's tracks.
 * Created with compare-and-swap, deleted when that rollout's class workflow ends.
 */
export function classLeaseKey(hardwareClass: string): string {
  return `lease.${token('hardware class', hardwareClass)}`;
}

export const CLASS_LEASE_PREFIX = 'lease.';

/**
 * Rollouts-bucket key of a rollout's outcome counts for one class, kept by the control plane
 * from the device registry (services/control-plane/rollouts/census.ts).
 */
export function censusKey(rolloutId: string, hardwareClass: string): string {
  return `census.${token('rollout id', rolloutId)}.${token('hardware class', hardwareClass)}`;
}

/** Rollouts-bucket key of a class's tracks as they were before a rollout changed them. */
export function trackSnapshotKey(rolloutId: string, hardwareClass: string): string {
  return `previous.${token('rollout id', rolloutId)}.${token('hardware class', hardwareClass)}`;
}

/**
 * Object store of one hardware class's released models: the candidates its canaries benchmark
 * and the winner, copied there from OBJECT_BUCKETS.models when they are signed. A device may
 * read its own class's release bucket and no other (services/control-plane/nats-auth).
 */
export function releaseBucket(hardwareClass: string): string {
  return `edgeforge_release_${token('hardware class', hardwareClass)}`;
}

/** The stream behind an object store bucket. */
export function objectStream(bucket: string): string {
  return `OBJ_${bucket}`;
}

/** The stream behind a KV bucket. */
export function kvStream(bucket: string): string {
  return `KV_${bucket}`;
}

/** The subject a KV bucket's key is stored (and published) on. */
export function kvSubject(bucket: string, key: string): string {
  return `$KV.${bucket}.${key}`;
}

/**
 * The inbox prefix of a device's NATS connection: replies to its requests and its consumers'
 * deliveries go to `_INBOX.<deviceId>.…`, the only inboxes its permissions let it subscribe to
 * (a shared `_INBOX.>` would let one device read every other's replies).
 */
export function deviceInboxPrefix(deviceId: string): string {
  return `_INBOX.${token('device id', deviceId, DEVICE_ID)}`;
}

/** The subject nats-server sends auth callout requests to (services/control-plane/nats-auth). */
export const NATS_AUTH_CALLOUT_SUBJECT = '$SYS.REQ.USER.AUTH';
