import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCpuinfo } from './cpuinfo.js';
import {
  deriveHardwareClass,
  describeHardwareClass,
  memoryTier,
  profileFromCpuinfo,
  type ProfileExtras,
} from './hardware-class.js';
import type { Accelerator, HardwareProfile } from './profile.js';

const FIXTURES = new URL('../../test/fixtures/cpuinfo/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const XAVIER_GPU: Accelerator = { kind: 'cuda', name: 'Xavier', computeCapability: '7.2' };

function profileOf(file: string, memoryBytes: number, accelerators: Accelerator[] = []) {
  const extras: ProfileExtras = {
    memoryBytes,
    accelerators,
    os: { platform: 'linux', release: '6.1.0' },
    onnxRuntime: { version: '1.22.0', executionProviders: ['CPUExecutionProvider'] },
  };
  return profileFromCpuinfo(parseCpuinfo(fixture(file)), extras);
}

// Memory is each board's nominal RAM (a plausible size for the servers) so the tiers read well.
const CASES: { file: string; memory: number; accelerators?: Accelerator[]; key: string }[] = [
  { file: 'amd-ryzen-9-5950x-zen3.txt', memory: 32 * GiB, key: 'x86_64-avx2-nofp16-cpu-32g' },
  { file: 'aws-graviton3.txt', memory: 8 * GiB, key: 'aarch64-i8mm-fp16-cpu-8g' },
  { file: 'intel-celeron-j1900.txt', memory: 4 * GiB, key: 'x86_64-sse-nofp16-cpu-4g' },
  {
    file: 'intel-xeon-gold-6242-cascade-lake.txt',
    memory: 192 * GiB,
    key: 'x86_64-vnni-nofp16-cpu-64g+',
  },
  {
    file: 'intel-xeon-platinum-8480-sapphire-rapids.txt',
    memory: 512 * GiB,
    key: 'x86_64-amx-fp16-cpu-64g+',
  },
  { file: 'jetson-xavier-agx.txt', memory: 32 * GiB, key: 'aarch64-neon-fp16-cpu-32g' },
  {
    file: 'jetson-xavier-agx.txt',
    memory: 32 * GiB,
    accelerators: [XAVIER_GPU],
    key: 'aarch64-neon-fp16-cuda72-32g',
  },
  { file: 'raspberry-pi-3b-plus.txt', memory: GiB, key: 'aarch64-neon-nofp16-cpu-1g' },
  { file: 'raspberry-pi-4.txt', memory: 4 * GiB, key: 'aarch64-neon-nofp16-cpu-4g' },
  { file: 'raspberry-pi-5.txt', memory: 8 * GiB, key: 'aarch64-dotprod-fp16-cpu-8g' },
];

describe('deriveHardwareClass on real dumps', () => {
  it('covers every fixture file', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.txt'));
    expect(new Set(CASES.map((c) => c.file))).toEqual(new Set(files));
  });

  it.each(CASES)('$file → $key', ({ file, memory, accelerators, key }) => {
    const cls = deriveHardwareClass(profileOf(file, memory, accelerators));
    expect(cls.key).toBe(key);
    expect(`${cls.arch}-${cls.int8Path}-${cls.fp16Path}-${cls.accelerator}-${cls.memoryTier}`).toBe(
      key,
    );
  });

  it('describes a class in words', () => {
    const cascade = profileOf('intel-xeon-gold-6242-cascade-lake.txt', 8 * GiB);
    expect(describeHardwareClass(deriveHardwareClass(cascade))).toBe(
      'x86_64 with VNNI int8, no native fp16, CPU only, 8 GiB tier',
    );
    const xavier = profileOf('jetson-xavier-agx.txt', 32 * GiB, [XAVIER_GPU]);
    expect(describeHardwareClass(deriveHardwareClass(xavier))).toBe(
      'aarch64 with NEON int8, native fp16, CUDA (compute 7.2), 32 GiB tier',
    );
    const pi3 = profileOf('raspberry-pi-3b-plus.txt', 256 * MiB);
    expect(describeHardwareClass(deriveHardwareClass(pi3))).toBe(
      'aarch64 with NEON int8, no native fp16, CPU only, under 512 MiB tier',
    );
    const spr = profileOf('intel-xeon-platinum-8480-sapphire-rapids.txt', 512 * GiB);
    expect(describeHardwareClass(deriveHardwareClass(spr))).toBe(
      'x86_64 with AMX int8, native fp16, CPU only, 64+ GiB tier',
    );
  });

  it('carries the Jetson device model into the profile unless the agent knows better', () => {
    expect(profileOf('jetson-xavier-agx.txt', 32 * GiB).deviceModel).toBe('NVIDIA Jetson');
    const summary = parseCpuinfo(fixture('jetson-xavier-agx.txt'));
    const profile = profileFromCpuinfo(summary, {
      memoryBytes: 32 * GiB,
      os: { platform: 'linux', release: '5.10.104-tegra' },
      onnxRuntime: { version: '1.22.0', executionProviders: ['CUDAExecutionProvider'] },
      deviceModel: 'NVIDIA Jetson AGX Xavier',
      cores: 8,
      threads: 8,
    });
    expect(profile.deviceModel).toBe('NVIDIA Jetson AGX Xavier');
  });
});

