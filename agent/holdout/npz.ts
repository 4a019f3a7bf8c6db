import { totalmem } from 'node:os';
import { crc32, inflateRawSync } from 'node:zlib';
import { NpyFormatError, parseNpy, type NpyArray } from './npy.js';

const MiB = 1024 * 1024;

/**
 * How much a holdout bundle may inflate to: it is decompressed in memory, where a zip bomb (a
 * few KB of deflate that inflate to gigabytes of zeros, deflate reaches about 1000x) would take
 * the device down. All members together may inflate to NPZ_MAX_RATIO times the file's size
 * (real holdouts, images and labels, deflate 2 to 10x), but to NPZ_RATIO_FLOOR_BYTES whatever
 * the ratio (a small, very sparse bundle is harmless), and never to more than
 * NPZ_MAX_INFLATED_BYTES or NPZ_MEMORY_SHARE of the device's memory (the model being checked,
 * and the one serving, need the rest). Stored members count too; at most NPZ_MAX_MEMBERS.
 */
export const NPZ_MAX_RATIO = 64;
export const NPZ_RATIO_FLOOR_BYTES = 8 * MiB;
export const NPZ_MAX_INFLATED_BYTES = 512 * MiB;
export const NPZ_MEMORY_SHARE = 0.25;
/** A holdout has x, y and maybe reference; a few more are tolerated, thousands are not. */
export const NPZ_MAX_MEMBERS = 64;

export interface NpzLimits {
  /** Absolute cap on the inflated members, together. */
  maxInflatedBytes: number;
  /** Cap relative to the file's size... */
  maxRatio: number;
  /** ...which never goes below this. */
  ratioFloorBytes: number;
  maxMembers: number;
}

/** The limits on a device with `memoryBytes` of memory (this machine's by default). */
export function npzLimits(memoryBytes = totalmem()): NpzLimits {
  return {
    maxInflatedBytes: Math.min(NPZ_MAX_INFLATED_BYTES, Math.floor(memoryBytes * NPZ_MEMORY_SHARE)),
    maxRatio: NPZ_MAX_RATIO,
    ratioFloorBytes: NPZ_RATIO_FLOOR_BYTES,
    maxMembers: NPZ_MAX_MEMBERS,
  };
}

/** What a file of `fileBytes` may inflate to, in all, under `limits`. */
export function inflateBudget(fileBytes: number, limits: NpzLimits): number {
  return Math.min(
    limits.maxInflatedBytes,
    Math.max(fileBytes * limits.maxRatio, limits.ratioFloorBytes),
  );
}

function whyBudget(budget: number, limits: NpzLimits): string {
  if (budget === limits.maxInflatedBytes) {
    return (
      `the most any holdout may on this device: ${NPZ_MEMORY_SHARE * 100}% of its memory, ` +
      `at most ${formatSize(NPZ_MAX_INFLATED_BYTES)}`
    );
  }
  if (budget === limits.ratioFloorBytes) {
    return `what any bundle may, whatever its ratio; beyond that ${limits.maxRatio}x its size`;
  }
  return `${limits.maxRatio}x its size`;
}

/** A size for messages: MiB with one decimal, KiB below 1 MiB. */
export const formatSize = (bytes: number) =>
  bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_FILE_HEADER = 0x04034b50;
const ZIP64_EXTRA = 0x0001;
const STORED = 0;
const DEFLATED = 8;
/** A 32-bit field with this value means "the real value is in the zip64 extra field". */
const ZIP64_MARKER = 0xffffffff;

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/**
 * Reads an .npz file (a zip of .npy files, as np.savez and np.savez_compressed write them) into
 * arrays by name, without the ".npy" suffix. Entries must be stored or deflated; numpy's zip64
 * entry headers are understood, archives over 4 GiB are not. Decompression is bounded by
 * `limits` (see NPZ_MAX_RATIO): an archive that would inflate past them is refused before it is
 * inflated when its headers say so, and as soon as the output passes them when they lie.
 */
export function readNpz(bytes: Buffer, file = 'npz', limits = npzLimits()): Map<string, NpyArray> {
  const arrays = new Map<string, NpyArray>();
  const budget = inflateBudget(bytes.length, limits);
  let inflated = 0;
  for (const entry of centralDirectory(bytes, file, limits.maxMembers)) {
    if (!entry.name.endsWith('.npy')) continue;
    if (entry.size > budget - inflated) {
      throw new NpyFormatError(
        `${file}: the zip entry ${entry.name} inflates to ${formatSize(entry.size)}, which ` +
          `takes its members past the ${formatSize(budget)} this ${formatSize(bytes.length)} ` +
          `bundle may inflate to (${whyBudget(budget, limits)}): a zip bomb, or a holdout too ` +
          'big for the device; ship fewer samples',
      );
    }
    const name = entry.name.slice(0, -'.npy'.length);
    const data = entryData(bytes, entry, file);
    inflated += data.length;
    arrays.set(name, parseNpy(data, `${file}:${entry.name}`));
  }
  return arrays;
}

