import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirTakenError, LOCK_FILE, lockDataDir } from './data-dir-lock.js';

let dir = '';
afterEach(() => rm(dir, { recursive: true, force: true }));

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

describe('one owner per stack data dir', () => {
  it('refuses a second owner while the first lives, naming it, and frees the dir on release', async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-lock-'));
    const first = await lockDataDir(dir);
    const taken = lockDataDir(dir);
    await expect(taken).rejects.toBeInstanceOf(DataDirTakenError);
    await expect(taken).rejects.toThrow(new RegExp(`pid ${process.pid} on`));
    await first.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    const second = await lockDataDir(dir);
    await second.release();
  });

  it('takes over a lock whose owner is gone (killed -9), and never removes another owner’s', async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-lock-'));
    const stale = { pid: await deadPid(), host: hostname(), startedAt: '2026-01-01T00:00:00Z' };
    await writeFile(join(dir, LOCK_FILE), JSON.stringify(stale));
    const lock = await lockDataDir(dir);
    const owner = JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as { pid: number };
    expect(owner.pid).toBe(process.pid);
    // Someone else's lock now (the file replaced): releasing ours leaves it.
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ ...stale, pid: 1 }));
    await lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(true);
  });
});
