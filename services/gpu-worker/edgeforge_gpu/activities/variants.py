"""build_variants: quantized variants of the student, each measured against the accuracy budget;
accepted ones are uploaded to <rollout>/variants/<format>.onnx with their unsigned manifest.

Idempotent per rollout and format: a variant an earlier call built for the same student and
settings is returned as stored (reused: true), not rebuilt.
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
    VariantMetrics,
    VariantResult,
    VariantsResult,
)
from edgeforge_gpu.data import MODEL_LABELS, Labeller, load_dataset
from edgeforge_gpu.errors import ConfigError, DatasetError
from edgeforge_gpu.manifest import HoldoutRef, UnsignedManifest, VariantSpec
from edgeforge_gpu.steps.variants import ACCEPTED, BuiltVariant, Reference


def _result(
    built: BuiltVariant,
    stored: StoredObject | None,
    reference: Reference,
    student: StudentResult,
    model_id: str,
    reference_test_accuracy: float,
) -> VariantResult:
    metrics = manifest = None
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
            if reference is None:  # only when something needs building
                heartbeat("evaluating fp32")
                reference = variants_step.prepare_reference(student_onnx, dataset, work)
            built = variants_step.run(
                name,
                reference,
                dataset,
                request.variants,
                work,
                lambda message, name=name: heartbeat("variants", format=name, step=message),
            )
            stored = None
            if built.status == ACCEPTED and built.path is not None:
                target = object_name(rollout, "variants", f"{name}.onnx")
                stored = store.upload({target: built.path})[target]
            result = _result(
                built, stored, reference, student, model_id, reference.test_accuracy(dataset)
            )
            remember(store, record, request_id, result)
            results.append(result)
        return VariantsResult(
            rollout_id=rollout,
            model_id=model_id,
            student_test_accuracy=student.test_accuracy,
            variants=results,
        )

    return build_variants
