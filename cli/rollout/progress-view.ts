/**
 * Live progress of a rollout, as lines: the phase, the gpu activity's training or quantization
 * progress, and per hardware class its phase, devices done of total and waves. Pure: the watcher
 * redraws these lines on a terminal, or prints the ones that changed to a log.
 */
import type { ClassStatus, RolloutStatus } from '../../common/rollout.js';
import { formatDuration, formatPercent, progressBar } from '../result/format.js';
import type { ActivityProgress } from './activity-progress.js';

export interface ProgressOptions {
  /** Seconds since the rollout started. */
  elapsedSeconds: number;
  /** ASCII bars for logs and dumb terminals. */
  ascii: boolean;
}

const words = (s: string) => s.replaceAll('_', ' ');

/** A training or quantization line from a gpu activity's heartbeat; null when it says nothing. */
export function activityLine(a: ActivityProgress, ascii: boolean): string | null {
  const retry =
    a.attempt > 1
      ? ` (attempt ${a.attempt}${a.lastFailure ? `, after: ${a.lastFailure}` : ''})`
      : '';
  if (a.epoch !== undefined && a.epochs) {
    const within = a.batches ? (a.batch ?? 0) / a.batches : 0;
    const share = (a.epoch - 1 + within) / a.epochs;
    const what =
      a.phase === 'teacher' ? 'teacher training' : a.phase === 'distill' ? 'distilling' : a.phase;
    const stats = [
      a.loss !== undefined ? `loss ${a.loss.toFixed(3)}` : '',
      a.accuracy !== undefined ? `train acc ${formatPercent(a.accuracy, 1)}` : '',
      a.validation_accuracy != null ? `val acc ${formatPercent(a.validation_accuracy, 1)}` : '',
    ].filter(Boolean);
    return (
      `${what} epoch ${a.epoch}/${a.epochs} ${progressBar(share, 20, ascii)} ${Math.round(share * 100)}%` +
      (stats.length ? `  ${stats.join('  ')}` : '') +
      retry
    );
  }
  if (a.format) return `building ${a.format}${a.step ? `: ${a.step}` : ''}${retry}`;
  if (a.phase && a.phase !== 'starting') return `${words(a.activity)}: ${a.phase}${retry}`;
  return retry ? `${words(a.activity)}${retry}` : null;
}

function wavesText(c: ClassStatus): string {
  if (c.waves.length === 0) return '';
  const state = (s: string) =>
    ({ passed: 'ok', rolled_back: 'rolled back', pending: '-' })[s] ?? words(s);
  return (
    'waves ' +
    c.waves.map((w) => `${w.index === 0 ? 'canary' : w.index}:${state(w.state)}`).join(' ')
  );
}

/** One line per class: phase, devices done/total with a bar, waves. */
export function classLine(c: ClassStatus, ascii: boolean, width = 0): string {
  const share = c.devicesTotal ? c.devicesDone / c.devicesTotal : 0;
  const chosen = c.chosen ? `  chose ${c.chosen.variant}` : '';
  return (
    `${c.hardwareClass.padEnd(width)}  ${words(c.phase).padEnd(12)}  ` +
    `devices ${c.devicesDone}/${c.devicesTotal} ${progressBar(share, 10, ascii)}` +
    (c.waves.length ? `  ${wavesText(c)}` : '') +
    chosen
  );
}

/** The whole progress block: a headline, the gpu activity, one line per class. */
export function progressLines(
  status: RolloutStatus,
  activities: ActivityProgress[],
  options: ProgressOptions,
): string[] {
  const lines = [
    `rollout ${status.rolloutId}  ${words(status.phase)}  ${formatDuration(options.elapsedSeconds)}` +
      (status.detail ? `  ${status.detail}` : ''),
  ];
  for (const a of activities) {
    const line = activityLine(a, options.ascii);
    if (line) lines.push(`  ${line}`);
  }
  const width = Math.max(0, ...status.classes.map((c) => c.hardwareClass.length));
  for (const c of status.classes) lines.push(`  ${classLine(c, options.ascii, width)}`);
  return lines;
}

/**
 * Log-friendly events: a key per thing that can change and the line to print when it does.
 * The watcher prints a line whenever its key's text differs from what it printed last.
 */
export function progressEvents(
  status: RolloutStatus,
  activities: ActivityProgress[],
  ascii: boolean,
): Map<string, string> {
  const width = Math.max(0, ...status.classes.map((c) => c.hardwareClass.length));
  const events = new Map<string, string>();
  events.set('phase', `${words(status.phase)}${status.detail ? `: ${status.detail}` : ''}`);
  for (const a of activities) {
    const line = activityLine(a, ascii);
    // Temporal gets a heartbeat at most about once a minute: each change is worth a line.
    if (line) events.set(`activity:${a.activity}`, line);
  }
  for (const c of status.classes) {
    events.set(`class:${c.hardwareClass}`, classLine(c, ascii, width));
  }
  return events;
}
