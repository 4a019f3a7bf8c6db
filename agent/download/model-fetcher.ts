import { stat, unlink } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { jetstream } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import type { Logger } from '../../common/logger.js';
import { ManifestRefusedError, type ModelManifest, type ObjectRef } from '../../common/manifest.js';
import { Backoff, type BackoffOptions } from '../heartbeat/backoff.js';
import { abortable, pause } from '../heartbeat/pause.js';
import { loadSession } from '../inference/load-session.js';
import type { ModelStore } from '../models/model-store.js';
import type { NatsLink } from '../nats/nats-link.js';
import { freeDiskBytes, requireRoom, requireSelfContained } from './model-checks.js';
import { DownloadError, downloadObject, OBJECT_STORE_API_TIMEOUT_MS } from './object-download.js';

export interface ModelFetcherOptions {
  link: NatsLink;
  store: ModelStore;
  /** See DownloadOptions.stallMs. */
  stallMs: number;
  backoff: BackoffOptions;
  logger: Logger;
  /** Told each time a transfer continues a partial file instead of starting at byte 0. */
  onResume?: (resume: DownloadResume) => void;
}

/** A transfer that continues where an earlier one (this process's or a killed agent's) ended. */
export interface DownloadResume {
  object: string;
  bucket: string;
  /** Bytes already in the partial file; the transfer reads only the rest. */
  resumedFromBytes: number;
  size: number;
  /** This fetch's attempt; 1 when the partial file is from before a restart of the agent. */
  attempt: number;
}

/** Called on each failed transfer before the retry; `attempt` counts from 1. */
export type OnDownloadFailure = (error: DownloadError, attempt: number) => void;

/** What the device has room for (download/model-checks.ts). */
export interface DeviceLimits {
  /** The device's memory: its profile's memoryBytes; this machine's when absent. */
  memoryBytes?: number;
}

/**
 * Puts a manifest's model file and holdout bundle into the model store, verified: streamed from
 * the Object Store into the object's partial file in downloads/, checked for size and the sha256
 * of the whole file (and, for the model, that it keeps no tensor outside the file and that ONNX
 * Runtime can load it), then renamed into models/. Before any transfer, a model or holdout too
 * big for the device's memory or free disk is refused (download/model-checks.ts). Files already
 * there are not fetched again. A failed transfer is retried with backoff
 * until it succeeds or the signal aborts; a server restart or a reconnect mid-download ends the
 * transfer at once, and the retry resumes after the last chunk written (so does the first
 * attempt after an agent restart). An object that is not what the manifest says is refused at
 * once with ManifestRefusedError, and its partial file deleted.
 */
export class ModelFetcher {
  readonly #o: ModelFetcherOptions;

  constructor(options: ModelFetcherOptions) {
    this.#o = options;
  }

  async fetch(
    manifest: ModelManifest,
    signal: AbortSignal,
    onFailure: OnDownloadFailure,
    device: DeviceLimits = {},
  ): Promise<void> {
    await this.#requireRoom(manifest, device.memoryBytes ?? totalmem());
    await this.#fetchOne(manifest.model, 'onnx', signal, onFailure);
    if (manifest.holdout) await this.#fetchOne(manifest.holdout, 'npz', signal, onFailure);
  }

