import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CrashLoopGuard, MAX_BRING_UP_ATTEMPTS } from './crash-loop-guard.js';

describe('CrashLoopGuard', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-guard-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('counts unfinished bring-ups across restarts until the model is given up', async () => {
    for (let attempt = 1; attempt <= MAX_BRING_UP_ATTEMPTS; attempt++) {
      // Each "restart" is a fresh guard on the same data dir; nothing settles: a crash.
      const guard = new CrashLoopGuard(dir);
      expect(await guard.exhausted('a')).toBe(false);
      expect(await guard.begin('a')).toBe(attempt);
    }
    expect(await new CrashLoopGuard(dir).exhausted('a')).toBe(true);
  });

  it('forgets a model once a bring-up finishes, and keeps models apart', async () => {
    const guard = new CrashLoopGuard(dir);
    await guard.begin('a');
    await guard.begin('a');
    await guard.begin('b');
    await guard.settle('a');
    expect(await guard.attempts('a')).toBe(0);
    expect(await guard.attempts('b')).toBe(1);
    await guard.settle('never-begun');
  });

  it('starts from zero when the file is unreadable rather than refusing to serve', async () => {
    const guard = new CrashLoopGuard(dir);
    await writeFile(guard.file, '{"a": "three"');
    expect(await guard.attempts('a')).toBe(0);
    expect(await guard.begin('a')).toBe(1);
  });
});
