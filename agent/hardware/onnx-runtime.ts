import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { env, InferenceSession, listSupportedBackends } from 'onnxruntime-node';
import type { HardwareProfile } from '../../common/hardware/index.js';

// onnxruntime-node names its backends in lower case; profiles use ORT's provider names, the ones
// the planner and the benchmark step understand.
const PROVIDER_NAMES: Record<string, string> = {
  cpu: 'CPUExecutionProvider',
  cuda: 'CUDAExecutionProvider',
  tensorrt: 'TensorrtExecutionProvider',
  webgpu: 'WebGpuExecutionProvider',
  dml: 'DmlExecutionProvider',
  coreml: 'CoreMLExecutionProvider',
  qnn: 'QNNExecutionProvider',
  xnnpack: 'XnnpackExecutionProvider',
  openvino: 'OpenVINOExecutionProvider',
  nnapi: 'NnapiExecutionProvider',
};

const SHARED_LIBRARY_SUFFIX: Partial<Record<NodeJS.Platform, string>> = {
  linux: 'so',
  darwin: 'dylib',
  win32: 'dll',
};

/** A one-node model (y = Relu(x), opset 17, 61 bytes), written with onnx.helper. */
const PROBE_MODEL = Buffer.from(
  'CAg6MwoMCgF4EgF5IgRSZWx1EgFnWg8KAXgSCgoICAESBAoCCAJiDwoBeRIKCggIARIECgIIAkIECgAQEQ==',
  'base64',
);

/** The folder the native binding was loaded from; unbundled provider libraries go next to it. */
function bindingDir(): string {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  return join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/**
 * CUDA and TensorRT are compiled into the binding but their provider libraries are not in the
 * npm package (its install script fetches them, and this repository keeps install scripts off).
 * Without the file ORT logs a load error on every try, so look for it first.
 */
function providerLibraryPresent(backend: string): boolean {
  const suffix = SHARED_LIBRARY_SUFFIX[process.platform];
  const prefix = process.platform === 'win32' ? '' : 'lib';
  return (
    suffix !== undefined &&
    existsSync(join(bindingDir(), `${prefix}onnxruntime_providers_${backend}.${suffix}`))
  );
}

/**
 * Whether a session can really be created on the backend. Compiled in is not enough: WebGPU needs
 * a GPU adapter (Dawn prints a Vulkan warning on stderr where there is none), CUDA a driver.
 */
async function usable(backend: string): Promise<boolean> {
  try {
    const session = await InferenceSession.create(PROBE_MODEL, { executionProviders: [backend] });
    await session.release();
    return true;
  } catch {
    return false;
  }
}

let detected: Promise<HardwareProfile['onnxRuntime']> | undefined;

/**
 * The ONNX Runtime this agent runs models with: its version and the providers that work here.
 * Probed once per process: the runtime and the drivers under it do not change while it runs.
 */
export function detectOnnxRuntime(): Promise<HardwareProfile['onnxRuntime']> {
  detected ??= probeOnnxRuntime();
  return detected;
}

async function probeOnnxRuntime(): Promise<HardwareProfile['onnxRuntime']> {
  const executionProviders: string[] = [];
  for (const { name, bundled } of listSupportedBackends()) {
    // The CPU provider always works; probing it would only cost a session.
    const works =
      name === 'cpu' || ((bundled || providerLibraryPresent(name)) && (await usable(name)));
    if (works) executionProviders.push(PROVIDER_NAMES[name] ?? name);
  }
  return { version: env.versions.node ?? env.versions.common, executionProviders };
}
