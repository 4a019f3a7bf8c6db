import { describe, expect, it } from 'vitest';
import type { BenchmarkReportSignal } from '../../common/rollout.js';
import { chooseVariant, MAX_TIE_SHARE, roundNoise, type CandidateInput } from './choose.js';

const candidate = (
  variant: string,
  sizeBytes: number,
  status: CandidateInput['central']['status'] = 'accepted',
): CandidateInput => ({
  variant,
  planReasons: [`because ${variant}`],
  central: {
    status,
    reason: status === 'accepted' ? '' : `${variant} was ${status}`,
    sizeBytes,
    centralAccuracy: 0.9,
  },
});

const report = (
  deviceId: string,
  variant: string,
  p95Ms: number,
  accuracy: number | null = 0.9,
  error: string | null = null,
  roundP95Ms: number[] = [p95Ms],
): BenchmarkReportSignal => ({
  deviceId,
  variant,
  modelSha256: 'a'.repeat(64),
  p50Ms: p95Ms * 0.8,
  p95Ms,
  p99Ms: p95Ms * 1.2,
  cv: 0.05,
  runs: 100,
  roundP95Ms,
  accuracy,
  agreement: accuracy,
  error,
});

/** A report measured in three rounds that fell ± `noise` around its p95. */
const noisy = (variant: string, p95Ms: number, noise: number, accuracy = 0.9) =>
  report('c1', variant, p95Ms, accuracy, null, [p95Ms - noise, p95Ms, p95Ms + noise]);

const base = { accuracyBudget: 0.01, latencySloMs: null, centralFp32HoldoutAccuracy: 0.9 };
const candidates = [
  candidate('int8_static_minmax', 100),
  candidate('fp16', 200),
  candidate('fp32', 400),
];