  /** Refuses (too_large) what the device cannot hold, before reading a byte of it. */
  async #requireRoom(manifest: ModelManifest, memoryBytes: number): Promise<void> {
    const { store } = this.#o;
    const left = async (ref: ObjectRef, extension: 'onnx' | 'npz') => {
      if (await store.has(store.fileFor(ref, extension))) return 0;
      const partial = await stat(store.partialPath(ref, extension)).then(
        (s) => s.size,
        () => 0,
      );
      return Math.max(0, ref.size - partial);
    };
    const downloadBytes =
      (await left(manifest.model, 'onnx')) +
      (manifest.holdout ? await left(manifest.holdout, 'npz') : 0);
    requireRoom(manifest, {
      memoryBytes,
      downloadBytes,
      freeDiskBytes: downloadBytes > 0 ? await freeDiskBytes(store.downloadsDir) : undefined,
      dataDir: store.downloadsDir,
    });
  }

  async #fetchOne(
    ref: ObjectRef,
    extension: 'onnx' | 'npz',
    signal: AbortSignal,
    onFailure: OnDownloadFailure,
  ): Promise<void> {
    const { store, link, stallMs, logger } = this.#o;
    const file = store.fileFor(ref, extension);
    if (await store.has(file)) return;
    const partial = store.partialPath(ref, extension);
    // Partial files of objects no longer wanted go; this one's stays, to be resumed.
    await store.prunePartials(partial);
    const backoff = new Backoff(this.#o.backoff);
    for (let attempt = 1; ; attempt++) {
      const ids = { object: ref.name, bucket: ref.bucket, attempt };
      try {
        const nc = await link.connection(signal).catch((err: unknown) => {
          if (signal.aborted) throw err;
          // The link moved to another NATS URL while connecting: try again there.
          throw new DownloadError(`no NATS connection: ${(err as Error).message}`, { cause: err });
        });
        const js = jetstream(nc, {
          timeout: OBJECT_STORE_API_TIMEOUT_MS,
          // A device may not read the account's JetStream info, only its class's bucket.
          checkAPI: false,
          // The chunks are delivered to this device's own inbox, the only one it may read.
          watcherPrefix: link.inboxPrefix,
        });
        // Messages pushed while the connection was down are lost, and the consumer may not
        // resume (nats-server drops slow readers during big fan-outs); a request sent while it
        // was down waits out its timeout. So a reconnect ends this attempt at once, whatever it
        // is doing, instead of waiting out the stall timeout; the next one resumes the transfer
        // after its last chunk.
        const reconnected = new AbortController();
        const forget = link.onReconnect(() =>
          reconnected.abort(
            new DownloadError(`the NATS connection was re-established while reading ${ref.name}`),
          ),
        );
        const interrupted = AbortSignal.any([signal, reconnected.signal]);
        let resumedFromBytes: number;
        try {
          const objects = await abortable(new Objm(js).open(ref.bucket), interrupted).catch(
            (err: unknown) => {
              if (interrupted.aborted) throw err;
              throw new DownloadError(
                `cannot open the bucket ${ref.bucket}: ${(err as Error).message}`,
                { cause: err },
              );
            },
          );
          ({ resumedFromBytes } = await downloadObject(objects, ref, partial, {
            js,
            stallMs,
            signal: interrupted,
            onResume: ({ bytes }) => {
              logger.info(
                { ...ids, resumedFromBytes: bytes, size: ref.size },
                'resuming the download after the bytes already there',
              );
              this.#o.onResume?.({ ...ids, resumedFromBytes: bytes, size: ref.size });
            },
            onStartOver: (reason) =>
              logger.warn({ ...ids, reason }, 'cannot resume the download; starting it over'),
          }));
        } finally {
          forget();
        }
        if (extension === 'onnx') await requireLoadable(partial, ref);
        await store.install(partial, file);
        logger.info({ ...ids, bytes: ref.size, resumedFromBytes }, 'downloaded and verified');
        return;
      } catch (err) {
        if (signal.aborted || !(err instanceof DownloadError)) throw err;
        onFailure(err, attempt);
        if (!(await pause(backoff.next(), signal))) throw signal.reason;
      }
    }
  }
}

/**
 * A file whose digest matched can still be something ONNX Runtime must not or cannot load here:
 * one with external data, or no ONNX at all, is refused before ONNX Runtime reads it.
 */
async function requireLoadable(file: string, ref: ObjectRef): Promise<void> {
  try {
    await requireSelfContained(file, ref);
  } catch (err) {
    await unlink(file).catch(() => {});
    throw err;
  }
  try {
    await (await loadSession(file)).release();
  } catch (err) {
    await unlink(file).catch(() => {});
    // The download's temporary name means nothing to whoever reads the report.
    const reason = (err as Error).message.replaceAll(file, ref.name);
    throw new ManifestRefusedError(
      'not_onnx',
      `${ref.name} is not a model ONNX Runtime can load: ${reason}`,
    );
  }
}
