import type { HardwareClass } from '../../common/hardware/hardware-class.js';
import type { VariantName } from '../../common/variants.js';

/**
 * The quantization planner: which variants a hardware class should benchmark, best first, and
 * why. Pure and deterministic (workflow code calls it). Rules give the prior from what the
 * hardware can do; measurements from earlier rollouts on the same (architecture, class) override
 * the rules, because the canaries' numbers are the truth and the rules only a guess.
 */

/** What the planner knows about the model, from the fp32 student's ONNX graph. */
export interface ModelTraits {
  architecture: string;
  parameterCount: number;
  sizeBytes: number;
  /** Operator counts by ONNX op type, e.g. { Conv: 12, MatMul: 2 }. */
  opCounts: Record<string, number>;
}

/** One earlier on-device result for this (architecture, class). */
export interface Measurement {
  variant: VariantName;
  rolloutId: string;
  p95Ms: number;
  /** Accuracy on the device's holdout minus the fp32 student's; negative is a loss. */
  accuracyDelta: number;
  /** Whether it met that rollout's accuracy budget on the device. */
  metBudget: boolean;
}

export interface PlannerInput {
  hardwareClass: HardwareClass;
  model: ModelTraits;
  measurements: Measurement[];
  /** How many candidates besides the fp32 baseline the canaries should benchmark. */
  maxCandidates?: number;
}

export interface Candidate {
  variant: VariantName;
  reasons: string[];
}

export interface Plan {
  /** Best first; the fp32 baseline is always last, as the fallback and the speedup reference. */
  candidates: Candidate[];
  /** Variants left out, with why. */
  excluded: Candidate[];
}

const DEFAULT_MAX_CANDIDATES = 4;
/** Below this much memory, size matters more than the last bit of speed. */
const SMALL_MEMORY_TIERS = new Set(['256m', '512m', '1g']);

const STATIC_CALIBRATIONS: readonly VariantName[] = [
  'int8_static_minmax',
  'int8_static_entropy',
  'int8_static_percentile',
  'int8_static_reduce_range',
];

interface Scored extends Candidate {
  score: number;
}

/** The rule-based prior for one class: a score per variant (higher first) with reasons. */
function priors(
  cls: HardwareClass,
  model: ModelTraits,
): { scored: Scored[]; excluded: Candidate[] } {
  const scored: Scored[] = [];
  const excluded: Candidate[] = [];
  const add = (variant: VariantName, score: number, reason: string) => {
    const existing = scored.find((s) => s.variant === variant);
    if (existing) {
      existing.score += score;
      existing.reasons.push(reason);
    } else {
      scored.push({ variant, score, reasons: [reason] });
    }
  };
  const matmuls = (model.opCounts.MatMul ?? 0) + (model.opCounts.Gemm ?? 0);
  const convs = model.opCounts.Conv ?? 0;

  switch (cls.int8Path) {
    case 'amx':
      add(
        'int8_static_minmax',
        100,
        'AMX tiles run int8 matrix math natively: static QDQ int8 first',
      );
      add('int8_static_entropy', 70, 'same int8 path; entropy calibration may keep more accuracy');
      break;
    case 'vnni':
      add(
        'int8_static_minmax',
        100,
        'VNNI (vpdpbusd) runs u8×s8 dot products natively: static QDQ int8 first',
      );
      add('int8_static_entropy', 70, 'same int8 path; entropy calibration may keep more accuracy');
      break;
    case 'avx2':
      add(
        'int8_static_reduce_range',
        90,
        'AVX2 without VNNI: u8×s8 pairs can saturate in vpmaddubsw, so 7-bit weights (reduce_range)',
      );
      add(
        'int8_static_minmax',
        40,
        'full-range int8 may lose accuracy to saturation here; the canaries decide',
      );
      break;
    case 'sse':
      add(
        'int8_static_reduce_range',
        50,
        'no AVX2: int8 kernels fall back to SSE4.1; reduce_range avoids saturation',
      );
      add('fp32', 30, 'without AVX2 int8 may not beat fp32 at all');
      break;
    case 'i8mm':
      add(
        'int8_static_minmax',
        100,
        'i8mm (smmla) runs int8 matrix multiply natively: static QDQ int8 first',
      );
      add('int8_static_percentile', 60, 'same int8 path; percentile calibration clips outliers');
      break;
    case 'dotprod':
      add(
        'int8_static_minmax',
        100,
        'ARM dot product (sdot/udot) runs int8 natively: static QDQ int8 first',
      );
      add('int8_static_percentile', 60, 'same int8 path; percentile calibration clips outliers');
      break;
    case 'neon':
      add(
        'int8_static_minmax',
        70,
        'plain NEON still halves memory traffic with int8; static QDQ first',
      );
      break;
    case 'none':
      add('fp32', 30, 'unknown int8 path: keep fp32 in the running');
      break;
  }

  if (cls.int8Path !== 'none') {
    // The static calibrations are one QDQ graph with other scales: as fast as the one ranked
    // above, and one of them may keep more accuracy. Worth a benchmark before a different graph.
    for (const calibration of STATIC_CALIBRATIONS) {
      if (!scored.some((s) => s.variant === calibration)) {
        add(
          calibration,
          20,
          'another calibration of the same static int8 graph: same speed, accuracy may differ',
        );
      }
    }
  }

  if (matmuls > 0 && matmuls >= convs) {
    add(
      'int8_dynamic',
      50,
      `MatMul/Gemm-heavy graph (${matmuls} vs ${convs} Conv): dynamic int8 quantizes them without calibration`,
    );
  } else {
    add(
      'int8_dynamic',
      10,
      'dynamic int8 covers MatMul/Gemm only, a small part of this conv graph',
    );
  }

  if (cls.accelerator.startsWith('cuda')) {
    add('fp16', 120, 'CUDA GPU: fp16 runs on tensor cores');
  } else if (cls.fp16Path === 'fp16') {
    add('fp16', 45, 'native fp16 arithmetic on this CPU; half the size of fp32');
  } else {
    excluded.push({
      variant: 'fp16',
      reasons: ['no native fp16 here: ONNX Runtime would compute it in fp32 with casts'],
    });
  }

  if (cls.accelerator === 'npu') {
    add('a16w8', 110, 'NPUs favour 16-bit activations with 8-bit weights');
  } else {
    excluded.push({
      variant: 'a16w8',
      reasons: ['16-bit activations pay off on NPUs, not on CPU kernels'],
    });
  }

  const small = SMALL_MEMORY_TIERS.has(cls.memoryTier);
  // ONNX Runtime's MatMulNBits quantizer rewrites MatMul nodes, not Gemm or Conv.
  if ((model.opCounts.MatMul ?? 0) > 0) {
    add(
      'int4_weight_only',
      small ? 80 : 20,
      small
        ? `only ${cls.memoryTier} of memory: int4 weights make the smallest model`
        : 'int4 weights shrink MatMul weights the most, at some accuracy cost',
    );
  } else {
    excluded.push({
      variant: 'int4_weight_only',
      reasons: ['int4 weight-only quantizes MatMul weights, and this graph has no MatMul'],
    });
  }
  if (small) {
    for (const s of scored) {
      if (s.variant.startsWith('int8') || s.variant === 'int4_weight_only') {
        s.score += 15;
        s.reasons.push(`${cls.memoryTier} of memory: prefer the smaller models`);
      }
    }
  }
  return { scored, excluded };
}