describe('deriveHardwareClass on constructed profiles', () => {
  const base: HardwareProfile = {
    arch: 'x86_64',
    cpuVendor: 'Intel',
    cpuModel: 'test',
    cores: 4,
    threads: 8,
    isaFeatures: ['avx', 'avx2'],
    memoryBytes: 8 * GiB,
    accelerators: [],
    onnxRuntime: { version: '1.22.0', executionProviders: ['CPUExecutionProvider'] },
    os: { platform: 'linux', release: '6.1.0' },
  };
  const key = (p: Partial<HardwareProfile>) => deriveHardwareClass({ ...base, ...p }).key;

  it('reads Node and BSD arch spellings as the uname ones', () => {
    expect(key({ arch: 'x64' })).toBe('x86_64-avx2-nofp16-cpu-8g');
    expect(key({ arch: 'arm64', isaFeatures: ['asimd'] })).toBe('aarch64-neon-nofp16-cpu-8g');
  });

  it('treats avx_vnni (client cores, no avx512) as vnni', () => {
    expect(key({ isaFeatures: ['avx2', 'avx_vnni'] })).toBe('x86_64-vnni-nofp16-cpu-8g');
  });

  it('gives other architectures no int8 path', () => {
    expect(key({ arch: 'riscv64', isaFeatures: [] })).toBe('riscv64-none-nofp16-cpu-8g');
  });

  it('needs both fphp and asimdhp for ARM fp16, and ignores x86 flags on ARM', () => {
    expect(key({ arch: 'aarch64', isaFeatures: ['asimd', 'fphp'] })).toBe(
      'aarch64-neon-nofp16-cpu-8g',
    );
    expect(key({ arch: 'aarch64', isaFeatures: ['asimd', 'avx512_fp16'] })).toBe(
      'aarch64-neon-nofp16-cpu-8g',
    );
  });

  it('classes accelerators: first CUDA wins, NPU next, unknown kinds count as CPU', () => {
    expect(key({ accelerators: [{ kind: 'cuda', name: 'GPU' }] })).toBe('x86_64-avx2-fp16-cuda-8g');
    expect(
      key({
        accelerators: [
          { kind: 'npu', name: 'NPU' },
          { kind: 'cuda', name: 'A', computeCapability: '8.6' },
          { kind: 'cuda', name: 'B', computeCapability: '7.5' },
        ],
      }),
    ).toBe('x86_64-avx2-fp16-cuda86-8g');
    expect(key({ accelerators: [{ kind: 'npu', name: 'Hailo-8' }] })).toBe(
      'x86_64-avx2-nofp16-npu-8g',
    );
    expect(key({ accelerators: [{ kind: 'other', name: 'FPGA' }] })).toBe(
      'x86_64-avx2-nofp16-cpu-8g',
    );
  });
});

describe('memoryTier', () => {
  it.each([
    [1, '256m'],
    [0.8 * 512 * MiB - 1, '256m'],
    [0.8 * 512 * MiB, '512m'],
    // A Pi 3B+ (1 GB) reports ~906 MiB; a 4 GB Pi ~3.7 GiB; an 8 GB Pi 5 ~7.8 GiB.
    [906 * MiB, '1g'],
    [3.7 * GiB, '4g'],
    [7.8 * GiB, '8g'],
    [2 * GiB, '2g'],
    // A 6 GB board is not an 8 GB one.
    [6 * GiB, '4g'],
    [0.8 * 16 * GiB - 1, '8g'],
    [16 * GiB, '16g'],
    [32 * GiB, '32g'],
    [0.8 * 64 * GiB - 1, '32g'],
    [64 * GiB, '64g+'],
    [1024 * GiB, '64g+'],
  ])('%d bytes → %s', (bytes, tier) => {
    expect(memoryTier(bytes)).toBe(tier);
  });
});
