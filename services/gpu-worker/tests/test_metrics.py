"""The gpu worker's metrics: training progress and activity durations through a real Temporal
worker, and the /metrics + /healthz endpoint."""

import asyncio
import concurrent.futures
import dataclasses
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from edgeforge_gpu.contracts import PrepareTeacherInput
from edgeforge_gpu.data import DatasetSpec
from edgeforge_gpu.metrics import WorkerMetrics, parse_listen
from edgeforge_gpu.settings import Settings
from edgeforge_gpu.steps.teacher import TeacherConfig


@activity.defn(name="fake_training")
def fake_training(request: PrepareTeacherInput) -> str:
    """Heartbeats what the real training activities do (training_heartbeat: the phase and a
    training.loop.Progress as a dict), without training anything."""
    for epoch in (1, 2):
        activity.heartbeat(
            {
                "phase": "teacher",
                "epoch": epoch,
                "epochs": 4,
                "batch": 5,
                "batches": 10,
                "loss": 1.0 / epoch,
                "accuracy": 0.5 + epoch / 10,
                "validation_accuracy": None if epoch == 1 else 0.66,
            }
        )
    activity.heartbeat({"phase": "uploading"})
    return request.rollout_id


@activity.defn(name="refused")
def refused() -> None:
    raise ApplicationError("bad input", non_retryable=True)


@workflow.defn(sandboxed=False)
class CallActivity:
    @workflow.run
    async def run(self, name: str, args: list) -> str | None:
        return await workflow.execute_activity(
            name,
            args=args,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


def test_progress_keys_are_the_training_loops():
    from edgeforge_gpu.training.loop import Progress

    fields = {f.name for f in dataclasses.fields(Progress)}
    assert {"epoch", "epochs", "batch", "batches", "loss", "accuracy"} <= fields
    assert "validation_accuracy" in fields


@pytest.mark.slow
def test_activities_report_durations_and_training_progress(temporal_bin: str):
    metrics = WorkerMetrics()
    request = PrepareTeacherInput(
        rollout_id="r-1",
        dataset=DatasetSpec(source="digits"),
        teacher=TeacherConfig(architecture="small_cnn"),
    )

    async def scenario() -> None:
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_bin, ui=False
        ) as env:
            queue = f"test-metrics-{uuid.uuid4()}"
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
                worker = Worker(
                    env.client,
                    task_queue=queue,
                    activities=[fake_training, refused],
                    workflows=[CallActivity],
                    activity_executor=executor,
                    interceptors=[metrics.interceptor()],
                )
                async with worker:
                    result = await env.client.execute_workflow(
                        CallActivity.run,
                        args=["fake_training", [dataclasses.asdict(request)]],
                        id=f"wf-{uuid.uuid4()}",
                        task_queue=queue,
                    )
                    assert result == "r-1"
                    with pytest.raises(Exception):  # noqa: B017 - the workflow fails with it
                        await env.client.execute_workflow(
                            CallActivity.run,
                            args=["refused", []],
                            id=f"wf-{uuid.uuid4()}",
                            task_queue=queue,
                        )

    asyncio.run(scenario())
    value = metrics.registry.get_sample_value
    labels = {"activity": "fake_training", "architecture": "small_cnn"}
    assert value("edgeforge_gpu_training_epoch", labels) == 2
    # Epoch 2 of 4, half of its batches: 1.5 epochs of 4.
    assert value("edgeforge_gpu_training_progress_ratio", labels) == pytest.approx(1.5 / 4)
    assert value("edgeforge_gpu_training_loss", labels) == pytest.approx(0.5)
    assert value("edgeforge_gpu_training_accuracy", {**labels, "split": "train"}) == (
        pytest.approx(0.7)
    )
    assert value("edgeforge_gpu_training_accuracy", {**labels, "split": "validation"}) == (
        pytest.approx(0.66)
    )
    done = {"activity": "fake_training", "outcome": "completed"}
    assert value("edgeforge_gpu_activity_duration_seconds_count", done) == 1
    failed = {"activity": "refused", "outcome": "failed"}
    assert value("edgeforge_gpu_activity_duration_seconds_count", failed) == 1
    assert value("edgeforge_gpu_activities_running", {"activity": "fake_training"}) == 0


def test_expected_activities_start_at_zero():
    metrics = WorkerMetrics()
    metrics.expect_activities(["prepare_teacher"])
    value = metrics.registry.get_sample_value
    done = {"activity": "prepare_teacher", "outcome": "completed"}
    assert value("edgeforge_gpu_activity_duration_seconds_count", done) == 0
    assert value("edgeforge_gpu_activities_running", {"activity": "prepare_teacher"}) == 0


def test_endpoint_serves_metrics_and_health():
    metrics = WorkerMetrics()
    metrics.activity_duration.labels(activity="describe_environment", outcome="completed").observe(
        2
    )
    healthy = True
    server = metrics.serve("127.0.0.1:0", healthy=lambda: healthy)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.startswith("http://127.0.0.1:0/")
        with urllib.request.urlopen(server.url) as response:
            body = response.read().decode()
        assert (
            'edgeforge_gpu_activity_duration_seconds_bucket{activity="describe_environment",'
            'le="5.0",outcome="completed"} 1.0' in body
        )
        assert "process_cpu_seconds_total" in body
        health = server.url.replace("/metrics", "/healthz")
        with urllib.request.urlopen(health) as response:
            assert response.status == 200
        healthy = False
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(health)
        assert refused.value.code == 503
    finally:
        server.close()


def test_settings_and_listen_addresses():
    env = {"EDGEFORGE_GPU_METRICS_LISTEN": "0.0.0.0:9468"}
    assert Settings.from_env(env).metrics_listen == "0.0.0.0:9468"
    assert Settings.from_env({}).metrics_listen == "127.0.0.1:0"
    assert parse_listen("[::1]:9468") == ("::1", 9468)
    for bad in ("9468", "host:", "::1:9468", "host:70000"):
        with pytest.raises(ValueError, match="is not host:port"):
            parse_listen(bad)
