import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  isCancellation,
  log,
  setHandler,
  startChild,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type {
  StudentResult,
  TeacherResult,
  VariantResult,
  VariantsResult,
} from '../../common/gpu-contracts.js';
import {
  classWorkflowId,
  type ClassStatus,
  type RolloutPhase,
  type RolloutSpec,
  type RolloutStatus,
} from '../../common/rollout.js';
import type { VariantName } from '../../common/variants.js';
import { planVariants, type ModelTraits, type Plan } from '../planner/planner.js';
import { classRolloutWorkflow, type ClassCandidate } from './class-rollout.js';
import { cancelReason, classProgress, rolloutStatus } from './definitions.js';
import { gpu, orchestrator, orchestratorLong } from './proxies.js';

/**
 * A rollout: get a teacher and distill a student (or import a trained ONNX model), plan and
 * build quantized variants per hardware class, then let one child workflow per class benchmark
 * them on canaries and roll the winner out in waves. The status query answers at any time; the
 * same status is kept in the rollouts KV bucket for when the workflow is gone.
 */
export async function rolloutWorkflow(spec: RolloutSpec): Promise<RolloutStatus> {
  const now = () => new Date().toISOString();
  const status: RolloutStatus = {
    rolloutId: spec.rolloutId,
    modelId: spec.modelId ?? null,
    phase: spec.source.kind === 'distill' ? 'preparing_teacher' : 'importing_model',
    detail: '',
    startedAt: now(),
    updatedAt: now(),
    finishedAt: null,
    spec,
    teacher: null,
    student: null,
    labels: null,
    classes: [],
    skippedClasses: [],
    error: null,
  };
  let dirty = false;
  // Temporal's cancellation carries no reason into the workflow: the control plane signals it.
  let cancelledBecause = '';
  setHandler(cancelReason, (reason: string) => {
    cancelledBecause = reason;
  });
  setHandler(rolloutStatus, () => status);
  setHandler(classProgress, (update: ClassStatus) => {
    const at = status.classes.findIndex((c) => c.hardwareClass === update.hardwareClass);
    if (at >= 0) status.classes[at] = update;
    else status.classes.push(update);
    dirty = true;
  });
  const save = async () => {
    status.updatedAt = now();
    dirty = false;
    await orchestrator.saveRolloutRecord(status);
  };
  const enter = async (phase: RolloutPhase, detail: string) => {
    status.phase = phase;
    status.detail = detail;
    log.info('rollout phase', { rolloutId: spec.rolloutId, phase, detail });
    await save();
  };
  const children: ChildWorkflowHandle<typeof classRolloutWorkflow>[] = [];

  try {
    const { student, teacher } = await prepareModel(spec, enter);
    status.labels =
      student.dataset.labels === 'model_predictions' ? 'model_predictions' : 'dataset';
    status.student = {
      architecture: student.architecture,
      sizeBytes: student.onnx_model.size_bytes,
      parameters: student.parameters,
      testAccuracy: student.test_accuracy,
    };
    if (teacher) {
      status.teacher = {
        architecture: teacher.architecture ?? 'onnx',
        sizeBytes: teacher.onnx_model.size_bytes,
        parameters: teacher.parameters,
        testAccuracy: teacher.test_accuracy,
      };
    }
    const modelId = spec.modelId ?? `${spec.rolloutId}-${student.architecture}`;
    status.modelId = modelId;

    await enter('planning', 'reading the fleet and measuring the fp32 student');
    const fleet = await orchestratorLong.fleetSummary({ hardwareClasses: spec.hardwareClasses });
    const classes = fleet.classes.filter((c) => c.online > 0);
    status.skippedClasses = fleet.classes
      .filter((c) => c.online === 0)
      .map((c) => ({
        hardwareClass: c.key,
        reason: `no online device (${c.offline} offline): they catch up with a later rollout`,
      }));
    if (classes.length === 0) {
      throw ApplicationFailure.nonRetryable(
        spec.hardwareClasses
          ? `no online device in the hardware classes ${spec.hardwareClasses.join(', ')}`
          : 'no online device in the fleet: start agents (`edgeforge agent`) and try again',
        'NoDevices',
      );
    }
    const variantsRequest = (formats: string[]) => ({
      rollout_id: spec.rolloutId,
      dataset: spec.dataset,
      student,
      formats,
      model_id: modelId,
      variants: { max_accuracy_drop: spec.accuracyBudget },
      teacher,
    });
    const baseline = await gpu.build_variants(variantsRequest(['fp32']));
    const fp32 = baseline.variants[0]!;
    const traits: ModelTraits = {
      architecture: student.architecture,
      parameterCount: student.parameters,
      sizeBytes: student.onnx_model.size_bytes,
      opCounts: fp32.metrics?.op_counts ?? {},
    };
    const measurements = await orchestrator.loadMeasurements({
      architecture: student.architecture,
      hardwareClasses: classes.map((c) => c.key),
    });
    const plans = new Map<string, Plan>(
      classes.map((c) => [
        c.key,
        restrictPlan(
          planVariants({
            hardwareClass: c.hardwareClass,
            model: traits,
            measurements: measurements[c.key] ?? [],
            maxCandidates: spec.maxCandidates,
          }),
          spec.formats,
        ),
      ]),
    );

    const formats = [
      ...new Set([...plans.values()].flatMap((p) => p.candidates.map((c) => c.variant))),
    ];
    await enter('building_variants', `building ${formats.join(', ')}`);
    const built: VariantsResult = await gpu.build_variants(variantsRequest(formats));
    const builtByFormat = new Map<string, VariantResult>(built.variants.map((v) => [v.format, v]));

    await enter('rolling_out', `${classes.length} hardware class(es)`);
    for (const cls of classes) {
      const candidates: ClassCandidate[] = plans.get(cls.key)!.candidates.map((c) => ({
        variant: c.variant,
        planReasons: c.reasons,
        built: builtByFormat.get(c.variant)!,
      }));
      children.push(
        await startChild(classRolloutWorkflow, {
          workflowId: classWorkflowId(spec.rolloutId, cls.key),
          args: [
            {
              rolloutId: spec.rolloutId,
              spec,
              hardwareClass: cls.key,
              onlineDevices: cls.online,
              architecture: student.architecture,
              candidates,
              teacherReference: built.teacher_reference ?? null,
              holdout: student.holdout,
              fp32HoldoutAccuracy: builtByFormat.get('fp32')?.metrics?.holdout_accuracy ?? null,
              teacherSizeBytes: teacher?.onnx_model.size_bytes ?? null,
            },
          ],
        }),
      );
    }
    const results = await awaitChildren(children, () => dirty, save);
    status.classes = results;
    const good = results.filter((c) => c.phase === 'succeeded' || c.phase === 'fell_back');
    const phase: RolloutPhase =
      good.length === results.length
        ? 'succeeded'
        : good.length > 0
          ? 'partially_succeeded'
          : 'failed';
    status.finishedAt = now();
    await enter(
      phase,
      results
        .map((c) => `${c.hardwareClass}: ${c.phase}${c.chosen ? ` (${c.chosen.variant})` : ''}`)
        .join('; '),
    );
    return status;
  } catch (err) {
    return await CancellationScope.nonCancellable(async () => {
      if (isCancellation(err)) {
        // Each class restores its own devices before it ends; wait for them to finish that.
        await Promise.allSettled(children.map((c) => c.result()));
        status.finishedAt = now();
        const why = cancelledBecause ? ` (${cancelledBecause})` : '';
        await enter('cancelled', `cancelled${why}: every device is back on its earlier model`);
        throw err;
      }
      status.error = describeFailure(err);
      status.finishedAt = now();
      await enter('failed', status.error);
      throw ApplicationFailure.nonRetryable(status.error, 'RolloutFailed');
    });
  }
}

