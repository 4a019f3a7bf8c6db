/**
 * Reads a rollout spec as a user wrote it (a JSON file, the StartRollout request) into a complete
 * RolloutSpec: defaults filled in, every field checked, and any problem reported by its path with
 * what to do about it. The control plane runs it before starting a workflow, so a bad spec never
 * reaches Temporal.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { EdgeforgeError } from './errors.js';
import type {
  Architecture,
  DatasetSource,
  DatasetSpec,
  DistillConfig,
  ExportConfig,
  FileRef,
  HintConfig,
  Optimizer,
  Schedule,
  TeacherConfig,
  TeacherSource,
  TrainingConfig,
} from './gpu-contracts.js';
import { ROLLOUT_DEFAULTS, type RolloutSpec } from './rollout.js';
import { VARIANTS } from './variants.js';

/** One problem in a spec: where (`waves.percents`, `formats[2]`) and what. */
export interface RolloutSpecIssue {
  path: string;
  problem: string;
}

/** A rollout spec that cannot run; the message names each bad field and what to do. */
export class RolloutSpecError extends EdgeforgeError {
  override name = 'RolloutSpecError';
  /** Path of the first problem, e.g. `waves.percents`; empty for the spec as a whole. */
  readonly field: string;

  constructor(readonly issues: RolloutSpecIssue[]) {
    super(issues.map((i) => (i.path ? `${i.path}: ${i.problem}` : i.problem)).join('; '));
    this.field = issues[0]?.path ?? '';
  }
}

/**
 * Names the gpu worker's registries know (services/gpu-worker/contracts.schema.json `names`).
 * The generated types only exist at compile time; `exhaustive` makes tsc fail when the schema
 * gains a name that is missing here, and a unit test compares them with the schema file.
 */
export const DATASET_SOURCES = exhaustive<DatasetSource>()([
  'fashion_mnist',
  'digits',
  'npz',
  'image_folder',
]);
export const TEACHER_SOURCES = exhaustive<TeacherSource>()(['train', 'checkpoint', 'onnx']);
export const ARCHITECTURES = exhaustive<Architecture>()([
  'resnet18',
  'resnet10_w32',
  'mobilenet_v2_050',
  'mobilenet_v3_small',
  'small_cnn',
]);
const OPTIMIZERS = exhaustive<Optimizer>()(['sgd', 'adamw']);
const SCHEDULES = exhaustive<Schedule>()(['cosine', 'step', 'none']);

function exhaustive<T extends string>() {
  return <const A extends readonly T[]>(
    names: A &
      ([Exclude<T, A[number]>] extends [never] ? unknown : { missing: Exclude<T, A[number]> }),
  ): A => names;
}

const ROLLOUT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MODEL_ID = /^[A-Za-z0-9_.-]{1,128}$/;
// One subject token: classes name release tracks and leases (common/names.ts).
const HARDWARE_CLASS = /^[A-Za-z0-9_-]{1,128}$/;
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Every key of T, so that a field added to a generated gpu-worker type fails tsc here. */
type Shape<T> = { [K in keyof Required<T>]: z.ZodType };

const int = (min: number, what: string) =>
  z.number().int(`must be a whole number ${what}`).min(min, `must be ${what}`);
const positive = (what = 'above 0') => z.number().positive(`must be ${what}`);
const share = () => z.number().min(0, 'must be from 0 to 1').max(1, 'must be from 0 to 1');
const fraction = () =>
  z
    .number()
    .gt(0, 'must be between 0 and 1 (exclusive)')
    .lt(1, 'must be between 0 and 1 (exclusive)');
const nonEmpty = (what: string) => z.string().trim().min(1, `must not be empty: ${what}`);

const FileRefSchema = z
  .strictObject({
    path: nonEmpty('a path on the gpu worker').nullable().optional(),
    object_name: nonEmpty('an object in the models bucket').nullable().optional(),
  } satisfies Shape<FileRef>)
  .refine((f) => Boolean(f.path) !== Boolean(f.object_name), {
    error:
      'give exactly one of path (a file on the gpu worker) or object_name (in the models bucket)',
  });

const TrainingSchema = z.strictObject({
  epochs: int(1, 'of at least 1').optional(),
  batch_size: int(1, 'of at least 1').optional(),
  optimizer: z.enum(OPTIMIZERS).optional(),
  learning_rate: positive().optional(),
  weight_decay: z.number().min(0, 'must be 0 or more').optional(),
  schedule: z.enum(SCHEDULES).optional(),
  step_epochs: int(1, 'of at least 1').optional(),
  step_gamma: positive().optional(),
  augment: z.boolean().optional(),
  seed: int(0, '0 or more').optional(),
} satisfies Shape<TrainingConfig>);

