"""prepare_teacher: train, load or wrap the teacher; upload it (and an ONNX teacher's cached
logits) to <rollout>/teacher/."""

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
    training_heartbeat,
    training_summary,
)
from edgeforge_gpu.artifacts import ModelStore, StoredObject, object_name
from edgeforge_gpu.contracts import PrepareTeacherInput, TeacherResult
from edgeforge_gpu.data import load_dataset


def create_prepare_teacher(
    store: ModelStore, work_root: Path
) -> Callable[[PrepareTeacherInput], TeacherResult]:
    @activity.defn(name="prepare_teacher")
    @permanent_failures
    def prepare_teacher(request: PrepareTeacherInput) -> TeacherResult:
        from edgeforge_gpu.evaluation.runtime import reference_latency
        from edgeforge_gpu.steps import teacher as teacher_step
        from edgeforge_gpu.training.device import training_device

        rollout = request.rollout_id
        request.teacher.check()
        record = object_name(rollout, "teacher", "result.json")
        request_id = fingerprint(request)
        earlier = reuse(store, record, request_id, TeacherResult)
        if earlier is not None:
            return earlier

        heartbeat("loading data")
        dataset = load_dataset(request.dataset)
        work = work_root / rollout / "teacher"
        teacher = teacher_step.run(
            request.teacher,
            dataset,
            resolve_file(request.teacher.file, store, work / "input"),
            work,
            fingerprint(request_id, dataset.fingerprint),
            training_heartbeat("teacher"),
        )
        heartbeat("uploading")
        files = {"fp32.onnx": teacher.onnx_path}
        if teacher.state_dict_path:
            files["model.pt"] = teacher.state_dict_path
        if teacher.train_logits_path:
            files["train_logits.npy"] = teacher.train_logits_path
        stored = store.upload({object_name(rollout, "teacher", k): p for k, p in files.items()})

        def named(key: str) -> StoredObject | None:
            return stored.get(object_name(rollout, "teacher", key))

        result = TeacherResult(
            rollout_id=rollout,
            kind=teacher.kind,
            architecture=teacher.architecture,
            dataset=dataset_summary(dataset),
            onnx_model=stored[object_name(rollout, "teacher", "fp32.onnx")],
            state_dict=named("model.pt"),
            train_logits=named("train_logits.npy"),
            parameters=teacher.parameters,
            validation_accuracy=teacher.validation_accuracy,
            test_accuracy=teacher.test_accuracy,
            parity_max_abs_diff=teacher.parity_max_abs_diff,
            latency_ms=reference_latency(teacher.onnx_path, dataset.test.x[:1], 1).median_ms,
            training=training_summary(teacher.fit, training_device().type) if teacher.fit else None,
        )
        remember(store, record, request_id, result)
        return result

    return prepare_teacher
