import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FULL_DEMO, QUICK_DEMO, demoRolloutId } from './demo-config.js';
import { TeacherCache, teacherCacheKey } from './teacher-cache.js';

const parts = { ...FULL_DEMO.teacher, dataset: FULL_DEMO.dataset };

describe('teacher cache', () => {
  it('keys by architecture, training settings and the data that shapes the teacher', () => {
    const key = teacherCacheKey(parts);
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    // Key order in the training settings does not matter; their values do.
    const reordered = {
      ...parts,
      training: Object.fromEntries(Object.entries(parts.training).reverse()),
    };
    expect(teacherCacheKey(reordered)).toBe(key);
    expect(teacherCacheKey({ ...parts, training: { ...parts.training, epochs: 4 } })).not.toBe(key);
    expect(
      teacherCacheKey({ ...parts, dataset: { ...parts.dataset, max_train_samples: 6000 } }),
    ).not.toBe(key);
    expect(teacherCacheKey({ ...parts, architecture: 'resnet18' })).not.toBe(key);
    // Settings that do not change the teacher (holdout size) do not change the key.
    expect(teacherCacheKey({ ...parts, dataset: { ...parts.dataset, holdout_samples: 64 } })).toBe(
      key,
    );
  });

  it('finds a complete entry only: metadata present and its weights file too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-teacher-cache-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const cache = new TeacherCache(dir);
    expect(await cache.lookup(parts)).toBeNull();
    const folder = cache.folder(parts);
    await mkdir(folder, { recursive: true });
    const file = join(folder, 'model.pt');
    await writeFile(
      join(folder, 'teacher.json'),
      JSON.stringify({ ...parts, file, rolloutId: 'demo-1' }),
    );
    expect(await cache.lookup(parts)).toBeNull(); // weights missing
    await writeFile(file, 'weights');
    expect(await cache.lookup(parts)).toMatchObject({ file, rolloutId: 'demo-1' });
  });

  it('the demo specs are valid and take the teacher they are given', () => {
    const checkpoint = {
      source: 'checkpoint',
      architecture: 'small_cnn',
      file: { path: '/cache/model.pt' },
    };
    const spec = QUICK_DEMO.build('demo-20250102-030405', checkpoint);
    expect(spec.source).toMatchObject({ kind: 'distill', teacher: checkpoint });
    expect(
      FULL_DEMO.build('demo-1', { source: 'train', ...FULL_DEMO.teacher }).dataset,
    ).toMatchObject({
      source: 'fashion_mnist',
      max_train_samples: 12_000,
    });
    expect(demoRolloutId(new Date('2025-01-02T03:04:05.678Z'))).toBe('demo-20250102-030405');
  });
});
