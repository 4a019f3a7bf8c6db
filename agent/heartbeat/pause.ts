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

/** `promise`, or a rejection with the signal's reason as soon as the signal aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
