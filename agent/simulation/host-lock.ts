import { open, readFile, unlink } from 'node:fs/promises';

const RETRY_MS = 50;

/**
 * Runs `work` while holding an exclusive lock file shared by the processes of one host: the lock
 * is a file created with O_EXCL holding the owner's pid. A lock whose owner is gone (killed
 * mid-benchmark) is taken over. For simulated devices only; a real device owns its CPU.
 */
export async function withHostLock<T>(
  file: string,
  work: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  for (;;) {
    signal?.throwIfAborted();
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!(await ownerAlive(file))) await unlink(file).catch(() => {});
      else await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
  try {
    return await work();
  } finally {
    await unlink(file).catch(() => {});
  }
}

async function ownerAlive(file: string): Promise<boolean> {
  const pid = Number(await readFile(file, 'utf8').catch(() => ''));
  // An empty file is a lock being written right now: count it as held.
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
