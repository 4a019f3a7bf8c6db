import { crc32, inflateRawSync } from 'node:zlib';
import { NpyFormatError, parseNpy, type NpyArray } from './npy.js';

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
 * entry headers are understood, archives over 4 GiB are not.
 */
export function readNpz(bytes: Buffer, file = 'npz'): Map<string, NpyArray> {
  const arrays = new Map<string, NpyArray>();
  for (const entry of centralDirectory(bytes, file)) {
    if (!entry.name.endsWith('.npy')) continue;
    const name = entry.name.slice(0, -'.npy'.length);
    arrays.set(name, parseNpy(entryData(bytes, entry, file), `${file}:${entry.name}`));
  }
  return arrays;
}

function centralDirectory(bytes: Buffer, file: string): ZipEntry[] {
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
  else if (entry.method === DEFLATED) data = inflateRawSync(raw);
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
