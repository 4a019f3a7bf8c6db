import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ManifestRefusedError, type ModelManifest } from '../../common/manifest.js';
import { createLogger } from '../../common/logger.js';
import { testManifest } from '../../test/helpers/manifests.js';
import { ModelStore } from '../models/model-store.js';
import type { NatsLink } from '../nats/nats-link.js';
import {
  DISK_MARGIN_BYTES,
  freeDiskBytes,
  holdoutMemoryCap,
  modelMemoryCap,
  requireRoom,
} from './model-checks.js';
import { ModelFetcher } from './model-fetcher.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A manifest whose model (and holdout) claim these sizes; the bytes are never downloaded. */
function manifest(modelBytes: number, holdoutBytes?: number): ModelManifest {
  const m = testManifest({
    model: Buffer.from('model'),
    holdout: holdoutBytes === undefined ? undefined : Buffer.from('holdout'),
    hardwareClasses: ['c'],
  });
  m.model.size = modelBytes;
  if (m.holdout && holdoutBytes !== undefined) m.holdout.size = holdoutBytes;
  return m;
}

const room = (memoryBytes: number, downloadBytes = 0, free?: number) => ({
  memoryBytes,
  downloadBytes,
  freeDiskBytes: free,
  dataDir: '/data/downloads',
});

const refusal = (run: () => unknown) => {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ManifestRefusedError);
    return err as ManifestRefusedError;
  }
  throw new Error('not refused');
};

describe('size caps', () => {
  it('takes models up to half the memory and holdouts up to a quarter (512 MiB at most)', () => {
    expect(modelMemoryCap(4 * GiB)).toBe(2 * GiB);
    expect(holdoutMemoryCap(1 * GiB)).toBe(256 * MiB);
    expect(holdoutMemoryCap(16 * GiB)).toBe(512 * MiB);
    expect(() => requireRoom(manifest(2 * GiB, 256 * MiB), room(4 * GiB))).not.toThrow();
  });

  it('refuses a model over half the memory, with the numbers', () => {
    const err = refusal(() => requireRoom(manifest(5 * MiB), room(8 * MiB)));
    expect(err.reason).toBe('too_large');
    expect(err.message).toBe(
      `too_large: the model ${manifest(1).model.name} is 5.0 MiB; this device takes models up ` +
        'to 4.0 MiB, half of its 8.0 MiB of memory (ONNX Runtime holds the weights and its ' +
        'arenas, next to the model it serves): compress it further, or build it for a class ' +
        'with more memory',
    );
  });

  it('refuses a holdout bundle over its cap', () => {
    const err = refusal(() => requireRoom(manifest(MiB, 3 * MiB), room(8 * MiB)));
    expect(err.message).toMatch(
      /^too_large: the holdout bundle test\/[0-9a-f]{64} is 3\.0 MiB; this device takes holdout bundles up to 2\.0 MiB \(a quarter of its 8\.0 MiB of memory, at most 512 MiB: it is decompressed in memory\): ship fewer samples$/,
    );
  });

  it('refuses a download that would leave less than the margin free on disk', () => {
    const free = DISK_MARGIN_BYTES + 100 * MiB;
    expect(() =>
      requireRoom(manifest(60 * MiB, 40 * MiB), room(GiB, 100 * MiB, free)),
    ).not.toThrow();
    const err = refusal(() =>
      requireRoom(manifest(60 * MiB, 40 * MiB), room(GiB, 100 * MiB + 1, free)),
    );
    expect(err.message).toMatch(
      /^too_large: downloading test\/\w+ \(60\.0 MiB\) and test\/\w+ \(40\.0 MiB\) needs 100\.0 MiB more on disk; \/data\/downloads has 356\.0 MiB free, of which 256\.0 MiB stay free for the system: free disk space on the device, or ship a smaller model$/,
    );
    // Nothing left to download, or a file system that cannot tell: no disk check.
    expect(() => requireRoom(manifest(60 * MiB), room(GiB, 0, 0))).not.toThrow();
    expect(() => requireRoom(manifest(60 * MiB), room(GiB, 60 * MiB, undefined))).not.toThrow();
  });

  it("measures the data dir's free disk", async () => {
    expect(await freeDiskBytes(tmpdir())).toBeGreaterThan(0);
    expect(await freeDiskBytes('/no/such/dir')).toBeUndefined();
  });
});

describe('ModelFetcher size checks', () => {
  async function fetcher() {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-fetch-caps-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const store = new ModelStore(dir);
    await store.open();
    const link = {
      connection: () => Promise.reject(new Error('the checks must come before any transfer')),
    } as unknown as NatsLink;
    const fetcher = new ModelFetcher({
      link,
      store,
      stallMs: 1000,
      backoff: { baseMs: 1, capMs: 1 },
      logger: createLogger('test', 'silent'),
    });
    /** Fails (the first transfer attempt stops it) unless the checks refuse first. */
    const fetch = (m: ModelManifest, memoryBytes?: number) => {
      const stop = new AbortController();
      return fetcher.fetch(m, stop.signal, (err) => stop.abort(err), { memoryBytes });
    };
    return { store, fetch };
  }

  it("refuses before any transfer what does not fit the device's memory", async () => {
    const { fetch } = await fetcher();
    await expect(fetch(manifest(5 * MiB), 8 * MiB)).rejects.toMatchObject({
      reason: 'too_large',
      message: expect.stringContaining('this device takes models up to 4.0 MiB') as unknown,
    });
  });

  it('refuses what does not fit the disk, less what is already there', async () => {
    const { store, fetch } = await fetcher();
    const free = (await freeDiskBytes(store.downloadsDir))!;
    const m = manifest(free - DISK_MARGIN_BYTES + GiB);
    const memory = 1024 * 1024 * GiB;
    await expect(fetch(m, memory)).rejects.toMatchObject({
      reason: 'too_large',
      message: expect.stringMatching(/needs [\d.]+ MiB more on disk; .* free, of which/) as unknown,
    });
    // A partial file from an earlier attempt (sparse here: it takes no disk) is not downloaded
    // again, so the rest fits: the fetch goes on to the transfer.
    await writeFile(store.partialPath(m.model, 'onnx'), '');
    await truncate(store.partialPath(m.model, 'onnx'), 2 * GiB);
    await expect(fetch(m, memory)).rejects.toThrow(
      'no NATS connection: the checks must come before any transfer',
    );
    // Already in models/: nothing to download, so no disk check, and nothing fetched.
    await writeFile(store.modelFile(m), 'model');
    await expect(fetch(m, memory)).resolves.toBeUndefined();
  });
});
