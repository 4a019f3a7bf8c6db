import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ROLLOUT_DEFAULTS, isRolloutId } from './rollout.js';
import {
  ARCHITECTURES,
  DATASET_SOURCES,
  RolloutSpecError,
  TEACHER_SOURCES,
  generateRolloutId,
  parseRolloutSpec,
} from './rollout-spec.js';

/** The smallest spec that runs: everything else has a default. */
const minimal = {
  rolloutId: 'r-1',
  dataset: { source: 'digits' },
  source: { kind: 'distill', student: { architecture: 'small_cnn' } },
};

function specError(json: unknown): RolloutSpecError {
  try {
    parseRolloutSpec(json);
  } catch (err) {
    if (err instanceof RolloutSpecError) return err;
    throw err;
  }
  throw new Error('expected a RolloutSpecError');
}

describe('parseRolloutSpec: what it accepts', () => {
  it('fills every default into a minimal spec', () => {
    const spec = parseRolloutSpec(minimal);
    expect(spec).toEqual({
      rolloutId: 'r-1',
      dataset: { source: 'digits' },
      source: { kind: 'distill', teacher: {}, student: { architecture: 'small_cnn' } },
      ...ROLLOUT_DEFAULTS,
    });
  });

  it('merges partly given waves and benchmark settings over the defaults', () => {
    const spec = parseRolloutSpec({
      ...minimal,
      waves: { percents: [100], bakeSeconds: 0 },
      benchmark: { minRuns: 5 },
    });
    expect(spec.waves).toEqual({ ...ROLLOUT_DEFAULTS.waves, percents: [100], bakeSeconds: 0 });
    expect(spec.benchmark).toEqual({ ...ROLLOUT_DEFAULTS.benchmark, minRuns: 5 });
  });

  it('keeps every field a full spec gives, gpu-worker settings included', () => {
    const full = {
      rolloutId: 'fashion_2025-01',
      modelId: 'fashion.student-v2',
      dataset: {
        source: 'image_folder',
        path: '/data/parts',
        image_size: 64,
        grayscale: true,
        validation_fraction: 0.1,
        test_fraction: 0.2,
        seed: 3,
        max_train_samples: null,
        calibration_samples: 128,
        holdout_samples: 64,
      },
      source: {
        kind: 'distill',
        teacher: {
          source: 'checkpoint',
          architecture: 'resnet18',
          file: { object_name: 'teachers/resnet18.pt' },
          training: { epochs: 2, optimizer: 'adamw', schedule: 'step', step_epochs: 1 },
          export: { opset: 18, parity_tolerance: 1e-3, parity_samples: 32 },
        },
        student: {
          architecture: 'mobilenet_v3_small',
          distill: {
            temperature: 2,
            alpha: 0.5,
            training: { epochs: 3, batch_size: 64 },
            hint: { teacher_layer: 'layer2', student_layer: 'features.3', weight: 0.5 },
          },
        },
      },
      accuracyBudget: 0.02,
      latencySloMs: 15,
      formats: ['fp16', 'int8_static_entropy'],
      maxCandidates: 2,
      canaries: 3,
      canaryDevices: ['d-1', 'd-2'],
      canarySeed: 42,
      waves: {
        percents: [5, 25, 100],
        bakeSeconds: 30,
        maxFailedShare: 0,
        minSuccessShare: 0.8,
        maxP95Regression: 1.5,
      },
      benchmark: { warmupRuns: 0, minRuns: 20, minSeconds: 0.5, threads: 2, rounds: 4 },
      reportTimeoutSeconds: 90,
      hardwareClasses: ['x86_64-vnni-nofp16-cpu-8g'],
      manifestTtlHours: 1,
    };
    expect(parseRolloutSpec(structuredClone(full))).toEqual(full);
  });

  it('takes a bring-your-own ONNX model', () => {
    const spec = parseRolloutSpec({
      ...minimal,
      source: { kind: 'onnx', model: { path: '/models/mine.onnx' } },
    });
    expect(spec.source).toEqual({ kind: 'onnx', model: { path: '/models/mine.onnx' } });
  });

  it('generates a sortable rollout id when none is given', () => {
    const withoutId: Record<string, unknown> = { ...minimal };
    delete withoutId.rolloutId;
    const now = new Date('2025-01-02T03:04:05.678Z');
    const spec = parseRolloutSpec(withoutId, { now });
    expect(spec.rolloutId).toMatch(/^r-20250102-030405-[0-9a-f]{4}$/);
    expect(isRolloutId(spec.rolloutId)).toBe(true);
    // Two rollouts started in the same second still get different ids (most of the time: 1/65536).
    const ids = new Set(Array.from({ length: 20 }, () => generateRolloutId(now)));
    expect(ids.size).toBeGreaterThan(18);
  });
});

