import { createHash } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import type { ObjectStore } from '@nats-io/obj';
import { EdgeforgeError } from '../../common/errors.js';
import { ManifestRefusedError, type ObjectRef } from '../../common/manifest.js';

/**
 * How long the Object Store's JetStream API requests (open the bucket, look up and start reading
 * an object) may take. In a fleet-wide rollout thousands of agents ask at once: nats-server
 * answered some after more than the client's default 5 s while it streamed to a thousand agents
 * (`npm run bench -- fanout`), and a timed-out request only comes back as one more request.
 */
export const OBJECT_STORE_API_TIMEOUT_MS = 30_000;

/** The transfer failed (NATS down or stuck, object not there yet): worth trying again later. */
export class DownloadError extends EdgeforgeError {
  override name = 'DownloadError';
}

export interface DownloadOptions {
  /** Give up on a transfer after this long without a byte (a dead connection, a lost consumer). */
  stallMs: number;
  signal: AbortSignal;
}

/**
 * Streams the object `ref` names into `file` (created, mode 0600), hashing as it goes, and fsyncs
 * it. Throws ManifestRefusedError (size_mismatch, digest_mismatch) when the object is not the one
 * the manifest describes, DownloadError when the transfer failed, the signal's reason when
 * aborted. On any failure the file is removed: nothing partial is ever left to load.
 */
export async function downloadObject(
  store: ObjectStore,
  ref: ObjectRef,
  file: string,
  options: DownloadOptions,
): Promise<void> {
  const where = `object ${ref.name} in bucket ${ref.bucket}`;
  const info = await store.info(ref.name).catch((err: unknown) => {
    throw new DownloadError(`cannot look up ${where}: ${(err as Error).message}`, { cause: err });
  });
  if (info === null) throw new DownloadError(`${where} does not exist (yet)`);
  if (info.size !== ref.size) {
    throw new ManifestRefusedError(
      'size_mismatch',
      `${where} has ${info.size} bytes; the manifest says ${ref.size}`,
    );
  }
  const result = await store.get(ref.name).catch((err: unknown) => {
    throw new DownloadError(`cannot read ${where}: ${(err as Error).message}`, { cause: err });
  });
  if (result === null) throw new DownloadError(`${where} was deleted while being read`);

  const handle = await open(file, 'wx', 0o600);
  const reader = result.data.getReader();
  const hash = createHash('sha256');
  let size = 0;
  try {
    for (;;) {
      const chunk = await readWithin(reader, options, where);
      if (chunk.done) break;
      size += chunk.value.length;
      if (size > ref.size) {
        throw new ManifestRefusedError(
          'size_mismatch',
          `${where} is longer than the ${ref.size} bytes the manifest says`,
        );
      }
      hash.update(chunk.value);
      await handle.write(chunk.value);
    }
    const failed = await result.error.catch((err: unknown) => err as Error);
    if (failed) throw failed;
    if (size !== ref.size) {
      throw new DownloadError(`${where} ended after ${size} of ${ref.size} bytes`);
    }
    const digest = hash.digest('hex');
    if (digest !== ref.sha256) {
      throw new ManifestRefusedError(
        'digest_mismatch',
        `${where} has sha256 ${digest}; the manifest says ${ref.sha256}`,
      );
    }
    await handle.sync();
  } catch (err) {
    await reader.cancel().catch(() => {});
    await handle.close();
    await unlink(file).catch(() => {});
    throw classify(err, where, options.signal);
  }
  await handle.close();
}

/** The next chunk, unless the stream stalls for stallMs or the signal aborts first. */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  { stallMs, signal }: DownloadOptions,
  where: string,
): ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  const interrupted = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DownloadError(`no data from ${where} for ${stallMs} ms`)),
      stallMs,
    );
    onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([reader.read(), interrupted]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

function classify(err: unknown, where: string, signal: AbortSignal): unknown {
  if (signal.aborted || err instanceof ManifestRefusedError || err instanceof DownloadError) {
    return err;
  }
  const message = (err as Error).message;
  // The client checks the object's own digest too; a mismatch means corrupt stored chunks.
  if (/digests do not match/.test(message)) {
    return new ManifestRefusedError('digest_mismatch', `${where} is corrupt: ${message}`);
  }
  return new DownloadError(`reading ${where} failed: ${message}`, { cause: err });
}
