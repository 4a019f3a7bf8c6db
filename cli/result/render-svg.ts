import { formatMs, formatPercent } from './format.js';
import { TEACHER_REFERENCE, type RolloutResult } from './rollout-result.js';

/** One dot on the chart. */
export interface ChartPoint {
  hardwareClass: string;
  variant: string;
  p95Ms: number;
  accuracy: number;
  /** Accuracy from the gpu worker, because the devices measured none (no labelled holdout). */
  central: boolean;
  won: boolean;
  reference: boolean;
}

/** Tableau 10: distinct for the usual forms of colour blindness, readable on white. */
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

const WIDTH = 860;
const HEIGHT = 500;
const PLOT = { left: 72, top: 48, right: 600, bottom: 430 };

/** Every variant measured on a device, on every class: the chart's data. */
export function chartPoints(result: RolloutResult): ChartPoint[] {
  const points: ChartPoint[] = [];
  for (const c of result.classes) {
    for (const v of c.variants) {
      if (v.p95Ms === null || !(v.p95Ms > 0)) continue;
      const accuracy = v.accuracy ?? v.centralAccuracy;
      if (accuracy === null) continue;
      points.push({
        hardwareClass: c.hardwareClass,
        variant: v.variant,
        p95Ms: v.p95Ms,
        accuracy,
        central: v.accuracy === null,
        won: v.verdict === 'won',
        reference: v.verdict === 'reference' || v.variant === TEACHER_REFERENCE,
      });
    }
  }
  return points;
}

/** Tick values for a log axis over [lo, hi]: 1-2-5 per decade, or every integer when sparse. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks = (steps: number[]) => {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of steps) {
        const v = Number((m * 10 ** e).toPrecision(6));
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
      }
    }
    return out;
  };
  const coarse = ticks([1, 2, 5]);
  return coarse.length >= 3 ? coarse : ticks([1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

/** A "nice" step (1, 2 or 5 × 10^k) giving about `count` ticks over [lo, hi]. */
export function linearTicks(lo: number, hi: number, count = 6): number[] {
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(10)));
  }
  return out;
}

function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

const fixed = (n: number) => Number(n.toFixed(2));