const ExportSchema = z.strictObject({
  opset: int(17, '17 or newer').optional(),
  parity_tolerance: positive().optional(),
  parity_samples: int(1, 'of at least 1').optional(),
} satisfies Shape<ExportConfig>);

const HintSchema = z.strictObject({
  teacher_layer: nonEmpty('a module name of the teacher, e.g. layer2'),
  student_layer: nonEmpty('a module name of the student, e.g. features.block3'),
  weight: positive().optional(),
} satisfies Shape<HintConfig>);

const DatasetSchema = z
  .strictObject({
    source: z.enum(DATASET_SOURCES),
    path: nonEmpty('a file or folder on the gpu worker').nullable().optional(),
    image_size: int(1, 'of at least 1').nullable().optional(),
    grayscale: z.boolean().optional(),
    validation_fraction: fraction().optional(),
    test_fraction: fraction().optional(),
    seed: int(0, '0 or more').optional(),
    max_train_samples: int(1, 'of at least 1').nullable().optional(),
    calibration_samples: int(1, 'of at least 1').optional(),
    holdout_samples: int(0, '0 or more').optional(),
  } satisfies Shape<DatasetSpec>)
  .check((ctx) => {
    const { source, path } = ctx.value;
    if ((source === 'npz' || source === 'image_folder') && !path) {
      ctx.issues.push({
        code: 'custom',
        path: ['path'],
        message: `is required for source "${source}": the ${source === 'npz' ? '.npz file' : 'image folder'} on the gpu worker`,
        input: path,
      });
    }
  });

const TeacherSchema = z
  .strictObject({
    source: z.enum(TEACHER_SOURCES).optional(),
    architecture: z.enum(ARCHITECTURES).optional(),
    file: FileRefSchema.nullable().optional(),
    training: TrainingSchema.optional(),
    export: ExportSchema.optional(),
  } satisfies Shape<TeacherConfig>)
  .check((ctx) => {
    const { source, file } = ctx.value;
    if ((source === 'checkpoint' || source === 'onnx') && !file) {
      ctx.issues.push({
        code: 'custom',
        path: ['file'],
        message: `is required for source "${source}": the ${source === 'onnx' ? '.onnx model' : '.pt state_dict'} as { path } or { object_name }`,
        input: file,
      });
    }
  });

const DistillSchema = z.strictObject({
  temperature: positive().optional(),
  alpha: share().optional(),
  training: TrainingSchema.optional(),
  hint: HintSchema.nullable().optional(),
} satisfies Shape<DistillConfig>);

const SourceSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('distill'),
    teacher: TeacherSchema.default({}),
    student: z.strictObject({
      architecture: z.enum(ARCHITECTURES),
      distill: DistillSchema.optional(),
    }),
  }),
  z.strictObject({ kind: z.literal('onnx'), model: FileRefSchema }),
]);

const W = ROLLOUT_DEFAULTS.waves;
const B = ROLLOUT_DEFAULTS.benchmark;

const WavesSchema = z
  .strictObject({
    percents: z
      .array(z.number().gt(0, 'must be above 0').max(100, 'must be at most 100'))
      .min(1, 'must have at least one wave, ending at 100')
      .default([...W.percents]),
    bakeSeconds: z.number().min(0, 'must be 0 or more').default(W.bakeSeconds),
    maxFailedShare: share().default(W.maxFailedShare),
    minSuccessShare: share().default(W.minSuccessShare),
    maxP95Regression: z.number().min(0, 'must be 0 or more').default(W.maxP95Regression),
  })
  .check((ctx) => {
    const p = ctx.value.percents;
    // Out-of-range entries are reported one by one already.
    if (p.some((v) => !(v > 0 && v <= 100))) return;
    const rising = p.every((v, i) => i === 0 || v > p[i - 1]!);
    if (!rising || p.at(-1) !== 100) {
      ctx.issues.push({
        code: 'custom',
        path: ['percents'],
        message: `must rise to 100, got [${p.join(', ')}]: each wave is the cumulative share of the class, e.g. [10, 50, 100]`,
        input: p,
      });
    }
  });

const BenchmarkSchema = z.strictObject({
  warmupRuns: int(0, '0 or more').default(B.warmupRuns),
  minRuns: int(1, 'of at least 1').default(B.minRuns),
  minSeconds: z.number().min(0, 'must be 0 or more').default(B.minSeconds),
  threads: int(0, "0 or more (0: ONNX Runtime's default)").default(B.threads),
  rounds: int(1, 'of at least 1').max(20, 'must be at most 20').default(B.rounds),
});

const unique = <T>(items: T[]) => new Set(items).size === items.length;