describe('chooseVariant', () => {
  it('picks the lowest on-device p95 among the qualifying variants', () => {
    const choice = chooseVariant({
      ...base,
      candidates,
      reports: [
        report('c1', 'int8_static_minmax', 1),
        report('c1', 'fp16', 3),
        report('c1', 'fp32', 2),
      ],
    });
    expect(choice.winner).toBe('int8_static_minmax');
    expect(choice.fellBack).toBe(false);
    expect(choice.reason).toMatch(/1.00 ms against 2.00 ms for fp32/);
    expect(choice.outcomes.map((o) => o.verdict)).toEqual(['won', 'slower', 'slower']);
  });

  it('uses the median of several canaries, so one noisy device does not decide', () => {
    const choice = chooseVariant({
      ...base,
      candidates,
      reports: [
        ...['c1', 'c2', 'c3'].map((d) => report(d, 'fp32', 2)),
        report('c1', 'int8_static_minmax', 1),
        report('c2', 'int8_static_minmax', 1.1),
        report('c3', 'int8_static_minmax', 9),
      ],
    });
    expect(choice.winner).toBe('int8_static_minmax');
    expect(choice.outcomes[0]!.onDevice!.p95Ms).toBe(1.1);
  });

  it('falls back to fp32 when int8 loses accuracy on the device, with the reason', () => {
    const choice = chooseVariant({
      ...base,
      candidates,
      reports: [
        report('c1', 'int8_static_minmax', 1, 0.7),
        report('c1', 'fp16', 3, 0.9),
        report('c1', 'fp32', 2, 0.9),
      ],
      latencySloMs: 2.5,
    });
    expect(choice.winner).toBe('fp32');
    expect(choice.fellBack).toBe(true);
    const int8 = choice.outcomes.find((o) => o.variant === 'int8_static_minmax')!;
    expect(int8.verdict).toBe('over_accuracy_budget_on_device');
    expect(int8.reason).toMatch(
      /70.0 points on the device is 20.0 points below the fp32 student on the device/,
    );
    expect(choice.outcomes.find((o) => o.variant === 'fp16')!.verdict).toBe('over_latency_slo');
  });

  it('never picks a variant rejected centrally, failed on the device, or the reference', () => {
    const choice = chooseVariant({
      ...base,
      candidates: [
        candidate('int8_static_minmax', 100, 'rejected'),
        candidate('int8_dynamic', 120),
        candidate('fp32', 400),
        { ...candidate('teacher_fp32', 4000), reference: true },
      ],
      reports: [
        report('c1', 'int8_dynamic', 0.5, null, 'session failed to load'),
        report('c1', 'fp32', 2),
        report('c1', 'teacher_fp32', 0.1),
      ],
    });
    expect(choice.winner).toBe('fp32');
    expect(choice.outcomes.map((o) => o.verdict)).toEqual([
      'rejected_centrally',
      'failed_on_device',
      'won',
      'reference',
    ]);
    expect(choice.outcomes[1]!.reason).toMatch(/c1: session failed to load/);
  });

  it('chooses nothing when nothing passes the gates', () => {
    const choice = chooseVariant({
      ...base,
      latencySloMs: 0.5,
      candidates,
      reports: [report('c1', 'int8_static_minmax', 1), report('c1', 'fp32', 2)],
    });
    expect(choice.winner).toBeNull();
    expect(choice.reason).toMatch(/no candidate met the accuracy budget and the latency SLO/);
    expect(choice.reason).toMatch(/fp16: no canary reported a benchmark for it/);
  });

  it('does not call fp32 a fallback when it qualified beside int8 and was simply faster', () => {
    const choice = chooseVariant({
      ...base,
      candidates,
      reports: [
        report('c1', 'int8_static_minmax', 2),
        report('c1', 'fp16', 3),
        report('c1', 'fp32', 1),
      ],
    });
    expect(choice.winner).toBe('fp32');
    expect(choice.fellBack).toBe(false);
    expect(choice.reason).toMatch(/^lowest on-device p95 of the qualifying variants: 1.00 ms/);
  });

  it('breaks a p95 tie by the smaller file', () => {
    const choice = chooseVariant({
      ...base,
      candidates,
      reports: [
        report('c1', 'int8_static_minmax', 1),
        report('c1', 'fp16', 1),
        report('c1', 'fp32', 1),
      ],
    });
    expect(choice.winner).toBe('int8_static_minmax');
    expect(choice.outcomes[1]!.reason).toMatch(/a tie with int8_static_minmax .*2\.0× smaller/);
  });

  it('takes a clearly smaller model whose p95 is within the measurement noise of the fastest', () => {
    const choice = chooseVariant({
      ...base,
      candidates,
      // fp32 measured 2% faster, but its rounds scattered ±4%: no real difference.
      reports: [
        noisy('int8_static_minmax', 1.02, 0.04),
        noisy('fp16', 2, 0.04),
        noisy('fp32', 1, 0.04),
      ],
    });
    expect(choice.winner).toBe('int8_static_minmax');
    expect(choice.outcomes[0]!.onDevice!.p95NoiseMs).toBeCloseTo(0.04 * 1.4826);
    expect(choice.reason).toMatch(
      /p95 1\.02 ms ties the fastest, fp32 \(1\.00 ms\), within the measurement noise, and it is 4\.0× smaller/,
    );
    expect(choice.outcomes[2]).toMatchObject({ verdict: 'slower' });
    expect(choice.outcomes[2]!.reason).toMatch(/a tie with int8_static_minmax/);
  });

  it('keeps the faster model when the difference is larger than the noise', () => {
    const choice = chooseVariant({
      ...base,
      candidates,
      reports: [
        noisy('int8_static_minmax', 1.02, 0.005),
        noisy('fp16', 2, 0.005),
        noisy('fp32', 1, 0.005),
      ],
    });
    expect(choice.winner).toBe('fp32');
  });

  it('never gives up more than MAX_TIE_SHARE of the fastest p95 to a tie, however noisy', () => {
    const slower = 1 + MAX_TIE_SHARE + 0.01;
    const choice = chooseVariant({
      ...base,
      candidates,
      reports: [
        noisy('int8_static_minmax', slower, 0.5),
        noisy('fp16', 2, 0.5),
        noisy('fp32', 1, 0.5),
      ],
    });
    expect(choice.winner).toBe('fp32');
  });

  it('breaks a tie between int8 calibrations of one size by the on-device accuracy', () => {
    const calibrations = [
      candidate('int8_static_minmax', 100),
      candidate('int8_static_entropy', 101),
      candidate('fp32', 400),
    ];
    const choice = chooseVariant({
      ...base,
      candidates: calibrations,
      reports: [
        noisy('int8_static_minmax', 1, 0.05, 0.895),
        noisy('int8_static_entropy', 1.01, 0.05, 0.9),
        noisy('fp32', 2, 0.05),
      ],
    });
    expect(choice.winner).toBe('int8_static_entropy');
    expect(choice.reason).toMatch(
      /more accurate on the device \(90\.0 points against 89\.5 points\)/,
    );
  });

  it('measures the noise robustly: one disturbed round does not make everything a tie', () => {
    expect(roundNoise([0.536, 0.52, 4.912, 0.511])).toBeCloseTo(1.4826 * 0.0125);
    expect(roundNoise([1])).toBe(0);
    expect(roundNoise([])).toBe(0);
  });

  it('compares strictly when the reports carry no rounds (reports from before rounds existed)', () => {
    const legacy = (variant: string, p95Ms: number) => {
      const r = report('c1', variant, p95Ms);
      delete r.roundP95Ms;
      return r;
    };
    const choice = chooseVariant({
      ...base,
      candidates,
      reports: [legacy('int8_static_minmax', 1.01), legacy('fp16', 2), legacy('fp32', 1)],
    });
    expect(choice.winner).toBe('fp32');
    expect(choice.outcomes[0]!.onDevice!.p95NoiseMs).toBe(0);
  });
});
