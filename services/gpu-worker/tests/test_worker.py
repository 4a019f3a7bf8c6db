"""The worker serves its activities through a real Temporal dev server."""

import asyncio
import concurrent.futures
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from edgeforge_gpu.settings import Settings
from edgeforge_gpu.worker import build_worker


@workflow.defn(sandboxed=False)
class CallByName:
    """Calls an activity by name, as the TypeScript workflows do."""

    @workflow.run
    async def run(self, name: str) -> dict:
        return await workflow.execute_activity(name, start_to_close_timeout=timedelta(seconds=60))


@pytest.mark.slow
def test_serves_describe_environment_on_the_gpu_queue(temporal_bin: str, tmp_path):
    settings = Settings(nats_url="nats://127.0.0.1:1", work_dir=tmp_path)

    async def scenario() -> dict:
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_bin,
            ui=False,
        ) as env:
            queue = f"test-gpu-{uuid.uuid4()}"
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
                activities = build_worker(env.client, executor, settings, queue)
                workflows = Worker(env.client, task_queue=queue, workflows=[CallByName])
                async with activities, workflows:
                    return await env.client.execute_workflow(
                        CallByName.run,
                        "describe_environment",
                        id=f"wf-{uuid.uuid4()}",
                        task_queue=queue,
                    )

    result = asyncio.run(scenario())
    import torch

    assert result["torch_version"] == torch.__version__
    assert result["cuda_available"] is torch.cuda.is_available()