const RolloutSpecSchema = z.strictObject({
  rolloutId: z
    .string()
    .regex(ROLLOUT_ID, 'must be 1 to 64 of A-Z a-z 0-9 _ -, or left out to get a generated one')
    .optional(),
  modelId: z.string().regex(MODEL_ID, 'must be 1 to 128 of A-Z a-z 0-9 _ . -').optional(),
  dataset: DatasetSchema,
  source: SourceSchema,
  accuracyBudget: share().default(ROLLOUT_DEFAULTS.accuracyBudget),
  latencySloMs: positive().nullable().default(ROLLOUT_DEFAULTS.latencySloMs),
  formats: z
    .array(z.enum(VARIANTS))
    .min(1, 'must name at least one format, or be left out to consider all')
    .refine(unique, 'must not repeat a format')
    .optional(),
  maxCandidates: int(1, 'of at least 1').default(ROLLOUT_DEFAULTS.maxCandidates),
  canaries: int(1, 'of at least 1').default(ROLLOUT_DEFAULTS.canaries),
  canaryDevices: z
    .array(z.string().regex(DEVICE_ID, 'must be a device id, as `edgeforge fleet ls` shows it'))
    .min(1, 'must name at least one device, or be left out to draw the canaries')
    .max(100, 'must name at most 100 devices')
    .refine(unique, 'must not repeat a device')
    .optional(),
  canarySeed: int(0, '0 or more').optional(),
  waves: WavesSchema.default(() => WavesSchema.parse({})),
  benchmark: BenchmarkSchema.default(() => BenchmarkSchema.parse({})),
  reportTimeoutSeconds: positive().default(ROLLOUT_DEFAULTS.reportTimeoutSeconds),
  hardwareClasses: z
    .array(
      z
        .string()
        .regex(HARDWARE_CLASS, 'must be a hardware class key, e.g. x86_64-vnni-nofp16-cpu-8g'),
    )
    .min(1, 'must name at least one class, or be left out to include every class')
    .refine(unique, 'must not repeat a class')
    .optional(),
  manifestTtlHours: positive().default(ROLLOUT_DEFAULTS.manifestTtlHours),
});

export interface ParseRolloutSpecOptions {
  /** Clock for the generated rollout id. */
  now?: Date;
}

/**
 * A complete, checked RolloutSpec from what a user wrote: ROLLOUT_DEFAULTS fill what is left out,
 * and a rollout id (`r-<yyyymmdd-hhmmss>-<4 hex>`) is generated when none is given.
 * @throws RolloutSpecError naming every bad field.
 */
export function parseRolloutSpec(
  json: unknown,
  options: ParseRolloutSpecOptions = {},
): RolloutSpec {
  const parsed = RolloutSpecSchema.safeParse(json, { reportInput: true });
  if (!parsed.success) throw new RolloutSpecError(parsed.error.issues.flatMap(toIssues));
  const { rolloutId, ...rest } = parsed.data;
  const spec: RolloutSpec = { rolloutId: rolloutId ?? generateRolloutId(options.now), ...rest };
  return spec;
}

/** `r-20250102-030405-9f3a`: sorts by start time, and unique enough for one operator. */
export function generateRolloutId(now = new Date()): string {
  const iso = now.toISOString(); // 2025-01-02T03:04:05.678Z
  const date = iso.slice(0, 10).replaceAll('-', '');
  const time = iso.slice(11, 19).replaceAll(':', '');
  return `r-${date}-${time}-${randomBytes(2).toString('hex')}`;
}

function discriminatorOf(input: unknown, key: string): unknown {
  return typeof input === 'object' && input !== null
    ? (input as Record<string, unknown>)[key]
    : undefined;
}

function formatPath(path: PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function toIssues(issue: z.core.$ZodIssue): RolloutSpecIssue[] {
  const path = formatPath(issue.path);
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'invalid_type':
      if (path === '')
        return [{ path, problem: `a rollout spec must be a JSON object, got ${show(input)}` }];
      return [
        {
          path,
          problem:
            input === undefined
              ? `is required (${issue.expected})`
              : issue.expected === 'int'
                ? `must be a whole number, got ${show(input)}`
                : `expected ${issue.expected}, got ${show(input)}`,
        },
      ];
    case 'invalid_value':
      return [
        {
          path,
          problem: `is ${show(input)}; expected one of ${issue.values.map((v) => String(v)).join(', ')}`,
        },
      ];
    case 'invalid_union':
      if (issue.discriminator && 'options' in issue && issue.options) {
        // The discriminator's value is on the object, the issue is reported on the discriminator.
        return [
          {
            path,
            problem: `is ${show(discriminatorOf(input, issue.discriminator))}; expected one of ${issue.options.map(String).join(', ')}`,
          },
        ];
      }
      return [{ path, problem: issue.message }];
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: formatPath([...issue.path, key]),
        problem: 'is not a known field: check its spelling and where it is nested',
      }));
    case 'custom':
      return [{ path, problem: issue.message }];
    default:
      return [
        {
          path,
          problem: input === undefined ? issue.message : `${issue.message}, got ${show(input)}`,
        },
      ];
  }
}
