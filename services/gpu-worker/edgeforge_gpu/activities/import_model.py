"""import_model ("bring your own model"): an already trained ONNX classifier becomes the rollout's
fp32 student, uploaded with the holdout bundle (<rollout>/student/fp32.onnx, <rollout>/holdout.npz)
and described by a StudentResult, so build_variants takes it as it takes a distilled one."""

from collections.abc import Callable
from pathlib import Path

from temporalio import activity

from edgeforge_gpu.activities.common import (
    dataset_summary,
    fingerprint,
    heartbeat,
    permanent_failures,
    remember,
    resolve_file,
    reuse,
)
from edgeforge_gpu.artifacts import ModelStore, object_name
from edgeforge_gpu.contracts import ImportModelInput, StudentResult
from edgeforge_gpu.evaluation.model_facts import sha256_file


def create_import_model(
    store: ModelStore, work_root: Path
) -> Callable[[ImportModelInput], StudentResult]:
    @activity.defn(name="import_model")
    @permanent_failures
    def import_model(request: ImportModelInput) -> StudentResult:
        from edgeforge_gpu.data import write_holdout
        from edgeforge_gpu.evaluation.model_facts import describe_model
        from edgeforge_gpu.evaluation.runtime import accuracy, onnx_logits, reference_latency
        from edgeforge_gpu.steps import import_model as import_step

        rollout = request.rollout_id
        record = object_name(rollout, "student", "result.json")  # checks the id before any path
        work = work_root / rollout / "student"
        heartbeat("fetching the model")
        source = resolve_file(request.model, store, work / "input")
        assert source is not None, "ImportModelInput.model is required"
        # The file's digest too: a model replaced at the same path is a different request.
        request_id = fingerprint(request, sha256_file(source))
        earlier = reuse(store, record, request_id, StudentResult)
        if earlier is not None:
            return earlier

        heartbeat("checking the model, loading data")
        imported = import_step.run(source, request.dataset, work)
        dataset = imported.dataset
        holdout = work_root / rollout / "holdout.npz"
        write_holdout(dataset.holdout, holdout)

        heartbeat("evaluating")
        facts = describe_model(imported.path)
        heartbeat("uploading")
        stored = store.upload(
            {
                object_name(rollout, "student", "fp32.onnx"): imported.path,
                object_name(rollout, "holdout.npz"): holdout,
            }
        )
        result = StudentResult(
            rollout_id=rollout,
            architecture=request.architecture_label,
            dataset=dataset_summary(dataset),
            onnx_model=stored[object_name(rollout, "student", "fp32.onnx")],
            state_dict=None,
            holdout=stored[object_name(rollout, "holdout.npz")],
            holdout_samples=len(dataset.holdout),
            parameters=imported.parameters,
            opset=facts.opset,
            inputs=facts.inputs,
            outputs=facts.outputs,
            validation_accuracy=accuracy(
                onnx_logits(imported.path, dataset.validation.x), dataset.validation.y
            ),
            test_accuracy=accuracy(onnx_logits(imported.path, dataset.test.x), dataset.test.y),
            teacher_test_accuracy=None,
            agreement_with_teacher=None,
            parity_max_abs_diff=None,
            latency_ms=reference_latency(imported.path, dataset.test.x[:1], 1).median_ms,
            training=None,
        )
        remember(store, record, request_id, result)
        return result

    return import_model
