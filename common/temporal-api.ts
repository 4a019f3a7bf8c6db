/**
 * The Temporal contract shared by the workflows, the control plane and the Python gpu worker:
 * activity names and payload shapes. Pure module: workflow code imports it directly.
 *
 * The gpu worker's payloads (plain JSON, snake_case keys) are generated from its dataclasses into
 * gpu-contracts.ts (`npm run contracts:gen`) and re-exported here.
 */
import type { GpuEnvironment } from './gpu-contracts.js';

// Every payload but TensorSpec, whose name common/manifest.ts already uses for the signed
// manifest's camelCase shape; import the gpu worker's from gpu-contracts.js where it is needed.
export type {
  Architecture,
  BuildVariantsInput,
  DatasetSource,
  DatasetSpec,
  DatasetSummary,
  DistillConfig,
  DistillStudentInput,
  EpochSummary,
  ExportConfig,
  FileRef,
  GpuActivities,
  GpuEnvironment,
  HintConfig,
  HoldoutRef,
  ImportModelInput,
  Optimizer,
  PrepareTeacherInput,
  Schedule,
  StoredObject,
  StudentResult,
  TeacherConfig,
  TeacherResult,
  TeacherSource,
  TrainingConfig,
  TrainingSummary,
  UnsignedManifest,
  VariantFormat,
  VariantMetrics,
  VariantOptions,
  VariantResult,
  VariantSpec,
  VariantsConfig,
  VariantsResult,
} from './gpu-contracts.js';

/** Result of the cross-language smoke workflow. */
export interface SmokeResult {
  gpu: GpuEnvironment;
  kv: { bucket: string; key: string; written: string; read: string; revision: number };
}