/** Ranks the variants for one hardware class; see the module comment. */
export function planVariants(input: PlannerInput): Plan {
  const { scored, excluded } = priors(input.hardwareClass, input.model);
  const fp32 = input.measurements.find((m) => m.variant === 'fp32');

  for (const m of input.measurements) {
    if (m.variant === 'fp32') continue;
    const candidate = scored.find((s) => s.variant === m.variant);
    if (!m.metBudget) {
      const at = scored.indexOf(candidate!);
      if (at >= 0) scored.splice(at, 1);
      excluded.push({
        variant: m.variant,
        reasons: [
          `missed the accuracy budget on this class in rollout ${m.rolloutId} (${(m.accuracyDelta * 100).toFixed(1)} points)`,
        ],
      });
      continue;
    }
    const target = candidate ?? { variant: m.variant, score: 0, reasons: [] };
    if (!candidate) scored.push(target);
    // Measured speed outranks every rule: 1000 / p95 puts a 2 ms variant far above a 20 ms one.
    target.score = 1000 + 1000 / Math.max(m.p95Ms, 0.01);
    target.reasons.unshift(
      `measured p95 ${m.p95Ms.toFixed(2)} ms on this class in rollout ${m.rolloutId}`,
    );
    if (fp32 && m.p95Ms >= fp32.p95Ms) {
      target.score = 0;
      target.reasons.unshift(
        `measured slower than fp32 (${fp32.p95Ms.toFixed(2)} ms) on this class in rollout ${m.rolloutId}`,
      );
    }
  }

  const ranked = scored
    .filter((s) => s.variant !== 'fp32')
    .sort((a, b) => b.score - a.score || a.variant.localeCompare(b.variant));
  const max = input.maxCandidates ?? DEFAULT_MAX_CANDIDATES;
  for (const dropped of ranked.slice(max)) {
    excluded.push({
      variant: dropped.variant,
      reasons: [...dropped.reasons, `ranked below the ${max} candidates benchmarked`],
    });
  }
  const baselineReasons = [
    'baseline: the fallback when no variant qualifies, and the reference for speedups',
    ...(scored.find((s) => s.variant === 'fp32')?.reasons ?? []),
    ...(fp32
      ? [`measured p95 ${fp32.p95Ms.toFixed(2)} ms on this class in rollout ${fp32.rolloutId}`]
      : []),
  ];
  return {
    candidates: [
      ...ranked.slice(0, max).map(({ variant, reasons }) => ({ variant, reasons })),
      { variant: 'fp32', reasons: baselineReasons },
    ],
    excluded,
  };
}
