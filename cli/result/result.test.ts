import { describe, expect, it } from 'vitest';
import { parseRolloutSpec } from '../../common/rollout-spec.js';
import type { CandidateOutcome, ClassStatus, RolloutStatus } from '../../common/rollout.js';
import {
  chartPoints,
  formatBytes,
  formatDuration,
  formatMs,
  formatRatio,
  linearTicks,
  logTicks,
  progressBar,
  relative,
  renderResultMarkdown,
  renderResultSvg,
  renderResultTable,
  rolloutResult,
  textTable,
} from './index.js';

const onDevice = (p95Ms: number, accuracy: number | null, devices = 1) => ({
  devices,
  p50Ms: p95Ms * 0.8,
  p95Ms,
  p99Ms: p95Ms * 1.2,
  cv: 0.05,
  p95NoiseMs: 0,
  roundP95Ms: [p95Ms],
  accuracy,
  agreement: accuracy,
  errors: {},
});

const candidate = (
  variant: string,
  verdict: CandidateOutcome['verdict'],
  p95: number | null,
  accuracy: number | null,
  reason: string,
  sizeBytes: number | null = 250_000,
): CandidateOutcome => ({
  variant,
  planReasons: [`${variant} because the planner said so`],
  sizeBytes,
  centralAccuracy: accuracy === null ? 0.9 : accuracy + 0.001,
  onDevice: p95 === null ? null : onDevice(p95, accuracy),
  verdict,
  reason,
});

const vnni: ClassStatus = {
  hardwareClass: 'x86_64-vnni-nofp16-cpu-32g',
  phase: 'succeeded',
  devicesTotal: 2,
  devicesDone: 2,
  devicesFailed: 0,
  unresponsive: [],
  unresponsiveCount: 0,
  canarySeed: 1,
  canaries: ['d-1'],
  candidates: [
    candidate(
      'fp32',
      'slower',
      0.115,
      0.93,
      'p95 0.12 ms, slower than int8_static_minmax (0.08 ms)',
      990_000,
    ),
    candidate('int8_static_minmax', 'won', 0.082, 0.9298, 'lowest on-device p95', 265_100),
    candidate(
      'int8_dynamic',
      'over_accuracy_budget_on_device',
      0.2,
      0.85,
      'holdout accuracy 85.0 points is 8.0 points below',
    ),
    candidate(
      'int4_weight_only',
      'rejected_centrally',
      null,
      null,
      'accuracy drop 3.1 points over the budget',
    ),
    candidate(
      'teacher_fp32',
      'reference',
      1.285,
      0.9337,
      'the fp32 teacher, measured for speedups',
      4_910_000,
    ),
  ],
  chosen: {
    variant: 'int8_static_minmax',
    reason: 'lowest on-device p95 of the qualifying variants: 0.08 ms against 0.12 ms for fp32',
    version: 1,
    sha256: 'ab'.repeat(32),
    sizeBytes: 265_100,
    p50Ms: 0.0656,
    p95Ms: 0.082,
    p99Ms: 0.0984,
    accuracy: 0.9298,
    speedupVsTeacher: 1.285 / 0.082,
    speedupVsFp32: 0.115 / 0.082,
    sizeRatioVsTeacher: 4_910_000 / 265_100,
  },
  waves: [
    {
      index: 0,
      cohorts: null,
      devices: 1,
      state: 'passed',
      activated: 1,
      failed: 0,
      unresponsive: 0,
      servingP95Ms: null,
    },
    {
      index: 1,
      cohorts: null,
      devices: 1,
      state: 'passed',
      activated: 1,
      failed: 0,
      unresponsive: 0,
      servingP95Ms: null,
    },
  ],
  reason: 'int8_static_minmax on 2 of 2 devices',
  updatedAt: '2025-01-02T03:09:00.000Z',
};

const pi: ClassStatus = {
  hardwareClass: 'aarch64-neon-nofp16-cpu-4g',
  phase: 'failed',
  devicesTotal: 1,
  devicesDone: 0,
  devicesFailed: 0,
  unresponsive: ['d-3'],
  unresponsiveCount: 0,
  canarySeed: 1,
  canaries: ['d-3'],
  candidates: [
    candidate('fp32', 'failed_on_device', null, null, 'no canary reported a benchmark for it'),
  ],
  chosen: null,
  waves: [],
  reason: 'no device was changed: no canary reported within the timeout',
  updatedAt: '2025-01-02T03:09:00.000Z',
};

