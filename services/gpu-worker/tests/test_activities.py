"""The model activities end to end, as the TypeScript workflows call them: by name, with snake_case
JSON, through a real Temporal dev server, storing files in a real nats-server's object store."""

import asyncio
import concurrent.futures
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from edgeforge_gpu.artifacts import ModelStore
from edgeforge_gpu.evaluation.model_facts import sha256_file
from edgeforge_gpu.settings import Settings
from edgeforge_gpu.worker import build_worker

pytestmark = pytest.mark.slow

DIGITS = {"source": "digits"}
TEACHER = {"architecture": "resnet10_w32", "training": {"epochs": 4, "learning_rate": 0.05}}
DISTILL = {"training": {"epochs": 4, "learning_rate": 0.05}}
FAST_VARIANTS = {"latency_runs": 10, "latency_warmup": 2}


@workflow.defn(sandboxed=False)
class CallActivity:
    """Calls one activity by name with a JSON argument, as the TypeScript workflows do."""

    @workflow.run
    async def run(self, name: str, argument: dict) -> dict:
        return await workflow.execute_activity(
            name,
            argument,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )


class Gpu:
    """A Temporal dev server and the gpu worker, driven from synchronous tests."""

    def __init__(self, temporal_bin: str, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.env = self.loop.run_until_complete(
            WorkflowEnvironment.start_local(dev_server_existing_path=temporal_bin, ui=False)
        )
        self.queue = f"test-gpu-{uuid.uuid4()}"
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        client: Client = self.env.client
        self.workers = [
            build_worker(client, self.executor, settings, self.queue),
            Worker(client, task_queue=self.queue, workflows=[CallActivity]),
        ]
        self.tasks = [self.loop.create_task(w.run()) for w in self.workers]

    def call(self, name: str, argument: dict[str, Any]) -> dict[str, Any]:
        return self.loop.run_until_complete(
            self.env.client.execute_workflow(
                CallActivity.run,
                args=[name, argument],
                id=f"wf-{uuid.uuid4()}",
                task_queue=self.queue,
            )
        )

    def close(self) -> None:
        for worker in self.workers:
            self.loop.run_until_complete(worker.shutdown())
        self.loop.run_until_complete(asyncio.gather(*self.tasks, return_exceptions=True))
        self.executor.shutdown()
        self.loop.run_until_complete(self.env.shutdown())
        self.loop.close()


@pytest.fixture(scope="module")
def settings(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(nats_url=nats_url, work_dir=tmp_path_factory.mktemp("gpu-work"))


@pytest.fixture(scope="module")
def gpu(temporal_bin: str, settings: Settings) -> Iterator[Gpu]:
    harness = Gpu(temporal_bin, settings)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope="module")
def teacher(gpu: Gpu) -> dict[str, Any]:
    return gpu.call("prepare_teacher", {"rollout_id": "r-1", "dataset": DIGITS, "teacher": TEACHER})


@pytest.fixture(scope="module")
def student(gpu: Gpu, teacher: dict[str, Any]) -> dict[str, Any]:
    request = {"rollout_id": "r-1", "dataset": DIGITS, "teacher": teacher, "distill": DISTILL}
    return gpu.call("distill_student", request)


def test_prepare_teacher_uploads_the_teacher(teacher, settings):
    assert teacher["kind"] == "pytorch" and teacher["architecture"] == "resnet10_w32"
    assert teacher["onnx_model"]["name"] == "r-1/teacher/fp32.onnx"
    assert teacher["state_dict"]["name"] == "r-1/teacher/model.pt"
    assert teacher["train_logits"] is None
    assert teacher["test_accuracy"] > 0.9 and teacher["parity_max_abs_diff"] < 1e-4
    assert [e["epoch"] for e in teacher["training"]["epochs"]] == [1, 2, 3, 4]
    assert teacher["dataset"]["train_samples"] == 1293
    store = ModelStore(settings.nats_url)
    assert store.stat("r-1/teacher/fp32.onnx").sha256 == teacher["onnx_model"]["sha256"]


def test_distill_student_uploads_the_student_and_the_holdout(student, teacher, settings, tmp_path):
    assert student["onnx_model"]["name"] == "r-1/student/fp32.onnx"
    assert student["holdout"]["name"] == "r-1/holdout.npz" and student["holdout_samples"] == 256
    assert student["test_accuracy"] > 0.8 and student["agreement_with_teacher"] > 0.8
    assert student["opset"] == 17
    assert student["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
    assert student["parameters"] * 4 < teacher["parameters"]
    holdout = ModelStore(settings.nats_url).download(
        "r-1/holdout.npz", tmp_path / "holdout.npz", student["holdout"]["sha256"]
    )
    assert sha256_file(holdout) == student["holdout"]["sha256"]
    with np.load(holdout) as bundle:
        assert bundle["x"].shape == (256, 1, 8, 8) and bundle["y"].dtype == np.int64


def test_build_variants_uploads_accepted_variants_with_their_manifest(gpu, student, settings):
    request = {
        "rollout_id": "r-1",
        "dataset": DIGITS,
        "student": student,
        "formats": ["int8_static_minmax", "fp16", "int4_weight_only"],
        "variants": FAST_VARIANTS,
    }
    result = gpu.call("build_variants", request)
    assert [v["format"] for v in result["variants"]] == request["formats"]
    assert result["teacher_reference"] is None  # none asked for
    store = ModelStore(settings.nats_url)
    for variant in result["variants"]:
        assert variant["status"] == "accepted", variant["reason"]
        assert not variant["reused"]
        name = f"r-1/variants/{variant['format']}.onnx"
        assert variant["model"]["name"] == name
        assert store.stat(name).sha256 == variant["model"]["sha256"]
        manifest = variant["manifest"]
        assert manifest["model_id"] == "r-1-small_cnn"
        assert manifest["variant"]["format"] == variant["format"]
        assert manifest["sha256"] == variant["model"]["sha256"]
        assert manifest["holdout"]["object_name"] == "r-1/holdout.npz"
        assert manifest["central_accuracy"] == variant["metrics"]["test_accuracy"]
        assert manifest["inputs"][0]["shape"] == ["batch", 1, 8, 8]
    int8 = result["variants"][0]
    assert int8["metrics"]["size_ratio"] < 0.3
    assert int8["options"] == {
        "weight_type": "int8",
        "activation_type": "uint8",
        "calibration": "minmax",
        "per_channel": True,
        "reduce_range": False,
        "block_size": None,
        "float_nodes": [],
    }

    # Idempotent per rollout and variant: built ones come back as stored, new ones are built.
    again = gpu.call("build_variants", {**request, "formats": ["fp16", "fp32"]})
    fp16, fp32 = again["variants"]
    assert fp16["reused"] and fp16["model"] == result["variants"][1]["model"]
    assert fp16["manifest"]["created_at"] == result["variants"][1]["manifest"]["created_at"]
    assert not fp32["reused"] and fp32["status"] == "accepted"


def test_the_fp32_teacher_comes_back_as_a_manifest_ready_reference(gpu, student, teacher):
    request = {
        "rollout_id": "r-1",
        "dataset": DIGITS,
        "student": student,
        "formats": ["fp16"],
        "variants": FAST_VARIANTS,
        "teacher": teacher,
    }
    result = gpu.call("build_variants", request)
    reference = result["teacher_reference"]
    assert reference["format"] == "fp32" and reference["status"] == "accepted"
    assert reference["model"] == teacher["onnx_model"]
    manifest = reference["manifest"]
    assert manifest["model_id"] == "r-1-small_cnn-teacher"
    assert manifest["object_name"] == "r-1/teacher/fp32.onnx"
    assert manifest["sha256"] == teacher["onnx_model"]["sha256"]
    assert manifest["holdout"]["object_name"] == student["holdout"]["name"]
    assert manifest["holdout"]["sha256"] == student["holdout"]["sha256"]
    assert manifest["inputs"] == student["inputs"]
    metrics = reference["metrics"]
    assert metrics["test_accuracy"] == pytest.approx(teacher["test_accuracy"], abs=1e-9)
    assert manifest["central_accuracy"] == metrics["test_accuracy"]
    assert manifest["holdout"]["central_accuracy"] == metrics["holdout_accuracy"]
    assert metrics["size_ratio"] > 4  # resnet10_w32 next to small_cnn
    assert metrics["accuracy_drop"] == pytest.approx(
        student["test_accuracy"] - metrics["test_accuracy"]
    )

    again = gpu.call("build_variants", request)["teacher_reference"]
    assert again["reused"] and again["manifest"]["created_at"] == manifest["created_at"]


def test_a_teacher_of_another_input_shape_gives_no_reference(
    gpu, student, teacher, settings, tmp_path
):
    from edgeforge_gpu.models import build_model
    from edgeforge_gpu.steps.export import ExportConfig
    from edgeforge_gpu.steps.export import run as export

    images = np.zeros((4, 1, 12, 12), np.float32)
    other = export(build_model("small_cnn", 1, 10), images, tmp_path / "m.onnx", ExportConfig())
    name = "r-1/other-teacher/fp32.onnx"
    stored = ModelStore(settings.nats_url).upload({name: other.path})[name]
    result = gpu.call(
        "build_variants",
        {
            "rollout_id": "r-1",
            "dataset": DIGITS,
            "student": student,
            "formats": ["fp16"],
            "variants": FAST_VARIANTS,
            "teacher": {**teacher, "onnx_model": dataclasses.asdict(stored)},
        },
    )
    assert result["teacher_reference"] is None
    assert result["variants"][0]["status"] == "accepted"


def test_an_onnx_teacher_from_the_object_store_is_distilled_from_cached_logits(gpu, teacher):
    onnx_teacher = gpu.call(
        "prepare_teacher",
        {
            "rollout_id": "r-2",
            "dataset": DIGITS,
            "teacher": {"source": "onnx", "file": {"object_name": teacher["onnx_model"]["name"]}},
        },
    )
    assert onnx_teacher["kind"] == "onnx" and onnx_teacher["state_dict"] is None
    assert onnx_teacher["train_logits"]["name"] == "r-2/teacher/train_logits.npy"
    assert onnx_teacher["test_accuracy"] == pytest.approx(teacher["test_accuracy"], abs=1e-9)
    student = gpu.call(
        "distill_student",
        {"rollout_id": "r-2", "dataset": DIGITS, "teacher": onnx_teacher, "distill": DISTILL},
    )
    assert student["test_accuracy"] > 0.8


def _failure(gpu: Gpu, name: str, argument: dict[str, Any]) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as failure:
        gpu.call(name, argument)
    cause = failure.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    return cause.cause


def test_bad_requests_fail_at_once_without_retries(gpu, student, tmp_path):
    path = tmp_path / "unlabelled.npz"
    np.savez(path, x=np.zeros((100, 8, 8), np.uint8))
    error = _failure(
        gpu,
        "prepare_teacher",
        {"rollout_id": "r-3", "dataset": {"source": "npz", "path": str(path)}},
    )
    assert error.type == "DatasetError" and error.non_retryable
    assert "no array 'y'" in error.message
    assert error.details[0]["fix"] == "Save it with np.savez(path, x=images, y=labels)"

    error = _failure(
        gpu,
        "build_variants",
        {"rollout_id": "r-1", "dataset": DIGITS, "student": student, "formats": ["int3"]},
    )
    assert error.type == "ConfigError" and "unknown variant format 'int3'" in error.message

    error = _failure(gpu, "prepare_teacher", {"rollout_id": "../etc", "dataset": DIGITS})
    assert error.type == "ConfigError" and "rollout id" in error.message
    assert not Path("../etc/teacher").exists()
