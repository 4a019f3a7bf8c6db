import type { ModelSummary } from '../../common/rollout.js';
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatMs,
  formatPercent,
  relative,
  textTable,
} from './format.js';
import { verdictLabel, type ClassResult, type RolloutResult } from './rollout-result.js';

/** The result as a terminal table: a headline, one row per class, then each class's variants. */
export function renderResultTable(result: RolloutResult): string {
  const lines = [headline(result), ...modelLines(result), ''];
  if (result.classes.length > 0) {
    lines.push(
      textTable([
        [
          'HARDWARE CLASS',
          'DEVICES',
          'CHOSEN',
          'SIZE',
          'P50',
          'P95',
          'P99',
          'ACCURACY',
          'SPEEDUP vs TEACHER',
          'SIZE vs TEACHER',
        ],
        ...result.classes.map(classRow),
      ]),
      '',
    );
  }
  for (const c of result.classes) lines.push(...classDetail(c), '');
  for (const s of result.skippedClasses) lines.push(`skipped ${s.hardwareClass}: ${s.reason}`);
  if (result.error) lines.push(`error: ${result.error}`);
  return `${lines.join('\n').trimEnd()}\n`;
}

export function headline(result: RolloutResult): string {
  const took = result.finishedAt
    ? ` in ${formatDuration(result.durationSeconds)}`
    : ` (running for ${formatDuration(result.durationSeconds)}: ${result.detail})`;
  return `rollout ${result.rolloutId}: ${result.phase.replaceAll('_', ' ')}${took}`;
}

function modelLines(result: RolloutResult): string[] {
  const data =
    result.dataset.maxTrainSamples !== null
      ? `${result.dataset.name}, trained on ${formatCount(result.dataset.maxTrainSamples)} samples`
      : result.dataset.name;
  const gates =
    `accuracy budget ${(result.accuracyBudget * 100).toFixed(1)} points below the fp32 student` +
    (result.latencySloMs !== null
      ? `, p95 SLO ${formatMs(result.latencySloMs)}`
      : ', no latency SLO');
  const model = (label: string, m: ModelSummary | null) =>
    m
      ? [
          `  ${label.padEnd(8)} ${m.architecture}, ${formatBytes(m.sizeBytes)}` +
            `${m.parameters !== null ? `, ${formatCount(m.parameters)} parameters` : ''}` +
            `, test accuracy ${formatPercent(m.testAccuracy)}`,
        ]
      : [];
  return [
    `  data     ${data}`,
    ...model('teacher', result.teacher),
    ...model('student', result.student),
    `  gates    ${gates}`,
  ];
}

function classRow(c: ClassResult): string[] {
  const devices = `${c.devicesDone}/${c.devicesTotal}`;
  const k = c.chosen;
  if (!k) return [c.hardwareClass, devices, `- (${c.phase.replaceAll('_', ' ')})`];
  return [
    c.hardwareClass,
    devices,
    k.variant,
    formatBytes(k.sizeBytes),
    formatMs(k.p50Ms),
    formatMs(k.p95Ms),
    formatMs(k.p99Ms),
    formatPercent(k.accuracy),
    relative(k.speedupVsTeacher, 'faster', 'slower', 'as fast'),
    relative(k.sizeRatioVsTeacher, 'smaller', 'larger', 'same size'),
  ];
}

function classDetail(c: ClassResult): string[] {
  const head = c.chosen
    ? `${c.hardwareClass} → ${c.chosen.variant}: ${c.chosen.why}`
    : `${c.hardwareClass} → nothing (${c.phase.replaceAll('_', ' ')})${c.reason ? `: ${c.reason}` : ''}`;
  const extra =
    c.chosen && c.chosen.variant !== 'fp32' && c.chosen.speedupVsFp32 !== null
      ? [
          `  ${relative(c.chosen.speedupVsFp32, 'faster', 'slower', 'as fast')} than the fp32 student on these devices`,
        ]
      : [];
  if (c.variants.length === 0) return [head, ...extra];
  const rows = c.variants.map((v) => [
    `  ${v.verdict === 'won' ? '*' : ' '} ${v.variant}`,
    verdictLabel(v.verdict),
    formatBytes(v.sizeBytes),
    formatMs(v.p95Ms),
    formatPercent(v.accuracy ?? null),
    v.verdict === 'won' ? 'see above' : v.why,
  ]);
  return [
    head,
    ...extra,
    textTable([['    VARIANT', 'VERDICT', 'SIZE', 'P95', 'ACCURACY', 'WHY'], ...rows]),
  ];
}
