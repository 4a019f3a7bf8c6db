import { EdgeforgeError } from '../errors.js';

/** `uname -m` spelling. Other strings are allowed so a new device type is not rejected. */
export type Arch = 'x86_64' | 'aarch64' | 'armv7l' | (string & {});

export type AcceleratorKind = 'cuda' | 'npu' | 'other';

export interface Accelerator {
  kind: AcceleratorKind;
  name: string;
  /** CUDA "major.minor", e.g. "7.2" for Jetson AGX Xavier. A string so "8.10" can't become 8.1. */
  computeCapability?: string;
  memoryBytes?: number;
}

/**
 * What an edge device reports about itself. Plain JSON data: it travels over NATS and is stored
 * with the device record.
 */
export interface HardwareProfile {
  arch: Arch;
  cpuVendor: string;
  cpuModel: string;
  cores: number;
  threads: number;
  /** Only the inference-relevant ISA features, lower-case (see INFERENCE_ISA_FEATURES). */
  isaFeatures: string[];
  memoryBytes: number;
  accelerators: Accelerator[];
  onnxRuntime: { version: string; executionProviders: string[] };
  os: { platform: string; release: string };
  /** E.g. "Raspberry Pi 4 Model B Rev 1.1", or "NVIDIA Jetson". */
  deviceModel?: string;
}

/**
 * The ISA features the quantization planner looks at, in the order they are reported. Everything
 * else in `flags`/`Features` (crypto, virtualization, ...) is noise for choosing a format.
 */
export const INFERENCE_ISA_FEATURES: readonly string[] = [
  // x86
  'avx',
  'avx2',
  'fma',
  'f16c',
  'avx512f',
  'avx512_vnni',
  'avx512_bf16',
  'avx512_fp16',
  'avx_vnni',
  'amx_int8',
  'amx_bf16',
  'amx_tile',
  // ARM
  'neon',
  'asimd',
  'asimddp',
  'i8mm',
  'fphp',
  'asimdhp',
  'sve',
  'sve2',
  'bf16',
];

export class HardwareProfileError extends EdgeforgeError {
  override name = 'HardwareProfileError';
  /** Path of the bad field, e.g. "cores" or "accelerators[0].kind". */
  readonly field: string;

  constructor(field: string, problem: string, expected: string) {
    super(`hardware profile field "${field}" ${problem}; expected ${expected}`);
    this.field = field;
  }
}

const MAX_CORES = 4096;
// SMT8 (POWER) is the widest SMT in production; more threads per core means a bogus report.
const MAX_THREADS_PER_CORE = 8;
const MAX_MEMORY_BYTES = 64 * 1024 ** 4; // 64 TiB: beyond any single machine we deploy to.
const MAX_LIST = 256;
const MAX_STRING = 256;

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value);
  return json === undefined ? typeof value : json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

function fail(field: string, value: unknown, expected: string): never {
  throw new HardwareProfileError(field, `is ${show(value)}`, expected);
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(field, value, 'an object');
  }
  return value as Record<string, unknown>;
}

function str(value: unknown, field: string, allowEmpty = false): string {
  const expected = `a ${allowEmpty ? '' : 'non-empty '}string of at most ${MAX_STRING} characters`;
  if (typeof value !== 'string') fail(field, value, expected);
  if ((!allowEmpty && value.trim() === '') || value.length > MAX_STRING) {
    throw new HardwareProfileError(field, `has ${value.length} characters`, expected);
  }
  return value;
}

function int(value: unknown, field: string, min: number, max: number, expected?: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(field, value, expected ?? `an integer from ${min} to ${max}`);
  }
  return value;
}

function list<T>(value: unknown, field: string, item: (v: unknown, field: string) => T): T[] {
  if (!Array.isArray(value)) fail(field, value, 'an array');
  if (value.length > MAX_LIST) {
    throw new HardwareProfileError(field, `has ${value.length} entries`, `at most ${MAX_LIST}`);
  }
  return value.map((v, i) => item(v, `${field}[${i}]`));
}

const ACCELERATOR_KINDS: readonly string[] = ['cuda', 'npu', 'other'] satisfies AcceleratorKind[];

function accelerator(value: unknown, field: string): Accelerator {
  const v = record(value, field);
  if (typeof v.kind !== 'string' || !ACCELERATOR_KINDS.includes(v.kind)) {
    fail(`${field}.kind`, v.kind, `one of ${ACCELERATOR_KINDS.join(', ')}`);
  }
  const acc: Accelerator = { kind: v.kind as AcceleratorKind, name: str(v.name, `${field}.name`) };
  if (v.computeCapability !== undefined) {
    const cc = str(v.computeCapability, `${field}.computeCapability`);
    if (!/^\d{1,2}\.\d{1,2}$/.test(cc)) fail(`${field}.computeCapability`, cc, 'like "7.2"');
    acc.computeCapability = cc;
  }
  if (v.memoryBytes !== undefined) {
    acc.memoryBytes = int(v.memoryBytes, `${field}.memoryBytes`, 1, MAX_MEMORY_BYTES);
  }
  return acc;
}

/**
 * Checks a profile that came off the wire and returns a clean copy: unknown keys dropped and ISA
 * features lower-cased, so what gets stored is exactly the documented shape.
 */
export function validateHardwareProfile(value: unknown): HardwareProfile {
  const v = record(value, '(profile)');
  const cores = int(v.cores, 'cores', 1, MAX_CORES);
  const maxThreads = cores * MAX_THREADS_PER_CORE;
  const threads = int(
    v.threads,
    'threads',
    cores,
    maxThreads,
    `an integer from cores (${cores}) to ${maxThreads}`,
  );
  const onnx = record(v.onnxRuntime, 'onnxRuntime');
  const os = record(v.os, 'os');
  const profile: HardwareProfile = {
    arch: str(v.arch, 'arch'),
    cpuVendor: str(v.cpuVendor, 'cpuVendor'),
    cpuModel: str(v.cpuModel, 'cpuModel'),
    cores,
    threads,
    isaFeatures: list(v.isaFeatures, 'isaFeatures', str).map((f) => f.toLowerCase()),
    memoryBytes: int(v.memoryBytes, 'memoryBytes', 1, MAX_MEMORY_BYTES),
    accelerators: list(v.accelerators, 'accelerators', accelerator),
    onnxRuntime: {
      version: str(onnx.version, 'onnxRuntime.version'),
      executionProviders: list(onnx.executionProviders, 'onnxRuntime.executionProviders', str),
    },
    // An empty release is odd but harmless; the platform is what matters.
    os: { platform: str(os.platform, 'os.platform'), release: str(os.release, 'os.release', true) },
  };
  if (v.deviceModel !== undefined) profile.deviceModel = str(v.deviceModel, 'deviceModel');
  return profile;
}
