import { createHash, type Hash } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../storage/atomic-file.js';

/**
 * Which stored object a partial download holds: the manifest's reference (bucket, name, sha256)
 * and the Object Store's info of the object when the transfer started (nuid, size, digest). A
 * partial file continues only the same object: one uploaded again under the same name has
 * another nuid, and its chunks other stream sequences.
 */
export interface PartialObject {
  bucket: string;
  name: string;
  sha256: string;
  nuid: string;
  size: number;
  digest: string;
}

/** What is durably in a partial file: written next to it after each fsynced batch. */
export interface DownloadProgress extends PartialObject {
  /** Bytes at the start of the file that were written and fsynced. */
  bytes: number;
  /** Stream sequence of the last chunk within `bytes` (0: none yet); the next read starts after it. */
  lastSeq: number;
}

const ProgressSchema = z.object({
  bucket: z.string(),
  name: z.string(),
  sha256: z.string(),
  nuid: z.string(),
  size: z.number().int().nonnegative(),
  digest: z.string(),
  bytes: z.number().int().nonnegative(),
  lastSeq: z.number().int().nonnegative(),
});

/** What the progress file of a partial download adds to its name. */
export const PROGRESS_SUFFIX = '.progress.json';

/** The progress file of the partial download `partial`. */
export function progressFileFor(partial: string): string {
  return `${partial}${PROGRESS_SUFFIX}`;
}

/** Writes `progress` next to `partial`, atomically; call it only once those bytes are fsynced. */
export async function saveProgress(partial: string, progress: DownloadProgress): Promise<void> {
  await writeFileAtomic(progressFileFor(partial), `${JSON.stringify(progress)}\n`);
}

/** Deletes a partial download and its progress (either may be missing). */
export async function discardPartial(partial: string): Promise<void> {
  await Promise.all([removeFile(partial), removeFile(progressFileFor(partial))]);
}

/** Deletes the progress file of a partial download that is complete now. */
export async function forgetProgress(partial: string): Promise<void> {
  await removeFile(progressFileFor(partial));
}

/** A partial download opened for writing, with the sha256 of what it holds so far. */
export interface PartialFile {
  handle: FileHandle;
  /** Seeded with the bytes already in the file (read back from disk), to be fed the rest. */
  hash: Hash;
  bytes: number;
  lastSeq: number;
  /** True when the file continues an earlier transfer (bytes > 0). */
  resumed: boolean;
  /** Why an earlier partial file was thrown away and the transfer starts from byte 0. */
  startedOver?: string;
}

/**
 * Opens the partial download `partial` of `object` to continue it. When its progress file names
 * the same object (bucket, name, sha256, nuid, size and digest all equal) and the file holds at
 * least the bytes the progress records, the transfer resumes after them: bytes past the recorded
 * ones (written after the last fsync) are cut off, and the hash is re-seeded by reading the rest
 * back from disk, so the final sha256 covers the whole file as it is on disk. Otherwise whatever
 * is there is deleted and a new, empty file (mode 0600) is created.
 */
export async function openPartial(partial: string, object: PartialObject): Promise<PartialFile> {
  const point = await resumePoint(partial, object);
  let startedOver = point.startedOver;
  if (point.progress) {
    const continued = await continuePartial(partial, point.progress);
    if (typeof continued !== 'string') return continued;
    startedOver = continued;
  }
  await discardPartial(partial);
  return {
    handle: await open(partial, 'wx', 0o600),
    hash: createHash('sha256'),
    bytes: 0,
    lastSeq: 0,
    resumed: false,
    ...(startedOver ? { startedOver } : {}),
  };
}

/** The partial file opened after its recorded bytes, or why it cannot be continued. */
async function continuePartial(
  partial: string,
  progress: DownloadProgress,
): Promise<PartialFile | string> {
  let handle: FileHandle;
  try {
    handle = await open(partial, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'the partial file is missing';
    throw err;
  }
  let size: number;
  try {
    size = (await handle.stat()).size;
    if (size >= progress.bytes) {
      if (size > progress.bytes) await handle.truncate(progress.bytes);
      return {
        handle,
        hash: await hashPrefix(handle, progress.bytes),
        bytes: progress.bytes,
        lastSeq: progress.lastSeq,
        resumed: true,
      };
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  await handle.close();
  return `the partial file has ${size} of the ${progress.bytes} bytes its progress records`;
}

/** The recorded progress, if it allows resuming `object`; else why not (nothing: no progress). */
async function resumePoint(
  partial: string,
  object: PartialObject,
): Promise<{ progress?: DownloadProgress; startedOver?: string }> {
  let json: unknown;
  try {
    json = await readJsonFile(progressFileFor(partial));
  } catch (err) {
    return { startedOver: `its progress file is unreadable (${(err as Error).message})` };
  }
  if (json === undefined) return {};
  const parsed = ProgressSchema.safeParse(json);
  if (!parsed.success) return { startedOver: 'its progress file is malformed' };
  const progress = parsed.data;
  for (const key of ['bucket', 'name', 'sha256', 'nuid', 'size', 'digest'] as const) {
    if (progress[key] !== object[key]) {
      return { startedOver: `the object changed since (${key} differs)` };
    }
  }
  if (progress.bytes > object.size) return { startedOver: 'its progress is beyond the object' };
  if (progress.bytes === 0) return {};
  if (progress.lastSeq === 0) return { startedOver: 'its progress names no chunk' };
  return { progress };
}

async function hashPrefix(handle: FileHandle, bytes: number): Promise<Hash> {
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(Math.min(bytes, 1 << 20));
  for (let at = 0; at < bytes;) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, bytes - at), at);
    if (bytesRead === 0) throw new Error(`the partial file ended at ${at} of ${bytes} bytes`);
    hash.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  return hash;
}

async function removeFile(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
