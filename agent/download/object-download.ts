import type { FileHandle } from 'node:fs/promises';
import type { ConsumerMessages, JetStreamClient, JsMsg, PushConsumer } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import { EdgeforgeError } from '../../common/errors.js';
import { ManifestRefusedError, type ObjectRef } from '../../common/manifest.js';
import { abortable } from '../heartbeat/pause.js';
import {
  discardPartial,
  forgetProgress,
  openPartial,
  saveProgress,
  type PartialFile,
  type PartialObject,
} from './partial-download.js';

/**
 * How long the Object Store's JetStream API requests (open the bucket, look up and start reading
 * an object) may take. In a fleet-wide rollout thousands of agents ask at once: nats-server
 * answered some after more than the client's default 5 s while it streamed to a thousand agents
 * (`npm run bench -- fanout`), and a timed-out request only comes back as one more request.
 */
export const OBJECT_STORE_API_TIMEOUT_MS = 30_000;

/**
 * A partial download is fsynced and its progress recorded after about this many bytes (and when
 * a transfer fails): an agent killed mid-download loses at most this much.
 */
export const CHECKPOINT_BYTES = 1 << 20;

/** The transfer failed (NATS down or stuck, object not there yet): worth trying again later. */
export class DownloadError extends EdgeforgeError {
  override name = 'DownloadError';
}

/** A failed transfer whose partial file is no use to the next attempt (the object is short). */
class StartOverError extends DownloadError {}

/** Where a transfer continues a partial file from. */
export interface ResumePoint {
  /** Bytes already in the partial file (verified against its recorded progress). */
  bytes: number;
  /** Stream sequence of the last chunk in them; the transfer reads from the next one. */
  lastSeq: number;
}

export interface DownloadOptions {
  /** The JetStream client the object store was opened with: the chunks are read through it. */
  js: JetStreamClient;
  /** Give up on a transfer after this long without a byte (a dead connection, a lost consumer). */
  stallMs: number;
  signal: AbortSignal;
  /** Called before any chunk is read when the transfer continues an earlier one's partial file. */
  onResume?: (from: ResumePoint) => void;
  /** Called when an earlier transfer's partial file cannot be continued and is thrown away. */
  onStartOver?: (reason: string) => void;
  /** See CHECKPOINT_BYTES. */
  checkpointBytes?: number;
}

export interface DownloadResult {
  /** Bytes the partial file already held when this transfer started (0: from the start). */
  resumedFromBytes: number;
  /** Bytes this transfer read from the Object Store. */
  receivedBytes: number;
}

/**
 * Streams the object `ref` names into its partial file `file` (created, mode 0600), checks its
 * size and the sha256 of the whole file, and fsyncs it. A transfer that fails (DownloadError, or
 * the signal's reason when aborted) leaves `file` and its progress (`<file>.progress.json`,
 * written atomically after each fsynced batch of chunks): the next call for the same object
 * continues after the last chunk written, with an ordered consumer on the object's chunk subject
 * starting at the next stream sequence, instead of reading the object from byte 0. It continues
 * only the same object (same nuid, size and digest in the Object Store) and a file that still
 * holds the bytes recorded; anything else starts over.
 *
 * Throws ManifestRefusedError (size_mismatch, digest_mismatch) when the object is not the one the
 * manifest describes; then, as on success, no progress is left, and on a refusal no file either.
 * The digest is always that of the whole file: on resume the bytes already there are read back
 * from disk into the hash, so a partial file damaged between attempts is refused too.
 */
export async function downloadObject(
  store: ObjectStore,
  ref: ObjectRef,
  file: string,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const where = `object ${ref.name} in bucket ${ref.bucket}`;
  const info = await abortable(store.info(ref.name), options.signal).catch((err: unknown) => {
    if (options.signal.aborted) throw err;
    throw new DownloadError(`cannot look up ${where}: ${(err as Error).message}`, { cause: err });
  });
  if (info === null) throw new DownloadError(`${where} does not exist (yet)`);
  if (info.size !== ref.size) {
    await discardPartial(file);
    throw new ManifestRefusedError(
      'size_mismatch',
      `${where} has ${info.size} bytes; the manifest says ${ref.size}`,
    );
  }
  if (info.deleted) throw new DownloadError(`${where} was deleted`);

  const object: PartialObject = {
    bucket: ref.bucket,
    name: ref.name,
    sha256: ref.sha256,
    nuid: info.nuid,
    size: info.size,
    digest: info.digest,
  };
  const partial = await openPartial(file, object);
  if (partial.startedOver) options.onStartOver?.(partial.startedOver);
  const resumedFromBytes = partial.bytes;
  if (partial.resumed) options.onResume?.({ bytes: partial.bytes, lastSeq: partial.lastSeq });
  const transfer = new Transfer(partial, object, file, options.checkpointBytes ?? CHECKPOINT_BYTES);
  try {
    if (partial.bytes < ref.size) await transfer.readChunks(options, where);
    const digest = partial.hash.digest('hex');
    if (digest !== ref.sha256) {
      throw new ManifestRefusedError(
        'digest_mismatch',
        `${where} has sha256 ${digest}; the manifest says ${ref.sha256}`,
      );
    }
    await partial.handle.sync();
  } catch (err) {
    const failure = classify(err, where, options.signal);
    if (failure instanceof ManifestRefusedError || failure instanceof StartOverError) {
      await partial.handle.close();
      await discardPartial(file);
    } else {
      // Whatever arrived is kept for the next attempt.
      await transfer.checkpoint().catch(() => {});
      await partial.handle.close();
    }
    throw failure;
  }
  await partial.handle.close();
  await forgetProgress(file);
  return { resumedFromBytes, receivedBytes: partial.bytes - resumedFromBytes };
}

