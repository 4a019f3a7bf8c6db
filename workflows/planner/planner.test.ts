import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  deriveHardwareClass,
  parseCpuinfo,
  profileFromCpuinfo,
  type Accelerator,
  type HardwareClass,
} from '../../common/hardware/index.js';
import { planVariants, type Measurement, type ModelTraits } from './planner.js';

function classOf(fixture: string, memoryGiB = 8, accelerators: Accelerator[] = []): HardwareClass {
  const text = readFileSync(
    new URL(`../../test/fixtures/cpuinfo/${fixture}.txt`, import.meta.url),
    'utf8',
  );
  return deriveHardwareClass(
    profileFromCpuinfo(parseCpuinfo(text), {
      memoryBytes: Math.round(memoryGiB * 1024 ** 3),
      os: { platform: 'linux', release: '6.1' },
      onnxRuntime: { version: '1.30.0', executionProviders: ['CPUExecutionProvider'] },
      accelerators,
    }),
  );
}

const cnn: ModelTraits = {
  architecture: 'small_cnn',
  parameterCount: 100_000,
  sizeBytes: 400_000,
  opCounts: { Conv: 4, Relu: 4, Gemm: 1 },
};
const mlp: ModelTraits = {
  architecture: 'mlp',
  parameterCount: 2_000_000,
  sizeBytes: 8_000_000,
  opCounts: { MatMul: 3, Add: 3, Relu: 2 },
};

const order = (cls: HardwareClass, model = cnn, measurements: Measurement[] = []) =>
  planVariants({ hardwareClass: cls, model, measurements }).candidates.map((c) => c.variant);

describe('planVariants: priors from the hardware', () => {
  it.each([
    ['intel-xeon-platinum-8480-sapphire-rapids', 'int8_static_minmax', /AMX/],
    ['intel-xeon-gold-6242-cascade-lake', 'int8_static_minmax', /VNNI/],
    ['amd-ryzen-9-5950x-zen3', 'int8_static_reduce_range', /AVX2 without VNNI/],
    ['intel-celeron-j1900', 'int8_static_reduce_range', /no AVX2/],
    ['aws-graviton3', 'int8_static_minmax', /i8mm/],
    ['raspberry-pi-5', 'int8_static_minmax', /dot product/],
    ['raspberry-pi-4', 'int8_static_minmax', /NEON/],
  ])('%s → %s first', (fixture, first, why) => {
    const plan = planVariants({ hardwareClass: classOf(fixture), model: cnn, measurements: [] });
    expect(plan.candidates[0]?.variant).toBe(first);
    expect(plan.candidates[0]?.reasons.join(' ')).toMatch(why);
    expect(plan.candidates.at(-1)?.variant).toBe('fp32');
  });

  it('puts fp16 first on a CUDA Jetson, and keeps it out where fp16 is not native', () => {
    const jetson = classOf('jetson-xavier-agx', 32, [
      { kind: 'cuda', name: 'Xavier', computeCapability: '7.2' },
    ]);
    expect(order(jetson)[0]).toBe('fp16');
    const pi4 = planVariants({
      hardwareClass: classOf('raspberry-pi-4'),
      model: cnn,
      measurements: [],
    });
    expect(pi4.candidates.map((c) => c.variant)).not.toContain('fp16');
    expect(pi4.excluded.find((e) => e.variant === 'fp16')?.reasons[0]).toMatch(/no native fp16/);
  });

  it('offers fp16 on ARM with native fp16 (Pi 5), after int8', () => {
    const pi5 = order(classOf('raspberry-pi-5'));
    expect(pi5).toContain('fp16');
    expect(pi5.indexOf('fp16')).toBeGreaterThan(pi5.indexOf('int8_static_minmax'));
  });

  it('puts A16W8 first on an NPU', () => {
    const npu = { ...classOf('raspberry-pi-5'), accelerator: 'npu' as const };
    expect(order(npu)[0]).toBe('a16w8');
  });

  it('favours int4 weight-only for MatMul models on small-memory devices, and never offers it for conv nets', () => {
    expect(order(classOf('raspberry-pi-3b-plus', 0.9), mlp).slice(0, 2)).toContain(
      'int4_weight_only',
    );
    const plan = planVariants({
      hardwareClass: classOf('raspberry-pi-3b-plus', 0.9),
      model: cnn,
      measurements: [],
    });
    expect(plan.excluded.find((e) => e.variant === 'int4_weight_only')?.reasons[0]).toMatch(
      /has no MatMul/,
    );
  });

  it('prefers dynamic int8 for MatMul-heavy models', () => {
    const zen = order(classOf('amd-ryzen-9-5950x-zen3'), mlp);
    expect(zen.indexOf('int8_dynamic')).toBeLessThan(zen.indexOf('int8_static_minmax'));
  });

  it('caps the candidates and says why the rest were left out', () => {
    const plan = planVariants({
      hardwareClass: classOf('raspberry-pi-5'),
      model: mlp,
      measurements: [],
      maxCandidates: 2,
    });
    expect(plan.candidates).toHaveLength(3);
    expect(
      plan.excluded.some((e) => e.reasons.at(-1) === 'ranked below the 2 candidates benchmarked'),
    ).toBe(true);
  });
});

