import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceUnreachableError } from '../../common/errors.js';
import { FINISHED_PHASES, type RolloutStatus } from '../../common/rollout.js';
import { formatDuration } from '../result/format.js';
import type { AdminClient } from '../admin-client.js';
import type { ActivityProbe } from './activity-progress.js';
import { progressEvents, progressLines } from './progress-view.js';

/** GetRollout, with the status JSON parsed, and why it may be stalled (see admin.proto). */
export async function fetchRollout(
  admin: AdminClient,
  rolloutId: string,
): Promise<{ status: RolloutStatus; warnings: string[] }> {
  const response = await admin.getRollout({ rolloutId });
  return { status: JSON.parse(response.statusJson) as RolloutStatus, warnings: response.warnings };
}

export async function fetchStatus(admin: AdminClient, rolloutId: string): Promise<RolloutStatus> {
  return (await fetchRollout(admin, rolloutId)).status;
}

/** The control plane's warnings as lines to show under the progress. */
export function warningLines(warnings: readonly string[]): string[] {
  return warnings.map((w) => `warning: ${w}`);
}

export interface WatchOptions {
  /** Where progress goes (stderr: stdout stays for the result). */
  out: Writable & { isTTY?: boolean };
  /** Redraw a block in place (a terminal) or print the lines that changed (a log). */
  live: boolean;
  intervalMs: number;
  /** Training and quantization progress from Temporal, when it can be reached. */
  probe?: ActivityProbe | null;
  /** How long the control plane may stay unreachable before watching gives up. */
  maxOutageMs?: number;
  /** Called with each status, e.g. to fetch the teacher as soon as it exists. */
  onStatus?: (status: RolloutStatus) => void | Promise<void>;
}

/**
 * Follows a rollout until it finishes, showing its progress, and returns the final status.
 * Brief outages of the control plane are waited out (the rollout runs in Temporal regardless).
 */
export async function watchRollout(
  admin: AdminClient,
  rolloutId: string,
  options: WatchOptions,
): Promise<RolloutStatus> {
  const { out } = options;
  const maxOutageMs = options.maxOutageMs ?? 120_000;
  const printed = new Map<string, string>();
  let drawnLines = 0;
  let outageSince: number | null = null;

  for (;;) {
    let status: RolloutStatus;
    let warnings: string[];
    try {
      ({ status, warnings } = await fetchRollout(admin, rolloutId));
      if (outageSince !== null) {
        out.write(
          `control plane reachable again after ${formatDuration((Date.now() - outageSince) / 1000)}\n`,
        );
        drawnLines = 0;
      }
      outageSince = null;
    } catch (err) {
      if (!(err instanceof ServiceUnreachableError)) throw err;
      outageSince ??= Date.now();
      if (Date.now() - outageSince > maxOutageMs) throw err;
      if (drawnLines === 0 || !options.live) {
        out.write(
          `${err.message}\n  still trying (the rollout itself keeps running in Temporal)\n`,
        );
      }
      drawnLines = 0;
      await sleep(options.intervalMs);
      continue;
    }
    await options.onStatus?.(status);
    const finished = FINISHED_PHASES.includes(status.phase);
    const activities = finished || !options.probe ? [] : await options.probe.read(rolloutId);
    const end = status.finishedAt ? Date.parse(status.finishedAt) : Date.now();
    const elapsedSeconds = (end - Date.parse(status.startedAt)) / 1000;

    if (options.live) {
      const lines = [
        ...progressLines(status, activities, { elapsedSeconds, ascii: false }),
        ...warningLines(warnings),
      ];
      // Up to the block drawn last time, clear to the end of the screen, draw again.
      const up = drawnLines ? `\x1b[${drawnLines}A\x1b[0J` : '';
      out.write(`${up}${lines.join('\n')}\n`);
      drawnLines = lines.length;
    } else {
      const stamp = `[${formatDuration(elapsedSeconds).padStart(7)}]`;
      for (const [key, line] of progressEvents(status, activities, true)) {
        if (printed.get(key) === line) continue;
        printed.set(key, line);
        out.write(`${stamp} ${key.startsWith('phase') ? '' : '  '}${line}\n`);
      }
      // Each once, while it lasts: printed again only if it comes back after clearing.
      for (const key of printed.keys()) {
        if (key.startsWith('warning:') && !warnings.includes(key.slice(8))) printed.delete(key);
      }
      for (const warning of warnings) {
        if (printed.has(`warning:${warning}`)) continue;
        printed.set(`warning:${warning}`, warning);
        out.write(`${stamp} ${warningLines([warning])[0]}\n`);
      }
    }
    if (finished) return status;
    await sleep(options.intervalMs);
  }
}