/** Reads an object's chunks into a partial file, recording its progress as it goes. */
class Transfer {
  #checkpointed: number;

  constructor(
    readonly partial: PartialFile,
    readonly object: PartialObject,
    readonly file: string,
    readonly checkpointBytes: number,
  ) {
    this.#checkpointed = partial.bytes;
  }

  /**
   * Reads the chunks after partial.lastSeq: the object's chunks are the messages on
   * `$O.<bucket>.C.<nuid>` in the stream OBJ_<bucket>, read as the Object Store's own get() does
   * (an ordered push consumer with flow control and idle heartbeats, filtered on that subject),
   * only starting at the next stream sequence (opt_start_seq) when resuming.
   */
  async readChunks(options: DownloadOptions, where: string): Promise<void> {
    const { partial, object } = this;
    const creating = options.js.consumers.getPushConsumer(`OBJ_${object.bucket}`, {
      filter_subjects: `$O.${object.bucket}.C.${object.nuid}`,
      ...(partial.lastSeq > 0 ? { opt_start_seq: partial.lastSeq + 1 } : {}),
    });
    const consumer = await within(creating, options, where).catch((err: unknown) => {
      // Given up on (stalled, aborted): should it still be created, it goes at once.
      void creating.then(forget, () => {});
      throw options.signal.aborted || err instanceof DownloadError
        ? err
        : new DownloadError(`cannot read ${where}: ${(err as Error).message}`, { cause: err });
    });
    let messages: ConsumerMessages | undefined;
    try {
      messages = await consumer.consume();
      const chunks = messages[Symbol.asyncIterator]();
      try {
        // Created with nothing left to deliver: the object's chunks end before its size.
        if ((await consumer.info(true)).num_pending === 0) throw this.#short(where);
        await this.#read(chunks, options, where);
      } finally {
        await stop(messages, chunks);
      }
    } finally {
      forget(consumer);
    }
  }

  async #read(
    chunks: AsyncIterator<JsMsg>,
    options: DownloadOptions,
    where: string,
  ): Promise<void> {
    const { partial, object } = this;
    for (;;) {
      const next = await within(chunks.next(), options, where);
      if (next.done) {
        throw new DownloadError(
          `the transfer of ${where} ended after ${partial.bytes} of ${object.size} bytes`,
        );
      }
      const chunk = next.value;
      const data = chunk.data;
      if (data.length > 0) {
        if (partial.bytes + data.length > object.size) {
          throw new ManifestRefusedError(
            'size_mismatch',
            `${where} is longer than the ${object.size} bytes the manifest says`,
          );
        }
        await write(partial.handle, data, partial.bytes);
        partial.hash.update(data);
        partial.bytes += data.length;
      }
      partial.lastSeq = chunk.seq;
      if (chunk.info.pending === 0) break;
      if (partial.bytes - this.#checkpointed >= this.checkpointBytes) await this.checkpoint();
    }
    if (partial.bytes !== object.size) throw this.#short(where);
  }

  /** Fsyncs what was written and records it, when there is anything new. */
  async checkpoint(): Promise<void> {
    const { partial } = this;
    if (partial.bytes === this.#checkpointed) return;
    await partial.handle.sync();
    await saveProgress(this.file, {
      ...this.object,
      bytes: partial.bytes,
      lastSeq: partial.lastSeq,
    });
    this.#checkpointed = partial.bytes;
  }

  #short(where: string): StartOverError {
    return new StartOverError(
      `${where} ended after ${this.partial.bytes} of ${this.object.size} bytes`,
    );
  }
}

async function write(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let at = 0; at < data.length;) {
    const { bytesWritten } = await handle.write(data, at, data.length - at, position + at);
    at += bytesWritten;
  }
}

/**
 * Stops the consumer's subscription. The client runs the stop (and its flow-control replies) only
 * as the iterator is read, so it is read out, dropping what had still arrived; never for long.
 */
async function stop(messages: ConsumerMessages, chunks: AsyncIterator<JsMsg>): Promise<void> {
  messages.stop();
  const drained = (async () => {
    for (;;) if ((await chunks.next()).done) return;
  })().catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([drained, new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
  clearTimeout(timer);
}

/**
 * The consumer of a finished or failed transfer goes away by itself after its inactivity
 * threshold; deleting it at once spares the server thousands of idle ones during a rollout.
 */
function forget(consumer: PushConsumer): void {
  void consumer.delete().catch(() => {});
}

/** `work`, unless the transfer stalls for stallMs or the signal aborts first. */
async function within<T>(
  work: Promise<T>,
  { stallMs, signal }: DownloadOptions,
  where: string,
): Promise<T> {
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
    return await Promise.race([work, interrupted]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

function classify(err: unknown, where: string, signal: AbortSignal): unknown {
  if (signal.aborted || err instanceof ManifestRefusedError || err instanceof DownloadError) {
    return err;
  }
  return new DownloadError(`reading ${where} failed: ${(err as Error).message}`, { cause: err });
}