describe('parseRolloutSpec: what it refuses, and what it says', () => {
  const cases: { name: string; json: unknown; field: string; says: RegExp }[] = [
    {
      name: 'not an object',
      json: [minimal],
      field: '',
      says: /must be a JSON object, got \[/,
    },
    {
      name: 'a bad rollout id',
      json: { ...minimal, rolloutId: 'my rollout!' },
      field: 'rolloutId',
      says: /1 to 64 of A-Z a-z 0-9 _ -.*got "my rollout!"/,
    },
    {
      name: 'a misspelt top-level field',
      json: { ...minimal, accuracyBugdet: 0.02 },
      field: 'accuracyBugdet',
      says: /not a known field: check its spelling/,
    },
    {
      name: 'no dataset',
      json: { rolloutId: 'r-1', source: minimal.source },
      field: 'dataset',
      says: /is required/,
    },
    {
      name: 'an unknown dataset source',
      json: { ...minimal, dataset: { source: 'mnist' } },
      field: 'dataset.source',
      says: /is "mnist"; expected one of fashion_mnist, digits, npz, image_folder/,
    },
    {
      name: 'an npz dataset without its file',
      json: { ...minimal, dataset: { source: 'npz' } },
      field: 'dataset.path',
      says: /required for source "npz": the .npz file/,
    },
    {
      name: 'a dataset fraction out of range',
      json: { ...minimal, dataset: { source: 'digits', test_fraction: 1 } },
      field: 'dataset.test_fraction',
      says: /between 0 and 1 \(exclusive\), got 1/,
    },
    {
      name: 'a misspelt gpu-worker field',
      json: { ...minimal, dataset: { source: 'digits', holdout: 10 } },
      field: 'dataset.holdout',
      says: /not a known field/,
    },
    {
      name: 'an unknown source kind',
      json: { ...minimal, source: { kind: 'pytorch' } },
      field: 'source.kind',
      says: /is "pytorch"; expected one of distill, onnx/,
    },
    {
      name: 'an unknown student architecture',
      json: { ...minimal, source: { kind: 'distill', student: { architecture: 'vgg16' } } },
      field: 'source.student.architecture',
      says: /is "vgg16"; expected one of .*small_cnn/,
    },
    {
      name: 'an ONNX teacher without its file',
      json: {
        ...minimal,
        source: {
          kind: 'distill',
          teacher: { source: 'onnx' },
          student: { architecture: 'small_cnn' },
        },
      },
      field: 'source.teacher.file',
      says: /required for source "onnx"/,
    },
    {
      name: 'a distillation alpha above 1',
      json: {
        ...minimal,
        source: {
          kind: 'distill',
          student: { architecture: 'small_cnn', distill: { alpha: 1.5 } },
        },
      },
      field: 'source.student.distill.alpha',
      says: /from 0 to 1, got 1.5/,
    },
    {
      name: 'a model reference with both a path and an object',
      json: { ...minimal, source: { kind: 'onnx', model: { path: 'a.onnx', object_name: 'b' } } },
      field: 'source.model',
      says: /exactly one of path .* or object_name/,
    },
    {
      name: 'an accuracy budget above 1',
      json: { ...minimal, accuracyBudget: 5 },
      field: 'accuracyBudget',
      says: /from 0 to 1, got 5/,
    },
    {
      name: 'a negative failed-device share',
      json: { ...minimal, waves: { maxFailedShare: -0.1 } },
      field: 'waves.maxFailedShare',
      says: /from 0 to 1/,
    },
    {
      name: 'a latency SLO of 0',
      json: { ...minimal, latencySloMs: 0 },
      field: 'latencySloMs',
      says: /above 0/,
    },
    {
      name: 'waves that stop short of 100',
      json: { ...minimal, waves: { percents: [10, 50] } },
      field: 'waves.percents',
      says: /^waves\.percents: must rise to 100, got \[10, 50\]/,
    },
    {
      name: 'waves that go down',
      json: { ...minimal, waves: { percents: [50, 10, 100] } },
      field: 'waves.percents',
      says: /must rise to 100, got \[50, 10, 100\]/,
    },
    {
      name: 'a wave above 100',
      json: { ...minimal, waves: { percents: [10, 150] } },
      field: 'waves.percents[1]',
      says: /at most 100, got 150/,
    },
    {
      name: 'no waves',
      json: { ...minimal, waves: { percents: [] } },
      field: 'waves.percents',
      says: /at least one wave/,
    },
    {
      name: 'a report timeout of 0',
      json: { ...minimal, reportTimeoutSeconds: 0 },
      field: 'reportTimeoutSeconds',
      says: /above 0/,
    },
    {
      name: 'a negative bake time',
      json: { ...minimal, waves: { bakeSeconds: -1 } },
      field: 'waves.bakeSeconds',
      says: /0 or more/,
    },
    {
      name: 'no canaries',
      json: { ...minimal, canaries: 0 },
      field: 'canaries',
      says: /at least 1, got 0/,
    },
    {
      name: 'a fractional canary count',
      json: { ...minimal, canaries: 1.5 },
      field: 'canaries',
      says: /whole number, got 1.5/,
    },
    {
      name: 'an unknown variant format',
      json: { ...minimal, formats: ['fp16', 'int3'] },
      field: 'formats[1]',
      says: /is "int3"; expected one of fp32, fp16/,
    },
    {
      name: 'an empty format list',
      json: { ...minimal, formats: [] },
      field: 'formats',
      says: /at least one format, or be left out/,
    },
    {
      name: 'a repeated format',
      json: { ...minimal, formats: ['fp16', 'fp16'] },
      field: 'formats',
      says: /must not repeat/,
    },
    {
      name: 'a benchmark with no timed runs',
      json: { ...minimal, benchmark: { minRuns: 0 } },
      field: 'benchmark.minRuns',
      says: /at least 1/,
    },
    {
      name: 'a hardware class that is not a key',
      json: { ...minimal, hardwareClasses: ['x86 with vnni'] },
      field: 'hardwareClasses[0]',
      says: /hardware class key/,
    },
    {
      name: 'a string where a number belongs',
      json: { ...minimal, maxCandidates: '4' },
      field: 'maxCandidates',
      says: /expected number, got "4"/,
    },
  ];

  it.each(cases)('$name → $field', ({ json, field, says }) => {
    const err = specError(json);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(says);
    if (field) expect(err.message.startsWith(`${field}: `)).toBe(true);
  });

  it('reports every problem at once, each by its path', () => {
    const err = specError({
      ...minimal,
      dataset: { source: 'mnist' },
      canaries: 0,
      waves: { percents: [10, 50] },
    });
    expect(err.issues.map((i) => i.path).sort()).toEqual([
      'canaries',
      'dataset.source',
      'waves.percents',
    ]);
  });
});

describe('names shared with the gpu worker', () => {
  it('match services/gpu-worker/contracts.schema.json', async () => {
    const schema = JSON.parse(
      await readFile(
        new URL('../services/gpu-worker/contracts.schema.json', import.meta.url),
        'utf8',
      ),
    ) as { names: Record<string, string[]> };
    expect([...DATASET_SOURCES]).toEqual(schema.names.dataset_sources);
    expect([...TEACHER_SOURCES]).toEqual(schema.names.teacher_sources);
    expect([...ARCHITECTURES]).toEqual(schema.names.architectures);
  });
});