interface Box {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** Where a winner's name may go, relative to its point: dx, dy (baseline), text-anchor. */
const LABEL_SPOTS: [number, number, 'start' | 'end' | 'middle'][] = [
  [13, -8, 'start'],
  [13, 18, 'start'],
  [-13, -8, 'end'],
  [-13, 18, 'end'],
  [0, -16, 'middle'],
  [0, 28, 'middle'],
];

function overlapArea(a: Box, b: Box): number {
  const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
  const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
  return w > 0 && h > 0 ? w * h : 0;
}

/**
 * Accuracy against on-device p95 latency (log scale) for every variant measured on every class:
 * one colour per class, the chosen variant ringed and named, the fp32 teacher as a square.
 * Self-contained SVG, no script, no external font or stylesheet.
 */
export function renderResultSvg(result: RolloutResult): string {
  const points = chartPoints(result);
  const classes = result.classes.map((c) => c.hardwareClass);
  const colour = (cls: string) => PALETTE[Math.max(0, classes.indexOf(cls)) % PALETTE.length]!;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(`Rollout ${result.rolloutId}: accuracy against on-device p95 latency`)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${PLOT.left}" y="24" font-size="15" font-weight="bold">${escapeXml(
      `Rollout ${result.rolloutId}: accuracy vs on-device p95 latency`,
    )}</text>`,
  ];
  const plotW = PLOT.right - PLOT.left;
  const plotH = PLOT.bottom - PLOT.top;
  out.push(
    `<rect x="${PLOT.left}" y="${PLOT.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444444"/>`,
  );

  if (points.length === 0) {
    out.push(
      `<text x="${PLOT.left + plotW / 2}" y="${PLOT.top + plotH / 2}" text-anchor="middle" fill="#666666">no variant was measured on a device</text>`,
      '</svg>',
    );
    return `${out.join('\n')}\n`;
  }

  // x: log10 of p95, padded by a fifth of a decade (or more when all points sit together).
  const lats = points.map((p) => p.p95Ms);
  let [xLo, xHi] = [Math.min(...lats), Math.max(...lats)];
  const span = Math.log10(xHi / xLo);
  const pad = Math.max(0.1, (0.6 - span) / 2, span * 0.08);
  xLo = xLo / 10 ** pad;
  xHi = xHi * 10 ** pad;
  const x = (ms: number) => PLOT.left + (Math.log10(ms / xLo) / Math.log10(xHi / xLo)) * plotW;

  // y: accuracy, padded, within [0, 1].
  const accs = points.map((p) => p.accuracy);
  let [yLo, yHi] = [Math.min(...accs), Math.max(...accs)];
  const yPad = Math.max(0.005, (yHi - yLo) * 0.12);
  yLo = Math.max(0, yLo - yPad);
  yHi = Math.min(1, yHi + yPad);
  if (yHi - yLo < 0.01) [yLo, yHi] = [Math.max(0, yHi - 0.01), Math.min(1, yLo + 0.01)];
  const y = (acc: number) => PLOT.bottom - ((acc - yLo) / (yHi - yLo)) * plotH;

  // Grid and ticks.
  for (const t of logTicks(xLo, xHi)) {
    const px = fixed(x(t));
    out.push(
      `<line x1="${px}" y1="${PLOT.top}" x2="${px}" y2="${PLOT.bottom}" stroke="#e4e4e4"/>`,
      `<text x="${px}" y="${PLOT.bottom + 16}" text-anchor="middle" fill="#333333">${escapeXml(formatMs(t))}</text>`,
    );
  }
  const yTicks = linearTicks(yLo, yHi);
  const yDigits = yTicks.length > 1 && yTicks[1]! - yTicks[0]! < 0.001 ? 2 : 1;
  for (const t of yTicks) {
    const py = fixed(y(t));
    out.push(
      `<line x1="${PLOT.left}" y1="${py}" x2="${PLOT.right}" y2="${py}" stroke="#e4e4e4"/>`,
      `<text x="${PLOT.left - 6}" y="${fixed(py + 4)}" text-anchor="end" fill="#333333">${formatPercent(t, yDigits)}</text>`,
    );
  }
  out.push(
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 40}" text-anchor="middle">on-device p95 latency, batch 1 (log scale)</text>`,
    `<text transform="translate(18 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)" text-anchor="middle">accuracy</text>`,
  );

  // Points: the ordinary ones first, so that winners and the teacher are drawn on top.
  const ordered = [...points].sort((a, b) => Number(a.won) - Number(b.won));
  for (const p of ordered) {
    const [px, py] = [fixed(x(p.p95Ms)), fixed(y(p.accuracy))];
    const c = colour(p.hardwareClass);
    const fill = p.central ? '#ffffff' : c;
    const tip = escapeXml(
      `${p.hardwareClass} · ${p.variant}${p.won ? ' (chosen)' : ''}: p95 ${formatMs(p.p95Ms)}, ` +
        `accuracy ${formatPercent(p.accuracy)}${p.central ? ' (central, no on-device holdout)' : ''}`,
    );
    const shape = p.reference
      ? `<rect x="${fixed(px - 5)}" y="${fixed(py - 5)}" width="10" height="10" fill="${fill}" stroke="${c}" stroke-width="2">`
      : `<circle cx="${px}" cy="${py}" r="${p.won ? 6 : 4.5}" fill="${fill}" stroke="${c}" stroke-width="2">`;
    out.push(`<g>${shape}<title>${tip}</title>${p.reference ? '</rect>' : '</circle>'}`);
    if (p.won) {
      out.push(
        `<circle cx="${px}" cy="${py}" r="10" fill="none" stroke="#222222" stroke-width="1.5"/>`,
      );
    }
    out.push('</g>');
  }

  // Winners' names, placed where they overlap no other name and stay inside the plot.
  const placed: Box[] = [];
  for (const p of points.filter((q) => q.won)) {
    const [px, py] = [x(p.p95Ms), y(p.accuracy)];
    const width = p.variant.length * 7;
    const options = LABEL_SPOTS.map(([dx, dy, anchor]) => {
      const left =
        anchor === 'start' ? px + dx : anchor === 'end' ? px + dx - width : px - width / 2;
      const box: Box = { left, right: left + width, top: py + dy - 11, bottom: py + dy + 3 };
      const outside =
        box.left < PLOT.left + 2 ||
        box.right > PLOT.right - 2 ||
        box.top < PLOT.top + 2 ||
        box.bottom > PLOT.bottom - 2;
      const overlap = placed.reduce((sum, b) => sum + overlapArea(box, b), 0);
      return { dx, dy, anchor, box, cost: overlap + (outside ? 1e6 : 0) };
    });
    const best = options.reduce((a, b) => (b.cost < a.cost ? b : a));
    placed.push(best.box);
    out.push(
      `<text x="${fixed(px + best.dx)}" y="${fixed(py + best.dy)}" text-anchor="${best.anchor}" fill="${colour(p.hardwareClass)}" font-weight="bold" stroke="#ffffff" stroke-width="3" paint-order="stroke">${escapeXml(p.variant)}</text>`,
    );
  }

  // Legend: classes, then the marker meanings.
  let ly = PLOT.top + 4;
  const lx = PLOT.right + 24;
  out.push(`<text x="${lx}" y="${ly}" font-weight="bold">hardware class</text>`);
  for (const cls of classes) {
    ly += 20;
    out.push(
      `<circle cx="${lx + 6}" cy="${ly - 4}" r="5" fill="${colour(cls)}"/>`,
      `<text x="${lx + 18}" y="${ly}">${escapeXml(cls)}</text>`,
    );
  }
  ly += 32;
  out.push(
    `<circle cx="${lx + 6}" cy="${ly - 4}" r="5" fill="#888888"/><circle cx="${lx + 6}" cy="${ly - 4}" r="9" fill="none" stroke="#222222" stroke-width="1.5"/>`,
    `<text x="${lx + 22}" y="${ly}">chosen variant</text>`,
  );
  ly += 22;
  out.push(
    `<rect x="${lx + 1}" y="${ly - 9}" width="10" height="10" fill="#888888"/>`,
    `<text x="${lx + 22}" y="${ly}">fp32 teacher (reference)</text>`,
  );
  if (points.some((p) => p.central)) {
    ly += 22;
    out.push(
      `<circle cx="${lx + 6}" cy="${ly - 4}" r="4.5" fill="#ffffff" stroke="#888888" stroke-width="2"/>`,
      `<text x="${lx + 22}" y="${ly}">accuracy from the gpu worker</text>`,
    );
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
