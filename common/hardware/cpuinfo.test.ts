import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CpuinfoParseError, parseCpuinfo, type CpuinfoSummary } from './cpuinfo.js';

const FIXTURES = new URL('../../test/fixtures/cpuinfo/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');

// What each real dump must parse to; see test/fixtures/cpuinfo/SOURCES.md for where it came from.
const EXPECTED: Record<string, CpuinfoSummary> = {
  'amd-ryzen-9-5950x-zen3.txt': {
    arch: 'x86_64',
    vendor: 'AMD',
    model: 'AMD Ryzen 9 5950X 16-Core Processor',
    logicalProcessors: 1,
    physicalCores: 1,
    isaFeatures: ['avx', 'avx2', 'fma', 'f16c'],
  },
  'aws-graviton3.txt': {
    arch: 'aarch64',
    vendor: 'ARM',
    model: 'Neoverse-V1',
    logicalProcessors: 1,
    physicalCores: 1,
    isaFeatures: ['neon', 'asimd', 'asimddp', 'i8mm', 'fphp', 'asimdhp', 'sve', 'bf16'],
  },
  'intel-celeron-j1900.txt': {
    arch: 'x86_64',
    vendor: 'Intel',
    // The dump pads it as "CPU  J1900  @"; the parser collapses the runs of spaces.
    model: 'Intel(R) Celeron(R) CPU J1900 @ 1.99GHz',
    logicalProcessors: 4,
    physicalCores: 4,
    isaFeatures: [],
  },
  'intel-xeon-gold-6242-cascade-lake.txt': {
    arch: 'x86_64',
    vendor: 'Intel',
    model: 'Intel(R) Xeon(R) Gold 6242 CPU @ 2.80GHz',
    // Trimmed to processors 0 and 1 (one per socket) of 32: count what is there.
    logicalProcessors: 2,
    physicalCores: 2,
    isaFeatures: ['avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512_vnni'],
  },
  'intel-xeon-platinum-8480-sapphire-rapids.txt': {
    arch: 'x86_64',
    vendor: 'Intel',
    model: 'Intel(R) Xeon(R) Platinum 8480+',
    // A single block, numbered "processor : 2".
    logicalProcessors: 1,
    physicalCores: 1,
    isaFeatures: [
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
    ],
  },
  'jetson-xavier-agx.txt': {
    arch: 'aarch64',
    vendor: 'NVIDIA',
    model: 'Carmel',
    logicalProcessors: 8,
    physicalCores: 8,
    isaFeatures: ['neon', 'asimd', 'fphp', 'asimdhp'],
    deviceModel: 'NVIDIA Jetson',
  },
  'raspberry-pi-3b-plus.txt': {
    arch: 'aarch64',
    vendor: 'ARM',
    model: 'Cortex-A53',
    logicalProcessors: 4,
    physicalCores: 4,
    isaFeatures: ['neon', 'asimd'],
    deviceModel: 'Raspberry Pi 3 Model B Plus Rev 1.3',
  },
  'raspberry-pi-4.txt': {
    arch: 'aarch64',
    vendor: 'ARM',
    model: 'Cortex-A72',
    logicalProcessors: 4,
    physicalCores: 4,
    isaFeatures: ['neon', 'asimd'],
    deviceModel: 'Raspberry Pi 4 Model B Rev 1.1',
  },
  'raspberry-pi-5.txt': {
    arch: 'aarch64',
    vendor: 'ARM',
    model: 'Cortex-A76',
    logicalProcessors: 4,
    physicalCores: 4,
    isaFeatures: ['neon', 'asimd', 'asimddp', 'fphp', 'asimdhp'],
    deviceModel: 'Raspberry Pi 5 Model B Rev 1.0',
  },
};

const FIXTURE_FILES = readdirSync(FIXTURES).filter((f) => f.endsWith('.txt'));

