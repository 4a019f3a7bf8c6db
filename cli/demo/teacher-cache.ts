import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Objm } from '@nats-io/obj';
import { OBJECT_BUCKETS } from '../../common/names.js';
import { connectNats } from '../../common/nats.js';
import type { DatasetSpec, TrainingConfig } from '../../common/gpu-contracts.js';
import type { ModelSummary } from '../../common/rollout.js';

/** What a cached teacher was trained as, kept beside its weights. */
export interface CachedTeacher {
  architecture: string;
  training: TrainingConfig;
  dataset: DatasetSpec;
  /** The state_dict, as torch.save(model.state_dict()) wrote it. */
  file: string;
  sha256: string;
  sizeBytes: number;
  testAccuracy: number | null;
  /** The rollout that trained it. */
  rolloutId: string;
  cachedAt: string;
}

export interface TeacherKeyParts {
  architecture: string;
  training: TrainingConfig;
  dataset: DatasetSpec;
}

/**
 * The cache key: the teacher's architecture and training settings and everything about the data
 * set that changes what it learns. A different config trains (and caches) a new teacher.
 */
export function teacherCacheKey(parts: TeacherKeyParts): string {
  const d = parts.dataset;
  const canonical = JSON.stringify({
    v: 1,
    architecture: parts.architecture,
    training: Object.fromEntries(Object.entries(parts.training).sort()),
    dataset: {
      source: d.source,
      path: d.path ?? null,
      max_train_samples: d.max_train_samples ?? null,
      seed: d.seed ?? 0,
      validation_fraction: d.validation_fraction ?? null,
      test_fraction: d.test_fraction ?? null,
    },
  });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

export class TeacherCache {
  constructor(readonly dir: string) {}

  folder(parts: TeacherKeyParts): string {
    return join(this.dir, `teacher-${parts.architecture}-${teacherCacheKey(parts)}`);
  }

  /** The cached teacher for this config, when there is a complete one. */
  async lookup(parts: TeacherKeyParts): Promise<CachedTeacher | null> {
    const meta = join(this.folder(parts), 'teacher.json');
    if (!existsSync(meta)) return null;
    try {
      const cached = JSON.parse(await readFile(meta, 'utf8')) as CachedTeacher;
      return existsSync(cached.file) ? cached : null;
    } catch {
      return null; // A damaged entry is trained again and overwritten.
    }
  }

  /**
   * Copies `<rolloutId>/teacher/model.pt` from the models bucket (the object store checks its
   * digest while streaming) into the cache, atomically: the metadata is written last.
   */
  async save(
    natsUrl: string,
    rolloutId: string,
    parts: TeacherKeyParts,
    summary: ModelSummary | null,
  ): Promise<CachedTeacher> {
    const folder = this.folder(parts);
    await mkdir(folder, { recursive: true });
    const file = join(folder, 'model.pt');
    const partial = `${file}.${process.pid}.partial`;
    const objectName = `${rolloutId}/teacher/model.pt`;
    const nats = await connectNats(natsUrl, { name: 'edgeforge-demo-teacher-cache' });
    try {
      const store = await new Objm(nats).open(OBJECT_BUCKETS.models);
      const object = await store.get(objectName);
      if (!object) throw new Error(`${objectName} is not in the ${OBJECT_BUCKETS.models} bucket`);
      const hash = createHash('sha256');
      let size = 0;
      const out = createWriteStream(partial);
      const reader = object.data.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        hash.update(value);
        size += value.length;
        if (!out.write(value)) await once(out, 'drain');
      }
      await new Promise<void>((resolve, reject) =>
        out.end((err?: Error | null) => (err ? reject(err) : resolve())),
      );
      const failure = await object.error;
      if (failure) throw failure;
      await rename(partial, file);
      const cached: CachedTeacher = {
        ...parts,
        file,
        sha256: hash.digest('hex'),
        sizeBytes: size,
        testAccuracy: summary?.testAccuracy ?? null,
        rolloutId,
        cachedAt: new Date().toISOString(),
      };
      await writeFile(join(folder, 'teacher.json'), `${JSON.stringify(cached, null, 2)}\n`);
      return cached;
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    } finally {
      await nats.close();
    }
  }
}
