"""Entry point: connects to Temporal and serves the gpu activities on task queue edgeforge-gpu.

Configuration comes from the same environment variables as the TypeScript side
(EDGEFORGE_TEMPORAL_ADDRESS, EDGEFORGE_TEMPORAL_NAMESPACE, EDGEFORGE_NATS_URL), overridable by
flags, plus EDGEFORGE_GPU_WORK_DIR for checkpoints and EDGEFORGE_GPU_METRICS_LISTEN for /metrics
and /healthz.
"""

import argparse
import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import signal
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from edgeforge_gpu import TASK_QUEUE
from edgeforge_gpu.activities import build_activities
from edgeforge_gpu.metrics import WorkerMetrics
from edgeforge_gpu.settings import Settings
from edgeforge_gpu.work_dir import prune_work_dir

log = logging.getLogger("edgeforge.gpu_worker")

# EDGEFORGE_LOG_LEVEL uses the TypeScript side's (pino's) level names.
LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "silent": logging.CRITICAL + 1,
}


def build_worker(
    client: Client,
    executor: concurrent.futures.Executor,
    settings: Settings,
    task_queue: str = TASK_QUEUE,
    metrics: WorkerMetrics | None = None,
) -> Worker:
    activities = build_activities(settings)
    if metrics:
        metrics.expect_activities(activities)
    # Activities are synchronous (torch releases the GIL in its kernels); they run on threads.
    return Worker(
        client,
        task_queue=task_queue,
        activities=list(activities.values()),
        activity_executor=executor,
        max_concurrent_activities=2,
        interceptors=[metrics.interceptor()] if metrics else [],
    )


async def connect(address: str, namespace: str) -> Client:
    try:
        return await Client.connect(address, namespace=namespace)
    except Exception as err:
        raise SystemExit(
            f"gpu worker: cannot reach Temporal at {address} ({err}). Start the embedded stack "
            "with `edgeforge up`, or set EDGEFORGE_TEMPORAL_ADDRESS to your Temporal frontend."
        ) from err


async def serve(address: str, namespace: str, task_queue: str, settings: Settings) -> None:
    client = await connect(address, namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics = WorkerMetrics()
    worker: Worker | None = None
    pruning = asyncio.create_task(_prune_hourly(settings))
    endpoint = metrics.serve(
        settings.metrics_listen, healthy=lambda: worker is not None and worker.is_running
    )
    log.info("gpu worker metrics on %s (and /healthz)", endpoint.url)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
            worker = build_worker(client, executor, settings, task_queue, metrics)
            async with worker:
                log.info(
                    "gpu worker ready: task queue %s on %s (namespace %s), models in %s, "
                    "work dir %s",
                    task_queue,
                    address,
                    namespace,
                    settings.nats_url,
                    settings.work_dir,
                )
                await stop.wait()
                log.info("gpu worker stopping: finishing running activities")
    finally:
        pruning.cancel()
        endpoint.close()


async def _prune_hourly(settings: Settings) -> None:
    """Old rollout folders go at start and then every hour (work_dir.py)."""
    while True:
        try:
            await asyncio.to_thread(
                prune_work_dir, settings.work_dir, settings.work_retention_hours
            )
        except OSError as err:
            log.warning("work dir %s: pruning failed: %s", settings.work_dir, err)
        await asyncio.sleep(3600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edgeforge_gpu", description=__doc__)
    parser.add_argument(
        "--temporal-address",
        default=os.environ.get("EDGEFORGE_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
    )
    parser.add_argument(
        "--namespace", default=os.environ.get("EDGEFORGE_TEMPORAL_NAMESPACE", "default")
    )
    parser.add_argument("--task-queue", default=TASK_QUEUE)
    settings = Settings.from_env()
    parser.add_argument("--nats-url", default=settings.nats_url)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=LOG_LEVELS.get(os.environ.get("EDGEFORGE_LOG_LEVEL", "info"), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    settings = dataclasses.replace(settings, nats_url=args.nats_url)
    asyncio.run(serve(args.temporal_address, args.namespace, args.task_queue, settings))


if __name__ == "__main__":
    main()
