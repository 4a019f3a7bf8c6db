"""build_variants: quantized variants of the student, each measured against the accuracy budget;
accepted ones are uploaded to <rollout>/variants/<format>.onnx with their unsigned manifest.

Given the teacher, the fp32 teacher is measured the same way and returned as teacher_reference,
with a manifest of its own, so canary devices can measure the chosen variant's speedup against it.

Idempotent per rollout and format: a variant an earlier call built for the same student and
settings is returned as stored (reused: true), not rebuilt; the teacher reference too.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity

from edgeforge_gpu.activities.common import (
    fingerprint,
    heartbeat,
    permanent_failures,
    remember,
    reuse,
)
from edgeforge_gpu.artifacts import ModelStore, StoredObject, object_name
from edgeforge_gpu.contracts import (
    BuildVariantsInput,
    StudentResult,
    TeacherResult,
    VariantMetrics,
    VariantResult,
    VariantsResult,
)
from edgeforge_gpu.data import MODEL_LABELS, Dataset, Labeller, load_dataset
from edgeforge_gpu.errors import ConfigError, DatasetError
from edgeforge_gpu.evaluation.model_facts import TensorSpec, describe_model
from edgeforge_gpu.manifest import HoldoutRef, UnsignedManifest, VariantSpec
from edgeforge_gpu.steps.variants import ACCEPTED, BuiltVariant, Reference


def _same_input(model: list[TensorSpec], student: list[TensorSpec]) -> bool:
    """Whether `model` takes what the student takes: one input of the same type and C, H, W (the
    batch and other named dimensions match anything)."""
    if len(model) != 1 or len(student) != 1 or model[0].dtype != student[0].dtype:
        return False
    ours, theirs = model[0].shape, student[0].shape
    return len(ours) == len(theirs) and all(
        a == b or isinstance(a, str) or isinstance(b, str)
        for a, b in zip(ours, theirs, strict=True)
    )


def _result(
    built: BuiltVariant,
    stored: StoredObject | None,
    reference: Reference,
    student: StudentResult,
    model_id: str,
    dataset: Dataset,
) -> VariantResult:
    metrics = manifest = None
    reference_test_accuracy = reference.test_accuracy(dataset)
    if built.facts is not None and built.latency is not None:
        assert built.test_accuracy is not None and built.validation_accuracy is not None
        assert built.holdout_accuracy is not None and built.agreement is not None
        metrics = VariantMetrics(
            validation_accuracy=built.validation_accuracy,
            test_accuracy=built.test_accuracy,
            holdout_accuracy=built.holdout_accuracy,
            accuracy_drop=reference_test_accuracy - built.test_accuracy,
            agreement=built.agreement,
            size_bytes=built.facts.size_bytes,
            size_ratio=built.facts.size_bytes / reference.size_bytes,
            op_counts=built.facts.op_counts,
            latency_ms=built.latency.median_ms,
            latency_p90_ms=built.latency.p90_ms,
            latency_threads=built.latency.threads,
        )
        if stored is not None:
            manifest = UnsignedManifest(
                model_id=model_id,
                variant=VariantSpec(format=built.format, options=built.options),
                object_name=stored.name,
                sha256=stored.sha256,
                size_bytes=stored.size_bytes,
                opset=built.facts.opset,
                inputs=built.facts.inputs,
                outputs=built.facts.outputs,
                central_accuracy=built.test_accuracy,
                holdout=HoldoutRef(
                    object_name=student.holdout.name,
                    sha256=student.holdout.sha256,
                    samples=student.holdout_samples,
                    central_accuracy=built.holdout_accuracy,
                ),
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
    return VariantResult(
        format=built.format,
        status=built.status,
        reason=built.reason,
        options=built.options,
        model=stored,
        metrics=metrics,
        manifest=manifest,
        reused=False,
    )


def _labeller(student: StudentResult, student_onnx: Path) -> Labeller | None:
    """Unlabelled images are labelled by the imported model again, exactly as import_model did,
    so the splits (and their fingerprint) are the same."""
    from edgeforge_gpu.evaluation.runtime import onnx_logits

    if student.dataset.labels != MODEL_LABELS:
        return None
    return lambda x: onnx_logits(student_onnx, x)


def _teacher_reference(
    store: ModelStore,
    request: BuildVariantsInput,
    teacher: TeacherResult,
    model_id: str,
    dataset: Dataset,
    work: Path,
    fp32_student: Callable[[], Reference],
) -> VariantResult | None:
    """The fp32 teacher measured like a variant, with a manifest as `<model_id>-teacher`; None
    when it takes other inputs than the student. Stored, and reused, like a variant."""
    from edgeforge_gpu.steps import variants as variants_step

    student = request.student
    record = object_name(request.rollout_id, "variants", "teacher_reference.json")
    request_id = fingerprint(
        teacher.onnx_model, student.onnx_model, student.holdout, request.variants, model_id
    )
    earlier = reuse(store, record, request_id, VariantResult)
    if earlier is not None:
        return replace(earlier, reused=True)
    teacher_onnx = store.download(
        teacher.onnx_model.name, work / "teacher.onnx", teacher.onnx_model.sha256
    )
    # A teacher of another input shape cannot run on the student's inputs, so there is nothing to
    # compare on a device; that is no reason to fail the variants.
    if not _same_input(describe_model(teacher_onnx).inputs, student.inputs):
        return None
    heartbeat("evaluating the teacher")
    built = variants_step.measure_fp32(
        teacher_onnx,
        "the fp32 teacher: the reference for on-device speedup",
        fp32_student(),
        dataset,
        request.variants,
    )
    result = _result(
        built, teacher.onnx_model, fp32_student(), student, f"{model_id}-teacher", dataset
    )
    remember(store, record, request_id, result)
    return result


def create_build_variants(
    store: ModelStore, work_root: Path
) -> Callable[[BuildVariantsInput], VariantsResult]:
    @activity.defn(name="build_variants")
    @permanent_failures
    def build_variants(request: BuildVariantsInput) -> VariantsResult:
        from edgeforge_gpu.quantization.formats import variant_format
        from edgeforge_gpu.steps import variants as variants_step

        rollout = request.rollout_id
        student = request.student
        model_id = request.model_id or f"{rollout}-{student.architecture}"
        if not request.formats:
            raise ConfigError("no variant formats requested", "List at least one in formats")
        for name in request.formats:  # every name is known before any work starts
            variant_format(name)
        request.variants.check()

        work = work_root / rollout / "variants"
        # Not fp32.onnx: that is the fp32 variant's name, which its pass writes as a copy.
        student_onnx = store.download(
            student.onnx_model.name, work / "student.onnx", student.onnx_model.sha256
        )
        heartbeat("loading data")
        dataset = load_dataset(request.dataset, label_with=_labeller(student, student_onnx))
        if dataset.fingerprint != student.dataset.fingerprint:
            raise DatasetError(
                "the data set differs from the one the student was trained on",
                "Pass the same DatasetSpec to distill_student (or import_model) and build_variants",
            )
        reference: Reference | None = None

        def fp32_student() -> Reference:  # evaluated only when something needs building
            nonlocal reference
            if reference is None:
                heartbeat("evaluating fp32")
                reference = variants_step.prepare_reference(student_onnx, dataset, work)
            return reference

        results = []
        for name in request.formats:
            record = object_name(rollout, "variants", f"{name}.json")
            request_id = fingerprint(
                student.onnx_model, student.holdout, request.variants, name, model_id
            )
            earlier = reuse(store, record, request_id, VariantResult)
            if earlier is not None:
                results.append(replace(earlier, reused=True))
                continue
            built = variants_step.run(
                name,
                fp32_student(),
                dataset,
                request.variants,
                work,
                lambda message, name=name: heartbeat("variants", format=name, step=message),
            )
            stored = None
            if built.status == ACCEPTED and built.path is not None:
                target = object_name(rollout, "variants", f"{name}.onnx")
                stored = store.upload({target: built.path})[target]
            result = _result(built, stored, fp32_student(), student, model_id, dataset)
            remember(store, record, request_id, result)
            results.append(result)

        teacher_reference = None
        if request.teacher is not None:
            teacher_reference = _teacher_reference(
                store, request, request.teacher, model_id, dataset, work, fp32_student
            )
        return VariantsResult(
            rollout_id=rollout,
            model_id=model_id,
            student_test_accuracy=student.test_accuracy,
            variants=results,
            teacher_reference=teacher_reference,
        )

    return build_variants
