import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeforgeError } from '../../common/errors.js';
import type { ModelManifest, ObjectRef, SignedManifest } from '../../common/manifest.js';
import { fsyncDir, readJsonFile, writeFileAtomic } from '../storage/atomic-file.js';
import { firstIssue, SignedManifestSchema } from './manifest-schema.js';

/** Which models the device runs: the active one, and the one before it, kept for rollback. */
export interface ModelState {
  active: SignedManifest | null;
  previous: SignedManifest | null;
}

export const EMPTY_MODEL_STATE: ModelState = { active: null, previous: null };

const ModelStateSchema = z.object({
  active: SignedManifestSchema.nullable(),
  previous: SignedManifestSchema.nullable(),
});

export class ModelStoreError extends EdgeforgeError {
  override name = 'ModelStoreError';
}

/**
 * The models on the device, in the data dir:
 *   models/<sha256>.onnx, models/<sha256>.npz   verified files, named by content
 *   downloads/                                  objects being streamed; emptied at every start
 *   model-state.json                            ModelState, replaced atomically
 * A file enters models/ only by rename from downloads/ after its digest matched, so a file there
 * is always complete; the state names only files that are there.
 */
export class ModelStore {
  readonly modelsDir: string;
  readonly downloadsDir: string;
  readonly stateFile: string;

  constructor(dataDir: string) {
    this.modelsDir = join(dataDir, 'models');
    this.downloadsDir = join(dataDir, 'downloads');
    this.stateFile = join(dataDir, 'model-state.json');
  }

  /** Creates the folders and drops what a stopped or killed agent left half-downloaded. */
  async open(): Promise<void> {
    await rm(this.downloadsDir, { recursive: true, force: true });
    await mkdir(this.downloadsDir, { recursive: true, mode: 0o700 });
    await mkdir(this.modelsDir, { recursive: true, mode: 0o700 });
  }

  modelFile(manifest: ModelManifest): string {
    return this.fileFor(manifest.model, 'onnx');
  }

  /** Null when the manifest ships no holdout bundle. */
  holdoutFile(manifest: ModelManifest): string | null {
    return manifest.holdout ? this.fileFor(manifest.holdout, 'npz') : null;
  }

  fileFor(ref: ObjectRef, extension: 'onnx' | 'npz'): string {
    return join(this.modelsDir, `${ref.sha256}.${extension}`);
  }

  async has(file: string): Promise<boolean> {
    return access(file).then(
      () => true,
      () => false,
    );
  }

  /** A fresh path in downloads/ to stream an object into. */
  downloadPath(): string {
    return join(this.downloadsDir, `${randomBytes(8).toString('hex')}.part`);
  }

  /** Moves a verified, fsynced download into models/ under its final name, durably. */
  async install(downloaded: string, file: string): Promise<void> {
    await rename(downloaded, file);
    await fsyncDir(this.modelsDir);
  }

  async loadState(): Promise<ModelState> {
    let json: unknown;
    try {
      json = await readJsonFile(this.stateFile);
    } catch (err) {
      throw this.#corrupt((err as Error).message, err);
    }
    if (json === undefined) return EMPTY_MODEL_STATE;
    const parsed = ModelStateSchema.safeParse(json);
    if (!parsed.success) throw this.#corrupt(firstIssue(parsed.error), parsed.error);
    // The parsed copy would do, but the signatures cover the stored objects: keep those.
    return json as ModelState;
  }

  async saveState(state: ModelState): Promise<void> {
    await writeFileAtomic(this.stateFile, `${JSON.stringify(state, null, 2)}\n`);
  }

  /** Deletes the files in models/ that neither the active nor the previous model needs. */
  async prune(state: ModelState): Promise<string[]> {
    const keep = new Set<string>();
    for (const signed of [state.active, state.previous]) {
      if (!signed) continue;
      keep.add(this.modelFile(signed.manifest));
      const holdout = this.holdoutFile(signed.manifest);
      if (holdout) keep.add(holdout);
    }
    const removed: string[] = [];
    for (const name of await readdir(this.modelsDir)) {
      const file = join(this.modelsDir, name);
      if (keep.has(file)) continue;
      await unlink(file);
      removed.push(file);
    }
    return removed;
  }

  #corrupt(problem: string, cause: unknown): ModelStoreError {
    return new ModelStoreError(
      `${this.stateFile} is corrupt (${problem}). The agent will not guess which model to run: ` +
        'move the file away to start without a model, then rewrite the device desired state',
      { cause },
    );
  }
}
