import { EdgeforgeError } from '../errors.js';
import { INFERENCE_ISA_FEATURES, type Arch } from './profile.js';

/** What `/proc/cpuinfo` tells us, before memory, OS and accelerators are added. */
export interface CpuinfoSummary {
  arch: Arch;
  /** 'Intel', 'AMD', 'ARM', 'NVIDIA', ... */
  vendor: string;
  /** x86 `model name`; ARM core name(s) from the part table, e.g. "Cortex-A72". */
  model: string;
  /** `processor` blocks present in the text (a trimmed dump counts only what it kept). */
  logicalProcessors: number;
  /** Distinct (physical id, core id) pairs on x86; equal to logicalProcessors on ARM. */
  physicalCores: number;
  isaFeatures: string[];
  deviceModel?: string;
}

export class CpuinfoParseError extends EdgeforgeError {
  override name = 'CpuinfoParseError';
}

const X86_VENDORS: Record<string, string> = { GenuineIntel: 'Intel', AuthenticAMD: 'AMD' };

const ARM_IMPLEMENTERS: Record<string, string> = {
  '0x41': 'ARM',
  '0x4e': 'NVIDIA',
  '0x51': 'Qualcomm',
  '0x61': 'Apple',
};

// Keyed by "implementer:part" because part numbers are only unique per implementer.
// Source: Linux arch/arm64/include/asm/cputype.h.
const ARM_PARTS: Record<string, string> = {
  '0x41:0xd03': 'Cortex-A53',
  '0x41:0xd04': 'Cortex-A35',
  '0x41:0xd05': 'Cortex-A55',
  '0x41:0xd07': 'Cortex-A57',
  '0x41:0xd08': 'Cortex-A72',
  '0x41:0xd09': 'Cortex-A73',
  '0x41:0xd0a': 'Cortex-A75',
  '0x41:0xd0b': 'Cortex-A76',
  '0x41:0xd0c': 'Neoverse-N1',
  '0x41:0xd0d': 'Cortex-A77',
  '0x41:0xd40': 'Neoverse-V1',
  '0x41:0xd41': 'Cortex-A78',
  '0x41:0xd42': 'Cortex-A78AE',
  '0x41:0xd46': 'Cortex-A510',
  '0x41:0xd47': 'Cortex-A710',
  '0x41:0xd49': 'Neoverse-N2',
  '0x41:0xd4f': 'Neoverse-V2',
  '0x41:0xd80': 'Cortex-A520',
  '0x41:0xd81': 'Cortex-A720',
  '0x4e:0x003': 'Denver 2',
  '0x4e:0x004': 'Carmel',
};

type Fields = Map<string, string>;

/**
 * Splits the dump into per-processor blocks and the device-level lines (Hardware, Revision,
 * Model) that ARM kernels print after the last block. Keys and values are trimmed, so tabs and
 * terminal-pasted spaces around the colon read the same.
 */
function readBlocks(text: string): { blocks: Fields[]; device: Fields } {
  const blocks: Fields[] = [];
  const device: Fields = new Map();
  let current: Fields | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const colon = raw.indexOf(':');
    if (raw.trim() === '') current = undefined;
    if (colon < 0) continue;
    const key = raw.slice(0, colon).trim().replace(/\s+/g, ' ');
    const value = raw.slice(colon + 1).trim();
    if (key === 'processor' && /^\d+$/.test(value)) {
      blocks.push((current = new Map<string, string>()));
    }
    (current ?? device).set(key, value);
  }
  return { blocks, device };
}

/** Features every listed processor has: a thread may land on any of them. */
function commonFeatures(lines: (string | undefined)[]): Set<string> {
  const [first = [], ...rest] = lines.flatMap((l) => (l === undefined ? [] : [l.split(/\s+/)]));
  return new Set(first.filter((f) => rest.every((l) => l.includes(f))).map((f) => f.toLowerCase()));
}

