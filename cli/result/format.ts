/** Number formatting shared by the result renderers (table, Markdown, SVG) and the progress view. */

/** `0.0712 ms`, `1.29 ms`, `12.4 ms`, `153 ms`: three significant digits. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms >= 100) return `${Math.round(ms)} ms`;
  return `${Number(ms.toPrecision(3))} ms`;
}

/** Decimal units, as file managers show them: `267 kB`, `4.91 MB`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-';
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1000;
    unit += 1;
  } while (value >= 1000 && unit < units.length - 1);
  return `${Number(value.toPrecision(3))} ${units[unit]}`;
}

/** 0.9311 → `93.11%`. */
export function formatPercent(share: number | null | undefined, digits = 2): string {
  if (share === null || share === undefined || !Number.isFinite(share)) return '-';
  return `${(share * 100).toFixed(digits)}%`;
}

/** 15.73 → `15.7×`; 1.04 → `1.04×`. */
export function formatRatio(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '-';
  return `${Number(ratio.toPrecision(3))}×`;
}

/** Seconds → `42s`, `5m 02s`, `1h 03m`. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return '-';
  }
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** 12000 → `12,000`. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * Columns padded to their widest cell, two spaces apart; the last column is not padded, so a
 * long explanation there does not widen the others.
 */
export function textTable(rows: string[][]): string {
  if (rows.length === 0) return '';
  const columns = Math.max(...rows.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, i) =>
    Math.max(...rows.map((r) => (i === columns - 1 ? 0 : [...(r[i] ?? '')].length))),
  );
  return rows
    .map((r) =>
      r
        .map((cell, i) =>
          i === columns - 1 ? cell : cell + ' '.repeat(widths[i]! - [...cell].length),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `[██████░░░░]` for a share from 0 to 1; plain ASCII (`[######....]`) when `ascii` is set. */
export function progressBar(share: number, width = 20, ascii = false): string {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(share) ? share : 0));
  const filled = Math.round(clamped * width);
  const [full, empty] = ascii ? ['#', '.'] : ['█', '░'];
  return `[${full.repeat(filled)}${empty.repeat(width - filled)}]`;
}

/**
 * A ratio (reference / this) in words: `15.7× faster`, `1.09× slower` (for ratios below 1),
 * `same size` when it rounds to 1.
 */
export function relative(ratio: number | null, above: string, below: string, same: string): string {
  if (ratio === null || !Number.isFinite(ratio) || ratio <= 0) return '-';
  const text = formatRatio(ratio >= 1 ? ratio : 1 / ratio);
  if (text === '1×') return same;
  return `${text} ${ratio >= 1 ? above : below}`;
}
