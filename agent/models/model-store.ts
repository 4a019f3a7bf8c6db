import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeforgeError } from '../../common/errors.js';
import type { ModelManifest, ObjectRef, SignedManifest } from '../../common/manifest.js';
import { PROGRESS_SUFFIX } from '../download/partial-download.js';
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

/** A resumable partial download in downloads/ (ModelStore.partialPath). */
const PARTIAL_FILE = /^[0-9a-f]{64}\.(onnx|npz)\.part$/;
/** Partial downloads kept at most: a model and its holdout bundle, and those of the one before. */
export const KEPT_PARTIALS = 4;

/** When the file was last written; 0 when it has gone in the meantime. */
async function mtimeOf(file: string): Promise<number> {
  return stat(file).then(
    (s) => s.mtimeMs,
    () => 0,
  );
}

export class ModelStoreError extends EdgeforgeError {
  override name = 'ModelStoreError';
}

/**
 * The models on the device, in the data dir:
 *   models/<sha256>.onnx, models/<sha256>.npz   verified files, named by content
 *   downloads/<sha256>.<ext>.part               objects being streamed, one partial file per
 *   downloads/<sha256>.<ext>.part.progress.json object, with its progress: kept across restarts
 *                                               so a transfer resumes (agent/download/); a few
 *                                               at most, anything else there goes at open
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

  /**
   * Creates the folders. Of what a stopped or killed agent left in downloads/, only the partial
   * files of objects (with their progress) stay, for their transfers to resume; see prunePartials.
   */
  async open(): Promise<void> {
    await mkdir(this.downloadsDir, { recursive: true, mode: 0o700 });
    await mkdir(this.modelsDir, { recursive: true, mode: 0o700 });
    await this.prunePartials();
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

  /** A fresh path in downloads/ for a one-off download, never resumed (dropped at open). */
  downloadPath(): string {
    return join(this.downloadsDir, `${randomBytes(8).toString('hex')}.part`);
  }

  /**
   * The partial file an object is streamed into: named by the object's content and kind, the
   * same across attempts and restarts, so a transfer can resume and two objects never share one.
   * Its progress file (`<partial>.progress.json`) says which stored object it holds.
   */
  partialPath(ref: ObjectRef, extension: 'onnx' | 'npz'): string {
    return join(this.downloadsDir, `${ref.sha256}.${extension}.part`);
  }

  /**
   * Bounds downloads/: keeps `keep` (a partialPath) and the most recently written of the other
   * partial files, KEPT_PARTIALS in all, each with its progress file; deletes the rest of them
   * (objects no longer wanted) and everything else there (one-off downloads, temporary files,
   * progress files without their partial file).
   */
  async prunePartials(keep?: string): Promise<void> {
    const names = await readdir(this.downloadsDir);
    const partials = names.filter((name) => PARTIAL_FILE.test(name));
    const written = new Map<string, number>();
    for (const name of partials) {
      const file = join(this.downloadsDir, name);
      written.set(name, file === keep ? Infinity : await mtimeOf(file));
    }
    partials.sort((a, b) => written.get(b)! - written.get(a)!);
    const kept = new Set(partials.slice(0, KEPT_PARTIALS));
    for (const name of names) {
      const partial = name.endsWith(PROGRESS_SUFFIX)
        ? name.slice(0, -PROGRESS_SUFFIX.length)
        : name;
      if (kept.has(partial)) continue;
      await rm(join(this.downloadsDir, name), { recursive: true, force: true });
    }
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