export function parseCpuinfo(text: string): CpuinfoSummary {
  if (text.trim() === '') {
    throw new CpuinfoParseError('cpuinfo text is empty; expected the contents of /proc/cpuinfo');
  }
  const { blocks, device } = readBlocks(text);
  const [first] = blocks;
  if (first === undefined) {
    throw new CpuinfoParseError(
      'no "processor : N" line found; expected the contents of /proc/cpuinfo ' +
        '(lscpu output is a different format and is not accepted)',
    );
  }
  // Old 32-bit ARM kernels print CPU implementer/part once, after the blocks.
  const field = (b: Fields, key: string) => b.get(key) ?? device.get(key);
  const isX86 = blocks.some((b) => b.has('flags') || b.has('vendor_id'));
  const isArm = blocks.some(
    (b) => field(b, 'Features') !== undefined || field(b, 'CPU implementer') !== undefined,
  );
  if (!isX86 && !isArm) {
    throw new CpuinfoParseError(
      `found ${blocks.length} processor block(s) but no x86 "flags"/"vendor_id" or ARM ` +
        '"Features"/"CPU implementer" lines; expected a Linux /proc/cpuinfo from x86_64 or ARM',
    );
  }

  const raw = commonFeatures(blocks.map((b) => field(b, isX86 ? 'flags' : 'Features')));
  // arm64 kernels call NEON "asimd"; keep both names so either spelling matches downstream.
  if (raw.has('asimd')) raw.add('neon');
  const isaFeatures = INFERENCE_ISA_FEATURES.filter((f) => raw.has(f));
  const logicalProcessors = blocks.length;
  const summary: CpuinfoSummary = {
    arch: 'x86_64',
    vendor: '',
    model: '',
    logicalProcessors,
    physicalCores: logicalProcessors,
    isaFeatures,
  };

  if (isX86) {
    const vendorId = first.get('vendor_id') ?? 'unknown';
    summary.vendor = X86_VENDORS[vendorId] ?? vendorId;
    // Intel pads some names ("CPU  J1900  @"); collapse so the string is stable.
    summary.model = (first.get('model name') ?? 'unknown x86 CPU').replace(/\s+/g, ' ');
    const cores = new Set(
      blocks.flatMap((b) =>
        b.has('physical id') && b.has('core id')
          ? [`${b.get('physical id')}:${b.get('core id')}`]
          : [],
      ),
    );
    if (cores.size > 0) summary.physicalCores = cores.size;
  } else {
    // 32-bit kernels list NEON as "neon", not "asimd"; the "(v7l)" model-name suffix is the ELF arch.
    const elf = /\((v\d+l)\)$/.exec(field(first, 'model name') ?? '')?.[1];
    summary.arch = raw.has('asimd') ? 'aarch64' : `arm${elf ?? 'v7l'}`;
    const hex = (b: Fields, key: string) => field(b, key)?.toLowerCase() ?? 'unknown';
    const implementer = hex(first, 'CPU implementer');
    summary.vendor = ARM_IMPLEMENTERS[implementer] ?? `implementer ${implementer}`;
    // big.LITTLE SoCs list two core types; name both, in the order the kernel lists them.
    const names = blocks.map((b) => {
      const part = hex(b, 'CPU part');
      return ARM_PARTS[`${hex(b, 'CPU implementer')}:${part}`] ?? `part ${part}`;
    });
    summary.model = [...new Set(names)].join(' + ');
  }

  const model = field(blocks.at(-1) ?? first, 'Model');
  // Carmel/Denver cores (implementer 0x4e) only ship in Tegra SoCs, and Jetson kernels print no
  // Model line, so this is the one way to spot a Jetson from cpuinfo alone.
  const tegra = summary.vendor === 'NVIDIA' || /tegra|jetson/i.test(field(first, 'Hardware') ?? '');
  if (model) summary.deviceModel = model;
  else if (!isX86 && tegra) summary.deviceModel = 'NVIDIA Jetson';
  return summary;
}