function sampleStatus(overrides: Partial<RolloutStatus> = {}): RolloutStatus {
  const spec = parseRolloutSpec({
    rolloutId: 'demo-1',
    dataset: { source: 'fashion_mnist', max_train_samples: 12000 },
    source: { kind: 'distill', student: { architecture: 'small_cnn' } },
  });
  return {
    rolloutId: 'demo-1',
    modelId: 'demo-1-small_cnn',
    phase: 'partially_succeeded',
    detail: 'x86_64-vnni-nofp16-cpu-32g: succeeded (int8_static_minmax); aarch64: failed',
    startedAt: '2025-01-02T03:04:05.000Z',
    updatedAt: '2025-01-02T03:09:07.000Z',
    finishedAt: '2025-01-02T03:09:07.000Z',
    spec,
    teacher: {
      architecture: 'resnet10_w32',
      sizeBytes: 4_910_000,
      parameters: 1_230_000,
      testAccuracy: 0.9337,
    },
    student: {
      architecture: 'small_cnn',
      sizeBytes: 990_000,
      parameters: 247_000,
      testAccuracy: 0.9308,
    },
    labels: 'dataset',
    classes: [vnni, pi],
    skippedClasses: [
      { hardwareClass: 'x86_64-sse-nofp16-cpu-1g', reason: 'no online device (1 offline)' },
    ],
    error: null,
    ...overrides,
  };
}

describe('rolloutResult', () => {
  it('orders each class: the winner first, then by p95, the teacher reference last', () => {
    const result = rolloutResult(sampleStatus());
    expect(result.durationSeconds).toBe(302);
    expect(result.dataset).toEqual({
      source: 'fashion_mnist',
      name: 'Fashion-MNIST',
      maxTrainSamples: 12000,
    });
    const names = result.classes[0]!.variants.map((v) => v.variant);
    expect(names).toEqual([
      'int8_static_minmax',
      'fp32',
      'int8_dynamic',
      'int4_weight_only',
      'teacher_fp32',
    ]);
    // The winner's "why" is the class's full reason; losers keep their own.
    expect(result.classes[0]!.variants[0]!.why).toMatch(/lowest on-device p95 of the qualifying/);
    expect(result.classes[0]!.variants[3]).toMatchObject({ p95Ms: null, accuracy: null });
  });
});

describe('renderResultTable', () => {
  const text = renderResultTable(rolloutResult(sampleStatus()));

  it('has a row per class with the chosen variant, size, latencies, accuracy and ratios', () => {
    expect(text).toMatch(/^rollout demo-1: partially succeeded in 5m 02s$/m);
    expect(text).toMatch(
      /teacher +resnet10_w32, 4\.91 MB, 1,230,000 parameters, test accuracy 93\.37%/,
    );
    expect(text).toMatch(/Fashion-MNIST, trained on 12,000 samples/);
    expect(text).toMatch(
      /x86_64-vnni-nofp16-cpu-32g +2\/2 +int8_static_minmax +265 kB +0\.0656 ms +0\.082 ms +0\.0984 ms +92\.98% +15\.7× faster +18\.5× smaller/,
    );
    expect(text).toMatch(/aarch64-neon-nofp16-cpu-4g +0\/1 +- \(failed\)/);
  });

  it('says why each variant lost, and why a class chose nothing', () => {
    expect(text).toMatch(
      /int8_dynamic +over accuracy budget +250 kB +0\.2 ms +85\.00% +holdout accuracy 85\.0 points/,
    );
    expect(text).toMatch(/int4_weight_only +rejected centrally .*accuracy drop 3\.1 points/);
    expect(text).toMatch(/teacher_fp32 +reference \(teacher\) +4\.91 MB +1\.28 ms/);
    expect(text).toMatch(
      /aarch64-neon-nofp16-cpu-4g → nothing \(failed\): no device was changed: no canary reported/,
    );
    expect(text).toMatch(/skipped x86_64-sse-nofp16-cpu-1g: no online device/);
    expect(text).toMatch(/1\.4× faster than the fp32 student on these devices/);
  });

  it('shows a running rollout as running', () => {
    const running = renderResultTable(
      rolloutResult(
        sampleStatus({ phase: 'rolling_out', finishedAt: null, detail: '2 hardware class(es)' }),
      ),
    );
    expect(running).toMatch(
      /rollout demo-1: rolling out \(running for 5m 02s: 2 hardware class\(es\)\)/,
    );
  });
});

