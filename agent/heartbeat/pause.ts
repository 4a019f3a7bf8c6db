import { setTimeout } from 'node:timers/promises';

/** Waits `ms`; resolves false at once when the signal aborts, so stop() never waits on a timer. */
export async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  if (ms <= 0) return true;
  try {
    await setTimeout(ms, undefined, { signal });
    return true;
  } catch {
    // The only rejection of a timers/promises timeout is the abort.
    return false;
  }
}
