"""distill_student: distill the teacher into the student, export it to ONNX with a parity check,
and upload it with the holdout bundle (<rollout>/student/, <rollout>/holdout.npz)."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio import activity

from edgeforge_gpu.activities.common import (
    dataset_summary,
    fingerprint,
    heartbeat,
    permanent_failures,
    remember,
    reuse,
    training_heartbeat,
    training_summary,
)
from edgeforge_gpu.artifacts import ModelStore, object_name
from edgeforge_gpu.contracts import DistillStudentInput, StudentResult, TeacherResult
from edgeforge_gpu.data import Dataset, load_dataset
from edgeforge_gpu.errors import DatasetError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn


def _teacher_for_distillation(
    teacher: TeacherResult, dataset: Dataset, store: ModelStore, folder: Path
) -> "nn.Module | np.ndarray":
    """The PyTorch teacher rebuilt from its weights, or an ONNX teacher's cached logits. Files
    come from the object store (or this worker's copy, when its digest matches)."""
    import numpy as np

    from edgeforge_gpu.steps.teacher import load_pytorch_teacher

    if teacher.train_logits is not None:
        path = store.download(
            teacher.train_logits.name, folder / "train_logits.npy", teacher.train_logits.sha256
        )
        return np.load(path)
    assert teacher.state_dict is not None and teacher.architecture is not None
    path = store.download(teacher.state_dict.name, folder / "model.pt", teacher.state_dict.sha256)
    return load_pytorch_teacher(teacher.architecture, path, dataset)


def create_distill_student(
    store: ModelStore, work_root: Path
) -> Callable[[DistillStudentInput], StudentResult]:
    @activity.defn(name="distill_student")
    @permanent_failures
    def distill_student(request: DistillStudentInput) -> StudentResult:
        import torch

        from edgeforge_gpu.data import write_holdout
        from edgeforge_gpu.evaluation.model_facts import describe_model
        from edgeforge_gpu.evaluation.runtime import (
            accuracy,
            agreement,
            onnx_logits,
            reference_latency,
        )
        from edgeforge_gpu.steps import distill as distill_step
        from edgeforge_gpu.steps import export as export_step
        from edgeforge_gpu.training.device import training_device

        rollout = request.rollout_id
        record = object_name(rollout, "student", "result.json")
        request_id = fingerprint(request)
        earlier = reuse(store, record, request_id, StudentResult)
        if earlier is not None:
            return earlier

        heartbeat("loading data")
        dataset = load_dataset(request.dataset)
        if dataset.fingerprint != request.teacher.dataset.fingerprint:
            raise DatasetError(
                "the data set differs from the one the teacher was prepared with",
                "Pass the same DatasetSpec to prepare_teacher and distill_student",
            )
        work = work_root / rollout / "student"
        teacher = _teacher_for_distillation(
            request.teacher, dataset, store, work_root / rollout / "teacher"
        )
        student = distill_step.run(
            request.architecture,
            request.distill,
            dataset,
            teacher,
            work,
            fingerprint(request_id, dataset.fingerprint),
            training_heartbeat("distill"),
        )
        heartbeat("exporting")
        exported = export_step.run(
            student.model, dataset.test.x, work / "fp32.onnx", request.export
        )
        torch.save(student.model.state_dict(), work / "model.pt")
        holdout = work_root / rollout / "holdout.npz"
        write_holdout(dataset.holdout, holdout)

        heartbeat("evaluating")
        teacher_onnx = store.download(
            request.teacher.onnx_model.name,
            work_root / rollout / "teacher" / "fp32.onnx",
            request.teacher.onnx_model.sha256,
        )
        test_logits = onnx_logits(exported.path, dataset.test.x)
        facts = describe_model(exported.path)
        heartbeat("uploading")
        stored = store.upload(
            {
                object_name(rollout, "student", "fp32.onnx"): exported.path,
                object_name(rollout, "student", "model.pt"): work / "model.pt",
                object_name(rollout, "holdout.npz"): holdout,
            }
        )
        result = StudentResult(
            rollout_id=rollout,
            architecture=request.architecture,
            dataset=dataset_summary(dataset),
            onnx_model=stored[object_name(rollout, "student", "fp32.onnx")],
            state_dict=stored[object_name(rollout, "student", "model.pt")],
            holdout=stored[object_name(rollout, "holdout.npz")],
            holdout_samples=len(dataset.holdout),
            parameters=student.parameters,
            opset=facts.opset,
            inputs=facts.inputs,
            outputs=facts.outputs,
            validation_accuracy=accuracy(
                onnx_logits(exported.path, dataset.validation.x), dataset.validation.y
            ),
            test_accuracy=accuracy(test_logits, dataset.test.y),
            teacher_test_accuracy=request.teacher.test_accuracy,
            agreement_with_teacher=agreement(
                test_logits, onnx_logits(teacher_onnx, dataset.test.x)
            ),
            parity_max_abs_diff=exported.parity_max_abs_diff,
            latency_ms=reference_latency(exported.path, dataset.test.x[:1], 1).median_ms,
            training=training_summary(student.fit, training_device().type),
        )
        remember(store, record, request_id, result)
        return result

    return distill_student