describe('planVariants: measurements override the rules', () => {
  const zen = classOf('amd-ryzen-9-5950x-zen3');
  const m = (variant: Measurement['variant'], p95Ms: number, metBudget = true): Measurement => ({
    variant,
    p95Ms,
    metBudget,
    rolloutId: 'r-7',
    accuracyDelta: metBudget ? -0.002 : -0.04,
  });

  it('ranks measured variants by their measured p95', () => {
    expect(
      order(zen, cnn, [
        m('fp32', 10),
        m('int8_static_minmax', 2),
        m('int8_static_reduce_range', 4),
      ]).slice(0, 2),
    ).toEqual(['int8_static_minmax', 'int8_static_reduce_range']);
  });

  it('demotes a variant that measured slower than fp32 on this class', () => {
    const plan = planVariants({
      hardwareClass: zen,
      model: cnn,
      measurements: [m('fp32', 3), m('int8_static_reduce_range', 5)],
    });
    // Ranked last, so the other static calibrations push it out of the shortlist.
    const reduce = plan.excluded.find((c) => c.variant === 'int8_static_reduce_range');
    expect(plan.candidates.map((c) => c.variant)).not.toContain('int8_static_reduce_range');
    expect(reduce?.reasons[0] ?? '').toMatch(/measured slower than fp32 \(3.00 ms\)/);
  });

  it('leaves out a variant that missed the accuracy budget on this class', () => {
    const plan = planVariants({
      hardwareClass: zen,
      model: cnn,
      measurements: [m('int8_static_reduce_range', 1, false)],
    });
    expect(plan.candidates.map((c) => c.variant)).not.toContain('int8_static_reduce_range');
    expect(plan.excluded.find((e) => e.variant === 'int8_static_reduce_range')?.reasons[0]).toMatch(
      /missed the accuracy budget.*r-7.*-4.0 points/,
    );
  });

  it('fills the shortlist with the other static int8 calibrations before a graph the rules expect to be slow', () => {
    const plan = planVariants({
      hardwareClass: classOf('intel-xeon-gold-6242-cascade-lake'),
      model: cnn,
      measurements: [],
    });
    expect(plan.candidates.map((c) => c.variant)).toEqual([
      'int8_static_minmax',
      'int8_static_entropy',
      'int8_static_percentile',
      'int8_static_reduce_range',
      'fp32',
    ]);
    expect(plan.excluded.find((e) => e.variant === 'int8_dynamic')?.reasons.at(-1)).toMatch(
      /ranked below the 4 candidates/,
    );
  });

  it('is deterministic', () => {
    const input = { hardwareClass: zen, model: mlp, measurements: [m('fp32', 3)] };
    expect(planVariants(input)).toEqual(planVariants(input));
  });
});
