import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MissingPrerequisiteError } from '../../common/errors.js';

export const LOCK_FILE = 'stack.lock';

/** Another live process owns the data dir: nothing was touched. */
export class DataDirTakenError extends MissingPrerequisiteError {
  override name = 'DataDirTakenError';
}

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

export interface DataDirLock {
  readonly file: string;
  /** Removes the lock file, if it is still this process's. */
  release(): Promise<void>;
}

/**
 * Takes the data dir of an embedded stack for this process: `<dataDir>/stack.lock`, created
 * exclusively (O_EXCL), holding the owner's pid. Two stacks on one JetStream store or one SQLite
 * file corrupt each other, so a second one stops here, naming the owner, before it starts or
 * writes anything. A lock left by a process that is gone (killed with -9, a reboot) is taken
 * over; of two processes taking over the same stale lock, one wins (the file is created
 * exclusively again) and the other is told who.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const file = join(dataDir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(`${JSON.stringify(me)}\n`);
      await handle.close();
      return { file, release: () => releaseIfOwn(file, me) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await readOwner(file);
    if (owner && isAlive(owner)) {
      throw new DataDirTakenError(
        `${dataDir} is in use by another edgeforge stack (pid ${owner.pid} on ${owner.host}, ` +
          `since ${owner.startedAt}): stop it first, or give this one another data dir ` +
          '(EDGEFORGE_DATA_DIR); nothing was started or changed',
      );
    }
    // Its owner is gone: the lock is stale. Remove it (only if it still is that one) and retry.
    await unlinkIfSame(file, owner);
  }
  throw new DataDirTakenError(`${file} keeps being taken by other processes; try again`);
}

async function readOwner(file: string): Promise<LockOwner | undefined> {
  try {
    const owner = JSON.parse(await readFile(file, 'utf8')) as Partial<LockOwner>;
    return typeof owner.pid === 'number'
      ? { pid: owner.pid, host: String(owner.host), startedAt: String(owner.startedAt) }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the lock's owner still runs (on another host: assumed so, it cannot be checked). */
function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes a stale lock, unless another process replaced it meanwhile. An unreadable one may be
 * being written by its creator this instant: it counts as stale only if still unreadable 100 ms
 * later.
 */
async function unlinkIfSame(file: string, owner: LockOwner | undefined): Promise<void> {
  if (!owner) await new Promise((resolve) => setTimeout(resolve, 100));
  const now = await readOwner(file);
  const same = owner
    ? now?.pid === owner.pid && now.startedAt === owner.startedAt
    : now === undefined;
  if (!same) return;
  await unlink(file).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
}

async function releaseIfOwn(file: string, me: LockOwner): Promise<void> {
  const owner = await readOwner(file);
  if (owner?.pid === me.pid && owner.startedAt === me.startedAt) {
    await unlink(file).catch(() => {});
  }
}
