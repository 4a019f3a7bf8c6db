import type { CpuinfoSummary } from './cpuinfo.js';
import { validateHardwareProfile, type Accelerator, type HardwareProfile } from './profile.js';

/** The fastest int8 matmul path the CPU offers; the planner picks the int8 format from it. */
export type Int8Path =
  // x86
  | 'amx'
  | 'vnni'
  /** u8s8 via vpmaddubsw can saturate: the planner should prefer reduce_range here. */
  | 'avx2'
  | 'sse'
  // ARM
  | 'i8mm'
  | 'dotprod'
  | 'neon'
  | 'none';

export type Fp16Path = 'fp16' | 'nofp16';

/** 'cpu', 'npu', 'cuda', or 'cuda' + compute capability without the dot ('cuda72'). */
export type AcceleratorClass = 'cpu' | 'npu' | `cuda${string}`;

export type MemoryTier = '256m' | '512m' | '1g' | '2g' | '4g' | '8g' | '16g' | '32g' | '64g+';

export interface HardwareClass {
  /** `${arch}-${int8Path}-${fp16Path}-${accelerator}-${memoryTier}`, e.g. x86_64-vnni-nofp16-cpu-8g */
  key: string;
  arch: string;
  int8Path: Int8Path;
  fp16Path: Fp16Path;
  accelerator: AcceleratorClass;
  memoryTier: MemoryTier;
}

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

// Power-of-two tiers named after the RAM on the box. The OS reports less than that (a 4 GB Pi
// shows ~3.7 GiB as MemTotal: firmware and GPU carve-outs), so a device lands in the largest
// tier it covers within 20%. Everything under 512 MiB is one tier ('256m'), and everything
// from 64 GiB up is one ('64g+'): the planner never needs finer steps there.
const REPORTED_SHARE = 0.8;
const TIERS: [MemoryTier, number][] = [
  ['64g+', 64 * GiB],
  ['32g', 32 * GiB],
  ['16g', 16 * GiB],
  ['8g', 8 * GiB],
  ['4g', 4 * GiB],
  ['2g', 2 * GiB],
  ['1g', GiB],
  ['512m', 512 * MiB],
];

export function memoryTier(memoryBytes: number): MemoryTier {
  return TIERS.find(([, min]) => memoryBytes >= min * REPORTED_SHARE)?.[0] ?? '256m';
}

/** Maps uname/Node spellings to one, so an x64 report and an x86_64 report share a class. */
function normalizeArch(arch: string): string {
  const a = arch.toLowerCase();
  if (a === 'x64' || a === 'amd64') return 'x86_64';
  if (a === 'arm64') return 'aarch64';
  // The key uses '-' as separator; keep it out of the arch part.
  return a.replace(/[^a-z0-9_]/g, '_');
}

function int8Path(arch: string, f: Set<string>): Int8Path {
  if (arch === 'x86_64') {
    if (f.has('amx_int8')) return 'amx';
    if (f.has('avx512_vnni') || f.has('avx_vnni')) return 'vnni';
    return f.has('avx2') ? 'avx2' : 'sse';
  }
  if (arch === 'aarch64' || arch.startsWith('arm')) {
    if (f.has('i8mm')) return 'i8mm';
    if (f.has('asimddp')) return 'dotprod';
    if (f.has('asimd') || f.has('neon')) return 'neon';
  }
  return 'none';
}

// ORT's CUDA EP runs on device 0 unless told otherwise, and the agent lists GPUs in device order.
function acceleratorClass(accelerators: Accelerator[]): AcceleratorClass {
  const cuda = accelerators.find((a) => a.kind === 'cuda');
  if (cuda) return `cuda${cuda.computeCapability?.replace('.', '') ?? ''}`;
  // 'other' accelerators have no EP the planner can target, so they count as CPU-only.
  return accelerators.some((a) => a.kind === 'npu') ? 'npu' : 'cpu';
}

export function deriveHardwareClass(profile: HardwareProfile): HardwareClass {
  const arch = normalizeArch(profile.arch);
  const f = new Set(profile.isaFeatures.map((x) => x.toLowerCase()));
  const accelerator = acceleratorClass(profile.accelerators);
  const nativeFp16 =
    (arch === 'x86_64' && f.has('avx512_fp16')) ||
    (arch !== 'x86_64' && f.has('fphp') && f.has('asimdhp')) ||
    accelerator.startsWith('cuda');
  const cls = {
    arch,
    int8Path: int8Path(arch, f),
    fp16Path: nativeFp16 ? 'fp16' : 'nofp16',
    accelerator,
    memoryTier: memoryTier(profile.memoryBytes),
  } as const;
  return {
    key: `${cls.arch}-${cls.int8Path}-${cls.fp16Path}-${cls.accelerator}-${cls.memoryTier}`,
    ...cls,
  };
}

const INT8_WORDS: Record<Int8Path, string> = {
  amx: 'AMX int8',
  vnni: 'VNNI int8',
  avx2: 'AVX2 int8 (reduce_range)',
  sse: 'SSE-only int8',
  i8mm: 'I8MM int8',
  dotprod: 'dot-product int8',
  neon: 'NEON int8',
  none: 'no SIMD int8',
};

/** E.g. "x86_64 with VNNI int8, no native fp16, CPU only, 8 GiB tier". */
export function describeHardwareClass(cls: HardwareClass): string {
  const fp16 = cls.fp16Path === 'fp16' ? 'native fp16' : 'no native fp16';
  const cc = cls.accelerator.slice('cuda'.length);
  const accelerator =
    cls.accelerator === 'cpu'
      ? 'CPU only'
      : cls.accelerator === 'npu'
        ? 'NPU'
        : `CUDA${cc ? ` (compute ${cc.slice(0, -1)}.${cc.slice(-1)})` : ''}`;
  const tier =
    cls.memoryTier === '256m'
      ? 'under 512 MiB'
      : cls.memoryTier.replace(
          /^(\d+)([mg])(\+?)$/,
          (_, n: string, unit: string, plus: string) =>
            `${n}${plus} ${unit === 'm' ? 'MiB' : 'GiB'}`,
        );
  return `${cls.arch} with ${INT8_WORDS[cls.int8Path]}, ${fp16}, ${accelerator}, ${tier} tier`;
}

export interface ProfileExtras {
  memoryBytes: number;
  os: HardwareProfile['os'];
  onnxRuntime: HardwareProfile['onnxRuntime'];
  accelerators?: Accelerator[];
  /** Overrides for what cpuinfo can't know (e.g. from os.cpus() or /proc/device-tree/model). */
  cores?: number;
  threads?: number;
  deviceModel?: string;
}

/** Builds the profile the edge agent reports; throws HardwareProfileError if it doesn't add up. */
export function profileFromCpuinfo(
  summary: CpuinfoSummary,
  extras: ProfileExtras,
): HardwareProfile {
  const deviceModel = extras.deviceModel ?? summary.deviceModel;
  return validateHardwareProfile({
    arch: summary.arch,
    cpuVendor: summary.vendor,
    cpuModel: summary.model,
    cores: extras.cores ?? summary.physicalCores,
    threads: extras.threads ?? summary.logicalProcessors,
    isaFeatures: summary.isaFeatures,
    memoryBytes: extras.memoryBytes,
    accelerators: extras.accelerators ?? [],
    onnxRuntime: extras.onnxRuntime,
    os: extras.os,
    ...(deviceModel === undefined ? {} : { deviceModel }),
  });
}
