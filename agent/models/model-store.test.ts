import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SignedManifest } from '../../common/manifest.js';
import { testManifest } from '../../test/helpers/manifests.js';
import { EMPTY_MODEL_STATE, ModelStore, ModelStoreError } from './model-store.js';

const signed = (model: string, holdout?: string): SignedManifest => ({
  manifest: testManifest({
    model: Buffer.from(model),
    holdout: holdout === undefined ? undefined : Buffer.from(holdout),
    hardwareClasses: ['c'],
  }),
  signature: 'c2ln',
});

describe('ModelStore', () => {
  let dataDir: string;
  let store: ModelStore;
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'edgeforge-models-'));
    store = new ModelStore(dataDir);
    await store.open();
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  it('installs a download under its content name and forgets half-finished downloads at open', async () => {
    const a = signed('model a', 'holdout a');
    const partial = store.downloadPath();
    await writeFile(partial, 'model a');
    await store.install(partial, store.modelFile(a.manifest));
    expect(await readFile(store.modelFile(a.manifest), 'utf8')).toBe('model a');
    expect(store.modelFile(a.manifest)).toBe(
      join(dataDir, 'models', `${a.manifest.model.sha256}.onnx`),
    );
    expect(store.holdoutFile(a.manifest)).toBe(
      join(dataDir, 'models', `${a.manifest.holdout!.sha256}.npz`),
    );
    expect(store.holdoutFile(signed('no holdout').manifest)).toBeNull();

    await writeFile(store.downloadPath(), 'killed mid-download');
    await new ModelStore(dataDir).open();
    expect(await readdir(store.downloadsDir)).toEqual([]);
    expect(await store.has(store.modelFile(a.manifest))).toBe(true);
  });

  it('reads back the state it saved, signatures untouched; nothing saved is no model', async () => {
    expect(await store.loadState()).toEqual(EMPTY_MODEL_STATE);
    const state = { active: signed('b'), previous: signed('a') };
    await store.saveState(state);
    expect(await store.loadState()).toEqual(state);
    expect((await readdir(dataDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to guess from a corrupt state file', async () => {
    await writeFile(store.stateFile, '{"active": {"manifest": 1}}');
    await expect(store.loadState()).rejects.toThrow(ModelStoreError);
    await expect(store.loadState()).rejects.toThrow(
      /model-state\.json is corrupt \(active\.manifest/,
    );
    await writeFile(store.stateFile, '{"act');
    await expect(store.loadState()).rejects.toThrow(/move the file away/);
  });

  it('prunes every file but those of the active and the previous model', async () => {
    const [a, b, c] = [signed('a', 'ha'), signed('b'), signed('c', 'hc')];
    for (const s of [a, b, c]) {
      await writeFile(store.modelFile(s.manifest), 'x');
      const holdout = store.holdoutFile(s.manifest);
      if (holdout) await writeFile(holdout, 'x');
    }
    const removed = await store.prune({ active: b, previous: a });
    expect(removed.sort()).toEqual(
      [store.modelFile(c.manifest), store.holdoutFile(c.manifest)].sort(),
    );
    expect((await readdir(store.modelsDir)).sort()).toEqual(
      [
        `${a.manifest.model.sha256}.onnx`,
        `${a.manifest.holdout!.sha256}.npz`,
        `${b.manifest.model.sha256}.onnx`,
      ].sort(),
    );
  });
});
