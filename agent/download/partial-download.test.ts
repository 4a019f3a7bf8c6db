import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KEPT_PARTIALS, ModelStore } from '../models/model-store.js';
import {
  discardPartial,
  openPartial,
  progressFileFor,
  saveProgress,
  type PartialObject,
} from './partial-download.js';

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');
const CONTENT = Buffer.from('0123456789abcdefghij');
const OBJECT: PartialObject = {
  bucket: 'edgeforge_models',
  name: `test/${sha256(CONTENT)}`,
  sha256: sha256(CONTENT),
  nuid: 'NUID1',
  size: CONTENT.length,
  digest: 'SHA-256=abc=',
};

describe('partial downloads', () => {
  let dir: string;
  let partial: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-partial-'));
    partial = join(dir, `${OBJECT.sha256}.onnx.part`);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** What an interrupted transfer leaves: `written` bytes on disk, `recorded` of them in its progress. */
  async function interrupted(written: number, recorded = written, object = OBJECT) {
    await writeFile(partial, CONTENT.subarray(0, written));
    await saveProgress(partial, { ...object, bytes: recorded, lastSeq: 40 + recorded });
  }

  it('starts an object without progress from byte 0, in a new 0600 file', async () => {
    await writeFile(partial, 'left by a transfer that recorded nothing');
    const opened = await openPartial(partial, OBJECT);
    await opened.handle.close();
    expect(opened).toMatchObject({ bytes: 0, lastSeq: 0, resumed: false });
    expect(opened.startedOver).toBeUndefined();
    expect((await stat(partial)).size).toBe(0);
    expect((await stat(partial)).mode & 0o777).toBe(0o600);
    expect(opened.hash.digest('hex')).toBe(sha256(''));
  });

  it('resumes after the recorded bytes, the hash re-seeded from the file on disk', async () => {
    await interrupted(8);
    const opened = await openPartial(partial, OBJECT);
    await opened.handle.close();
    expect(opened).toMatchObject({ bytes: 8, lastSeq: 48, resumed: true });
    expect(opened.hash.update(CONTENT.subarray(8)).digest('hex')).toBe(OBJECT.sha256);
  });

  it('cuts off what was written after the last recorded batch', async () => {
    await interrupted(14, 8);
    const opened = await openPartial(partial, OBJECT);
    await opened.handle.close();
    expect(opened).toMatchObject({ bytes: 8, resumed: true });
    expect(await readFile(partial)).toEqual(CONTENT.subarray(0, 8));
  });

  it('hashes the bytes as they are on disk, so damage between attempts shows in the digest', async () => {
    await interrupted(8);
    await writeFile(partial, 'X1234567');
    const opened = await openPartial(partial, OBJECT);
    await opened.handle.close();
    expect(opened.resumed).toBe(true);
    expect(opened.hash.update(CONTENT.subarray(8)).digest('hex')).not.toBe(OBJECT.sha256);
  });

  it.each([
    ['a shorter file', () => interrupted(5, 8), /has 5 of the 8 bytes its progress records/],
    ['no file', () => interrupted(8).then(() => rm(partial)), /the partial file is missing/],
    [
      'another upload of the object (new nuid)',
      () => interrupted(8, 8, { ...OBJECT, nuid: 'NUID0' }),
      /the object changed since \(nuid differs\)/,
    ],
    [
      'another digest',
      () => interrupted(8, 8, { ...OBJECT, digest: 'SHA-256=old=' }),
      /digest differs/,
    ],
    [
      'another object name',
      () => interrupted(8, 8, { ...OBJECT, name: 'test/other' }),
      /name differs/,
    ],
    [
      'a malformed progress file',
      () => interrupted(8).then(() => writeFile(progressFileFor(partial), '{"bytes": "8"}')),
      /malformed/,
    ],
    [
      'a progress file that is not JSON',
      () => interrupted(8).then(() => writeFile(progressFileFor(partial), '{"by')),
      /unreadable/,
    ],
  ])('starts over from byte 0 given %s', async (_, leave, reason) => {
    await leave();
    const opened = await openPartial(partial, OBJECT);
    await opened.handle.close();
    expect(opened).toMatchObject({ bytes: 0, lastSeq: 0, resumed: false });
    expect(opened.startedOver).toMatch(reason);
    expect((await stat(partial)).size).toBe(0);
    expect(await readdir(dir)).toEqual([`${OBJECT.sha256}.onnx.part`]);
  });

  it('discards a partial file and its progress', async () => {
    await interrupted(8);
    await discardPartial(partial);
    await discardPartial(partial);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('the model store keeps a bounded set of partial downloads', () => {
  let dataDir: string;
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  it('keeps the resumable ones across an agent restart, the newest few, and nothing else', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'edgeforge-partials-'));
    const store = new ModelStore(dataDir);
    await store.open();
    const ref = (n: number) => ({ ...OBJECT, sha256: sha256(`object ${n}`) });
    const partials = Array.from({ length: KEPT_PARTIALS + 2 }, (_, n) =>
      store.partialPath(ref(n), n % 2 ? 'npz' : 'onnx'),
    );
    expect(partials[0]).toBe(join(dataDir, 'downloads', `${ref(0).sha256}.onnx.part`));
    expect(store.partialPath(ref(0), 'onnx')).toBe(partials[0]);
    // Written a minute apart, the first one longest ago.
    for (const [n, file] of partials.entries()) {
      await writeFile(file, `part ${n}`);
      await saveProgress(file, { ...ref(n), bytes: 6, lastSeq: 7 });
      const at = new Date(Date.now() - (partials.length - n) * 60_000);
      await utimes(file, at, at);
    }
    const junk = [
      store.downloadPath(),
      join(store.downloadsDir, `.${ref(9).sha256}.onnx.part.progress.json.0a1b2c.tmp`),
      progressFileFor(store.partialPath(ref(9), 'onnx')),
    ];
    for (const file of junk) await writeFile(file, 'junk');

    await new ModelStore(dataDir).open();
    const newest = partials.slice(-KEPT_PARTIALS);
    const pairs = (files: string[]) =>
      files.flatMap((f) =>
        [f, progressFileFor(f)].map((p) => p.slice(store.downloadsDir.length + 1)),
      );
    expect((await readdir(store.downloadsDir)).sort()).toEqual(pairs(newest).sort());

    // The one being fetched stays whatever its age; the oldest other goes.
    await writeFile(partials[0]!, 'part 0');
    await saveProgress(partials[0]!, { ...ref(0), bytes: 6, lastSeq: 7 });
    await utimes(partials[0]!, new Date(0), new Date(0));
    await store.prunePartials(partials[0]);
    expect((await readdir(store.downloadsDir)).sort()).toEqual(
      pairs([partials[0]!, ...newest.slice(1)]).sort(),
    );
  });
});