/** Teacher + distillation, or the imported model: the fp32 student every variant starts from. */
async function prepareModel(
  spec: RolloutSpec,
  enter: (phase: RolloutPhase, detail: string) => Promise<void>,
): Promise<{ student: StudentResult; teacher: TeacherResult | null }> {
  const base = { rollout_id: spec.rolloutId, dataset: spec.dataset };
  if (spec.source.kind === 'onnx') {
    await enter('importing_model', 'loading and evaluating the ONNX model');
    return {
      student: await gpu.import_model({ ...base, model: spec.source.model }),
      teacher: null,
    };
  }
  await enter('preparing_teacher', `teacher: ${spec.source.teacher.source ?? 'train'}`);
  const teacher = await gpu.prepare_teacher({ ...base, teacher: spec.source.teacher });
  await enter('distilling', `student: ${spec.source.student.architecture}`);
  const student = await gpu.distill_student({
    ...base,
    teacher,
    architecture: spec.source.student.architecture,
    ...(spec.source.student.distill ? { distill: spec.source.student.distill } : {}),
  });
  return { student, teacher };
}

/**
 * The formats a spec names, ranked as the planner ranks them; one the planner left out keeps
 * its exclusion reason, so the result says why it would not have been tried. fp32 stays last.
 */
function restrictPlan(plan: Plan, formats: VariantName[] | undefined): Plan {
  if (!formats) return plan;
  const requested = (variant: VariantName) => {
    const known = [...plan.candidates, ...plan.excluded].find((c) => c.variant === variant);
    const why = plan.candidates.some((c) => c.variant === variant)
      ? []
      : [`requested in the spec although the planner would leave it out`];
    return { variant, reasons: [...why, ...(known?.reasons ?? [])] };
  };
  const rank = (v: VariantName) => {
    const at = plan.candidates.findIndex((c) => c.variant === v);
    return at < 0 ? plan.candidates.length : at;
  };
  const chosen = formats
    .filter((v) => v !== 'fp32')
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .map(requested);
  return {
    candidates: [...chosen, requested('fp32')],
    excluded: plan.candidates
      .filter((c) => c.variant !== 'fp32' && !formats.includes(c.variant))
      .map((c) => ({ variant: c.variant, reasons: ['not among the formats the spec names'] })),
  };
}

