import { InferenceSession } from 'onnxruntime-node';
import { EdgeforgeError } from '../../common/errors.js';

export class ModelLoadError extends EdgeforgeError {
  override name = 'ModelLoadError';
}

/**
 * An ONNX Runtime session on the CPU provider with full graph optimizations, as the device serves
 * and benchmarks with. `threads` 0 or absent leaves intra-op threads at ONNX Runtime's default.
 */
export async function loadSession(
  file: string,
  options: { threads?: number } = {},
): Promise<InferenceSession> {
  try {
    return await InferenceSession.create(file, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    });
  } catch (err) {
    throw new ModelLoadError(`ONNX Runtime cannot load ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
