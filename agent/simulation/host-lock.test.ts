import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withHostLock } from './host-lock.js';

describe('withHostLock', () => {
  it('runs holders one at a time', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'lock-')), 'bench.lock');
    const events: string[] = [];
    const holder = (name: string) =>
      withHostLock(file, async () => {
        events.push(`${name} in`);
        await new Promise((r) => setTimeout(r, 30));
        events.push(`${name} out`);
      });
    await Promise.all([holder('a'), holder('b'), holder('c')]);
    for (let i = 0; i < events.length; i += 2) {
      expect(events[i + 1]).toBe(events[i]!.replace('in', 'out'));
    }
  });

  it('takes over a lock whose owner died', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'lock-')), 'bench.lock');
    await writeFile(file, '999999999');
    const result = await withHostLock(file, async () => readFile(file, 'utf8'));
    expect(result).toBe(String(process.pid));
  });

  it('gives up waiting when aborted', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'lock-')), 'bench.lock');
    await writeFile(file, String(process.pid));
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    await expect(withHostLock(file, () => Promise.resolve(1), abort.signal)).rejects.toThrow();
  });
});