/** How often at most the record is saved while classes run. */
const RECORD_INTERVAL = '5 seconds';

/** Waits for every class, saving the record whenever one reports progress. */
async function awaitChildren(
  children: ChildWorkflowHandle<typeof classRolloutWorkflow>[],
  dirty: () => boolean,
  save: () => Promise<void>,
): Promise<ClassStatus[]> {
  let pending = children.length;
  // Settled, not raw, promises: a class that fails while the loop waits must not be unhandled.
  const settled = children.map((child) =>
    child
      .result()
      .then(
        (status) => ({ status }),
        (error: unknown) => ({ error }),
      )
      .finally(() => {
        pending -= 1;
      }),
  );
  while (pending > 0) {
    await condition(() => dirty() || pending === 0);
    if (dirty()) await save();
    // One record every few seconds at most: the progress of many classes is saved together, so
    // the parent's history does not grow with classes × class updates (the query answers live).
    if (pending > 0) await condition(() => pending === 0, RECORD_INTERVAL);
  }
  const outcomes = await Promise.all(settled);
  const failed = outcomes.find((o) => 'error' in o);
  if (failed && 'error' in failed) throw failed.error;
  return outcomes.map((o) => ('status' in o ? o.status : undefined)!);
}

/** The failure in words, with the fix the gpu worker suggests when it gave one. */
function describeFailure(err: unknown): string {
  if (err instanceof ActivityFailure || err instanceof ChildWorkflowFailure) {
    const cause = err.cause;
    const where = err instanceof ActivityFailure ? err.activityType : err.workflowType;
    if (cause instanceof ApplicationFailure) {
      const details = cause.details?.[0] as { fix?: string } | undefined;
      return `${where}: ${cause.message}${details?.fix ? `. ${details.fix}` : ''}`;
    }
    return `${where}: ${cause?.message ?? err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}
