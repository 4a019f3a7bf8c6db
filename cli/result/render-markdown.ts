import type { ModelSummary } from '../../common/rollout.js';
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatMs,
  formatPercent,
  relative,
} from './format.js';
import { verdictLabel, type RolloutResult } from './rollout-result.js';

/** `|` and line breaks would break a table cell. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll(/\r?\n/g, ' ');
}

function row(cells: string[]): string {
  return `| ${cells.map(cell).join(' | ')} |`;
}

function table(header: string[], rows: string[][]): string[] {
  return [row(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(row)];
}

/**
 * The result as a Markdown report; `chartFile` (e.g. `result.svg`) embeds the accuracy/latency
 * chart written beside it.
 */
export function renderResultMarkdown(result: RolloutResult, chartFile?: string): string {
  const status = result.finishedAt
    ? `${result.phase.replaceAll('_', ' ')} in ${formatDuration(result.durationSeconds)}`
    : `${result.phase.replaceAll('_', ' ')} (still running: ${result.detail})`;
  const model = (label: string, m: ModelSummary | null): string[][] =>
    m
      ? [
          [
            label,
            m.architecture,
            formatBytes(m.sizeBytes),
            m.parameters !== null ? formatCount(m.parameters) : '-',
            formatPercent(m.testAccuracy),
          ],
        ]
      : [];
  const out: string[] = [
    `# Rollout ${result.rolloutId}`,
    '',
    `**${status}**. Data: ${result.dataset.name}` +
      (result.dataset.maxTrainSamples !== null
        ? ` (trained on ${formatCount(result.dataset.maxTrainSamples)} samples)`
        : '') +
      `. Accuracy budget: ${(result.accuracyBudget * 100).toFixed(1)} points below the fp32 student; ` +
      (result.latencySloMs !== null
        ? `p95 SLO ${formatMs(result.latencySloMs)}.`
        : 'no latency SLO.'),
    '',
  ];
  if (result.teacher || result.student) {
    out.push(
      ...table(
        ['model', 'architecture', 'size', 'parameters', 'test accuracy'],
        [...model('teacher (fp32)', result.teacher), ...model('student (fp32)', result.student)],
      ),
      '',
    );
  }
  if (result.classes.length > 0) {
    out.push(
      '## Chosen variant per hardware class',
      '',
      ...table(
        [
          'hardware class',
          'devices',
          'chosen',
          'size',
          'p50',
          'p95',
          'p99',
          'accuracy on device',
          'speedup vs fp32 teacher',
          'speedup vs fp32 student',
          'size vs fp32 teacher',
        ],
        result.classes.map((c) => {
          const k = c.chosen;
          const devices = `${c.devicesDone}/${c.devicesTotal}`;
          if (!k)
            return [
              `\`${c.hardwareClass}\``,
              devices,
              `none (${c.phase})`,
              ...Array<string>(8).fill('-'),
            ];
          return [
            `\`${c.hardwareClass}\``,
            devices,
            `**${k.variant}**`,
            formatBytes(k.sizeBytes),
            formatMs(k.p50Ms),
            formatMs(k.p95Ms),
            formatMs(k.p99Ms),
            formatPercent(k.accuracy),
            relative(k.speedupVsTeacher, 'faster', 'slower', 'as fast'),
            relative(k.speedupVsFp32, 'faster', 'slower', 'as fast'),
            relative(k.sizeRatioVsTeacher, 'smaller', 'larger', 'same size'),
          ];
        }),
      ),
      '',
    );
  }
  if (chartFile) {
    out.push(`![Accuracy against on-device p95 latency](${chartFile})`, '');
  }
  for (const c of result.classes) {
    out.push(`## \`${c.hardwareClass}\`: ${c.phase.replaceAll('_', ' ')}`, '');
    out.push(
      c.chosen ? `**${c.chosen.variant}**: ${c.chosen.why}` : c.reason || '(no reason given)',
    );
    out.push('');
    if (c.variants.length > 0) {
      out.push(
        ...table(
          [
            'variant',
            'verdict',
            'size',
            'p50',
            'p95',
            'p99',
            'accuracy on device',
            'central accuracy',
            'why',
          ],
          c.variants.map((v) => [
            v.verdict === 'won' ? `**${v.variant}**` : v.variant,
            verdictLabel(v.verdict),
            formatBytes(v.sizeBytes),
            formatMs(v.p50Ms),
            formatMs(v.p95Ms),
            formatMs(v.p99Ms),
            formatPercent(v.accuracy),
            formatPercent(v.centralAccuracy),
            v.verdict === 'won' ? 'chosen (above)' : v.why,
          ]),
        ),
        '',
      );
    }
    if (c.waves.length > 0) {
      out.push(
        'Waves: ' +
          c.waves
            .map(
              (w) =>
                `${w.index === 0 ? 'canaries' : `wave ${w.index}`} ${w.state.replaceAll('_', ' ')} ` +
                `(${w.activated}/${w.devices} activated${w.failed ? `, ${w.failed} failed` : ''})`,
            )
            .join(' → '),
        '',
      );
    }
  }
  if (result.skippedClasses.length > 0) {
    out.push('## Skipped classes', '');
    for (const s of result.skippedClasses) out.push(`- \`${s.hardwareClass}\`: ${s.reason}`);
    out.push('');
  }
  if (result.error) out.push(`**Error:** ${result.error}`, '');
  return `${out.join('\n').trimEnd()}\n`;
}
