import { Context } from '@temporalio/activity';
import type { KV } from '@nats-io/kv';

/**
 * Helpers for activities that touch many KV entries: bounded concurrency towards NATS, and
 * heartbeats that carry a checkpoint, so a retried activity resumes where the last one stopped.
 */

/** KV requests one activity keeps in flight at most. */
export const KV_CONCURRENCY = 32;

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The running activity's context; undefined when called outside one (unit tests, the bench). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Heartbeats `details` when running as an activity; a no-op otherwise. */
export function heartbeat(details?: unknown): void {
  activityContext()?.heartbeat(details);
}

/** The details of the last heartbeat of an earlier attempt of this activity, if any. */
export function checkpoint<T>(): T | undefined {
  return activityContext()?.info.heartbeatDetails as T | undefined;
}

/** Aborts when the activity is cancelled (a never-aborting signal outside an activity). */
export function cancellation(): AbortSignal {
  return activityContext()?.cancellationSignal ?? new AbortController().signal;
}

/**
 * Every current value of a bucket, streamed through one ordered consumer (not one request per
 * key), heartbeating as it goes. `prefix` limits it to keys starting there (`track.x.`).
 */
export async function scanBucket<T>(
  kv: KV,
  visit: (key: string, value: T) => void,
  prefix?: string,
): Promise<number> {
  if ((await kv.status()).values === 0) return 0;
  const watch = await kv.watch({
    key: prefix ? `${prefix}>` : '>',
    ignoreDeletes: true,
  });
  let seen = 0;
  // A watch on keys that have no value never delivers anything: give up after a quiet second.
  let quiet: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(quiet);
    quiet = setTimeout(() => watch.stop(), 1_000);
  };
  arm();
  try {
    for await (const entry of watch) {
      arm();
      if (entry.operation === 'PUT') visit(entry.key, entry.json<T>());
      seen += 1;
      if (seen % 1_000 === 0) heartbeat({ scanned: seen });
      if (entry.delta === 0) break;
    }
  } finally {
    clearTimeout(quiet);
    watch.stop();
  }
  return seen;
}