/** What a terminal does to a dump on copy: tabs become spaces up to the next 8-column stop. */
function expandTabs(text: string): string {
  return text
    .split('\n')
    .map((line) =>
      line.replace(/[^\t]*\t/g, (m) =>
        m.slice(0, -1).padEnd((Math.floor((m.length - 1) / 8) + 1) * 8),
      ),
    )
    .join('\n');
}

describe('parseCpuinfo on real dumps', () => {
  it('has an expectation for every fixture file', () => {
    expect([...FIXTURE_FILES].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(FIXTURE_FILES)('%s', (file) => {
    expect(parseCpuinfo(fixture(file))).toEqual(EXPECTED[file]);
  });

  it.each(FIXTURE_FILES)('%s parses the same with tabs turned into spaces', (file) => {
    const text = fixture(file);
    expect(expandTabs(text)).not.toContain('\t');
    expect(parseCpuinfo(expandTabs(text))).toEqual(EXPECTED[file]);
  });

  it('parses the space-separated Sapphire Rapids dump the same with tabs put back', () => {
    const file = 'intel-xeon-platinum-8480-sapphire-rapids.txt';
    const tabbed = fixture(file).replace(/^([^:\n]*?) +:/gm, '$1\t:');
    expect(tabbed).toContain('processor\t: 2');
    expect(parseCpuinfo(tabbed)).toEqual(EXPECTED[file]);
  });

  it('parses CRLF line endings the same', () => {
    const file = 'raspberry-pi-4.txt';
    expect(parseCpuinfo(fixture(file).replace(/\n/g, '\r\n'))).toEqual(EXPECTED[file]);
  });
});

describe('parseCpuinfo on constructed input', () => {
  // Hand-written in the 32-bit ARM kernel's format (not a captured dump): NEON is "neon" there.
  const ARMV7_BLOCK = [
    'processor\t: 0',
    'model name\t: ARMv7 Processor rev 4 (v7l)',
    'BogoMIPS\t: 38.40',
    'Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32',
    'CPU implementer\t: 0x41',
    'CPU architecture: 7',
    'CPU part\t: 0xd03',
    '',
  ].join('\n');

  it('reads a 32-bit ARM kernel dump as armv7l with neon', () => {
    expect(parseCpuinfo(ARMV7_BLOCK)).toMatchObject({
      arch: 'armv7l',
      model: 'Cortex-A53',
      isaFeatures: ['neon'],
    });
  });

  it('names both core types of a big.LITTLE SoC and keeps only features all cores share', () => {
    const block = (n: number, part: string, features: string) =>
      `processor\t: ${n}\nFeatures\t: ${features}\nCPU implementer\t: 0x41\nCPU part\t: ${part}\n`;
    const text = [
      block(0, '0xd05', 'fp asimd asimddp'),
      block(1, '0xd0b', 'fp asimd asimddp i8mm'),
    ].join('\n');
    expect(parseCpuinfo(text)).toMatchObject({
      model: 'Cortex-A55 + Cortex-A76',
      isaFeatures: ['neon', 'asimd', 'asimddp'],
      logicalProcessors: 2,
    });
  });

  it('labels unknown ARM implementers and parts by number', () => {
    const text = 'processor : 0\nFeatures : fp asimd\nCPU implementer : 0x48\nCPU part : 0xd01\n';
    expect(parseCpuinfo(text)).toMatchObject({ vendor: 'implementer 0x48', model: 'part 0xd01' });
  });

  it.each([
    ['empty', ''],
    ['whitespace', '  \n\t\n'],
    ['prose', 'hello world\nthis is not cpuinfo'],
    ['JSON', '{"cores": 4, "flags": "avx2"}'],
    ['lscpu output', 'Architecture: aarch64\nCPU(s): 8\nVendor ID: ARM\nFlags: fp asimd\n'],
    ['a processor line with nothing to tell the arch', 'processor : 0\nfoo : bar\n'],
  ])('rejects %s with a clear error', (_, text) => {
    expect(() => parseCpuinfo(text)).toThrow(CpuinfoParseError);
    expect(() => parseCpuinfo(text)).toThrow(/cpuinfo/);
  });
});
