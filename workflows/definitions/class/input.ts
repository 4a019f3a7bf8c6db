import type { StoredObject, VariantResult } from '../../../common/gpu-contracts.js';
import type { RolloutSpec } from '../../../common/rollout.js';

export interface ClassCandidate {
  variant: string;
  planReasons: string[];
  built: VariantResult;
}

/** What the rollout hands one class's workflow: no device lists, whatever the class's size. */
export interface ClassRolloutInput {
  rolloutId: string;
  spec: RolloutSpec;
  hardwareClass: string;
  /** Online devices of the class when the rollout planned (for the record; waves count anew). */
  onlineDevices: number;
  architecture: string;
  /** Ranked by the planner, fp32 last; each as the gpu worker built it. */
  candidates: ClassCandidate[];
  /** The fp32 teacher, manifest-ready, when there is one. */
  teacherReference: VariantResult | null;
  holdout: StoredObject;
  /** The fp32 student's holdout accuracy on the gpu worker. */
  fp32HoldoutAccuracy: number | null;
  teacherSizeBytes: number | null;
}