function centralDirectory(bytes: Buffer, file: string, maxMembers: number): ZipEntry[] {
  // The end record is 22 bytes plus a comment of at most 64 KiB, at the end of the file.
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 0xffff); i--) {
    if (bytes.readUInt32LE(i) === END_OF_CENTRAL_DIRECTORY) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new NpyFormatError(`${file} is not a zip archive (no end record)`);
  const count = bytes.readUInt16LE(end + 10);
  const offset = bytes.readUInt32LE(end + 16);
  if (offset === ZIP64_MARKER || count === 0xffff) {
    throw new NpyFormatError(`${file} is a zip64 archive over 4 GiB; holdouts must be smaller`);
  }
  if (count > maxMembers) {
    throw new NpyFormatError(
      `${file} has ${count} members; a holdout bundle has at most ${maxMembers} (x, y, reference)`,
    );
  }
  const entries: ZipEntry[] = [];
  let at = offset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || bytes.readUInt32LE(at) !== CENTRAL_DIRECTORY_ENTRY) {
      throw new NpyFormatError(`${file} has a corrupt zip central directory`);
    }
    if ((bytes.readUInt16LE(at + 8) & 1) !== 0) {
      throw new NpyFormatError(`${file} is encrypted; holdouts must be plain zip files`);
    }
    const nameLength = bytes.readUInt16LE(at + 28);
    const extraLength = bytes.readUInt16LE(at + 30);
    const commentLength = bytes.readUInt16LE(at + 32);
    const entry: ZipEntry = {
      name: bytes.toString('utf8', at + 46, at + 46 + nameLength),
      method: bytes.readUInt16LE(at + 10),
      crc: bytes.readUInt32LE(at + 16),
      compressedSize: bytes.readUInt32LE(at + 20),
      size: bytes.readUInt32LE(at + 24),
      localHeaderOffset: bytes.readUInt32LE(at + 42),
    };
    const extraStart = at + 46 + nameLength;
    applyZip64Extra(entry, bytes.subarray(extraStart, extraStart + extraLength));
    entries.push(entry);
    at = extraStart + extraLength + commentLength;
  }
  return entries;
}

/** Replaces the fields marked 0xFFFFFFFF with their 64-bit values, in the order zip defines. */
function applyZip64Extra(entry: ZipEntry, extra: Buffer): void {
  for (let at = 0; at + 4 <= extra.length;) {
    const id = extra.readUInt16LE(at);
    const length = extra.readUInt16LE(at + 2);
    if (id === ZIP64_EXTRA) {
      let field = at + 4;
      for (const key of ['size', 'compressedSize', 'localHeaderOffset'] as const) {
        if (entry[key] !== ZIP64_MARKER) continue;
        entry[key] = Number(extra.readBigUInt64LE(field));
        field += 8;
      }
    }
    at += 4 + length;
  }
}

function entryData(bytes: Buffer, entry: ZipEntry, file: string): Buffer {
  const header = entry.localHeaderOffset;
  if (header + 30 > bytes.length || bytes.readUInt32LE(header) !== LOCAL_FILE_HEADER) {
    throw new NpyFormatError(`${file}: the zip entry ${entry.name} has no local header`);
  }
  const start = header + 30 + bytes.readUInt16LE(header + 26) + bytes.readUInt16LE(header + 28);
  const raw = bytes.subarray(start, start + entry.compressedSize);
  let data: Buffer;
  if (entry.method === STORED) data = raw;
  else if (entry.method === DEFLATED) data = inflate(raw, entry, file);
  else {
    throw new NpyFormatError(
      `${file}: the zip entry ${entry.name} uses compression method ${entry.method}; ` +
        'save it with np.savez or np.savez_compressed',
    );
  }
  if (data.length !== entry.size || crc32(data) !== entry.crc) {
    throw new NpyFormatError(`${file}: the zip entry ${entry.name} is corrupt (size or CRC)`);
  }
  return data;
}

/** Inflates no more than the entry's header declares (readNpz checked that against the budget). */
function inflate(raw: Buffer, entry: ZipEntry, file: string): Buffer {
  try {
    // maxOutputLength must be at least 1; an empty entry inflates to nothing anyway.
    return inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new NpyFormatError(
        `${file}: the zip entry ${entry.name} inflates past the ${entry.size} bytes its header ` +
          'declares; stopped there (a corrupt archive or a zip bomb)',
      );
    }
    throw new NpyFormatError(
      `${file}: the zip entry ${entry.name} cannot be inflated (${(err as Error).message})`,
    );
  }
}