describe('renderResultMarkdown', () => {
  it('is a report with tables that a Markdown renderer can parse', () => {
    const md = renderResultMarkdown(rolloutResult(sampleStatus()), 'result.svg');
    expect(md).toMatch(/^# Rollout demo-1$/m);
    expect(md).toContain('![Accuracy against on-device p95 latency](result.svg)');
    const chosenRow = md.split('\n').find((l) => l.startsWith('| `x86_64-vnni'))!;
    expect(chosenRow.split(' | ')).toEqual([
      '| `x86_64-vnni-nofp16-cpu-32g`',
      '2/2',
      '**int8_static_minmax**',
      '265 kB',
      '0.0656 ms',
      '0.082 ms',
      '0.0984 ms',
      '92.98%',
      '15.7× faster',
      '1.4× faster',
      '18.5× smaller |',
    ]);
    // Every table row has as many cells as its header.
    const tables = md.split('\n\n').filter((b) => b.startsWith('|'));
    expect(tables.length).toBeGreaterThanOrEqual(3);
    for (const t of tables) {
      const counts = t.split('\n').map((l) => l.replaceAll('\\|', '').split('|').length);
      expect(new Set(counts).size, t).toBe(1);
    }
    expect(md).toContain('Waves: canaries passed (1/1 activated) → wave 1 passed (1/1 activated)');
  });

  it('escapes pipes in reasons', () => {
    const status = sampleStatus();
    status.classes[1]!.candidates[0]!.reason = 'a | b';
    const md = renderResultMarkdown(rolloutResult(status));
    expect(md).toContain('a \\| b');
  });
});

describe('renderResultSvg', () => {
  const result = rolloutResult(sampleStatus());
  const svg = renderResultSvg(result);

  it('plots every variant measured on a device, winners marked, one colour per class', () => {
    const points = chartPoints(result);
    expect(points.map((p) => p.variant)).toEqual([
      'int8_static_minmax',
      'fp32',
      'int8_dynamic',
      'teacher_fp32',
    ]);
    expect(points.find((p) => p.won)?.variant).toBe('int8_static_minmax');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    // One tooltip per point, the winner named on the chart, the teacher as a square.
    expect(svg.match(/<title>x86_64-vnni/g)).toHaveLength(4);
    expect(svg).toMatch(/fill="#4e79a7" font-weight="bold"[^>]*>int8_static_minmax<\/text>/);
    expect(svg).toMatch(/<rect x="[\d.]+" y="[\d.]+" width="10" height="10" fill="#4e79a7"/);
    expect(svg).toContain('aarch64-neon-nofp16-cpu-4g</text>');
    expect(svg).toContain('(log scale)');
  });

  it('puts slower variants to the right of faster ones (log x) and higher accuracy higher', () => {
    const cx = (variant: string) => {
      const m = new RegExp(
        `<circle cx="([\\d.]+)" cy="([\\d.]+)"[^>]*><title>[^<]*· ${variant}[ :(]`,
      ).exec(svg);
      expect(m, variant).not.toBeNull();
      return { x: Number(m![1]), y: Number(m![2]) };
    };
    const [winner, fp32, dyn] = [cx('int8_static_minmax'), cx('fp32'), cx('int8_dynamic')];
    expect(fp32.x).toBeGreaterThan(winner.x);
    expect(dyn.x).toBeGreaterThan(fp32.x);
    expect(dyn.y).toBeGreaterThan(fp32.y); // lower accuracy: further down
    // Log scale: 0.082 → 0.2 ms (×2.44) spans more than 0.2 → 0.3 would (×1.5).
    expect(dyn.x - winner.x).toBeGreaterThan(0);
  });

  it('is well-formed XML with text escaped', () => {
    const status = sampleStatus({ rolloutId: 'a<b>&c' });
    const out = renderResultSvg(rolloutResult(status));
    expect(out).toContain('Rollout a&lt;b&gt;&amp;c');
    expect(out).not.toMatch(/<b>|&c/);
    // Every opened element is closed: count tags.
    const opened = (out.match(/<(g|svg|title|text)[\s>]/g) ?? []).length;
    const closed = (out.match(/<\/(g|svg|title|text)>/g) ?? []).length;
    expect(closed).toBe(opened);
  });

  it('says so when nothing was measured', () => {
    const out = renderResultSvg(rolloutResult(sampleStatus({ classes: [pi] })));
    expect(out).toContain('no variant was measured on a device');
  });
});

describe('format', () => {
  it('formats numbers the way the tables show them', () => {
    expect([formatMs(0.07123), formatMs(1.286), formatMs(153.4), formatMs(null)]).toEqual([
      '0.0712 ms',
      '1.29 ms',
      '153 ms',
      '-',
    ]);
    expect([formatBytes(999), formatBytes(265_100), formatBytes(4_910_000)]).toEqual([
      '999 B',
      '265 kB',
      '4.91 MB',
    ]);
    expect([
      formatRatio(15.67),
      formatDuration(42),
      formatDuration(302),
      formatDuration(3780),
    ]).toEqual(['15.7×', '42s', '5m 02s', '1h 03m']);
    expect(progressBar(0.5, 10)).toBe('[█████░░░░░]');
    expect(progressBar(2, 4, true)).toBe('[####]');
    expect(
      textTable([
        ['a', 'bb', 'long last'],
        ['ccc', 'd', 'x'],
      ]),
    ).toBe('a    bb  long last\nccc  d   x');
  });

  it('ticks: 1-2-5 per decade on a log axis, nice steps on a linear one', () => {
    expect(logTicks(0.05, 3)).toEqual([0.05, 0.1, 0.2, 0.5, 1, 2]);
    expect(logTicks(0.15, 0.9)).toEqual([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
    expect(linearTicks(0.84, 0.945)).toEqual([0.84, 0.86, 0.88, 0.9, 0.92, 0.94]);
  });
});

describe('relative', () => {
  it('says faster or slower, smaller or larger, and "same" when it rounds to 1', () => {
    expect(relative(15.67, 'faster', 'slower', 'as fast')).toBe('15.7× faster');
    expect(relative(0.919, 'faster', 'slower', 'as fast')).toBe('1.09× slower');
    expect(relative(1.0004, 'smaller', 'larger', 'same size')).toBe('same size');
    expect(relative(null, 'faster', 'slower', 'as fast')).toBe('-');
  });
});
