/**
 * The Temporal contract shared by the workflows, the control plane and the Python gpu worker:
 * activity names and payload shapes. Pure module: workflow code imports it directly.
 *
 * Payloads that cross to Python are plain JSON with snake_case keys, mirrored as dataclasses in
 * services/gpu-worker/edgeforge_gpu/contracts.py.
 */

/**
 * The Python activities served on the `edgeforge-gpu` task queue, keyed by the names they are
 * registered under (services/gpu-worker/edgeforge_gpu/activities/__init__.py).
 */
export interface GpuActivities {
  describe_environment(): Promise<GpuEnvironment>;
}

/** What the gpu worker reports about the machine it trains on. */
export interface GpuEnvironment {
  python_version: string;
  torch_version: string;
  onnxruntime_version: string;
  cuda_available: boolean;
  /** e.g. "NVIDIA H100 80GB HBM3"; null without CUDA. */
  cuda_device_name: string | null;
  /** "cuda" or "cpu": where this worker trains. */
  training_device: 'cuda' | 'cpu';
  hostname: string;
}

/** Result of the cross-language smoke workflow. */
export interface SmokeResult {
  gpu: GpuEnvironment;
  kv: { bucket: string; key: string; written: string; read: string; revision: number };
}
