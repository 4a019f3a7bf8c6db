"""The gpu worker's Prometheus metrics and its /metrics + /healthz endpoint.

Activity durations come from a Temporal worker interceptor, training progress from the details
the training activities already heartbeat (edgeforge_gpu.activities.common.training_heartbeat),
so no activity knows about metrics. Labels are the activity name, the outcome and the model
architecture: no rollout id (unbounded), so the series stay a few dozen whatever runs.
"""

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

log = logging.getLogger("edgeforge.gpu_worker.metrics")

DEFAULT_LISTEN = "127.0.0.1:0"

# From a second (describe_environment) to hours (a teacher on a large data set).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))


_LISTEN = re.compile(r"^(?:\[([^\]]+)\]|([^\s:\[\]]+)):(\d{1,5})$")


def parse_listen(address: str) -> tuple[str, int]:
    """host:port or [ipv6]:port; port 0 lets the OS pick one (as common/metrics-server.ts)."""
    match = _LISTEN.match(address)
    if not match or int(match.group(3)) > 65535:
        raise ValueError(f"{address!r} is not host:port (e.g. 0.0.0.0:9468, [::1]:9468)")
    return match.group(1) or match.group(2), int(match.group(3))


def _architecture(args: Iterable[Any]) -> str:
    """The model architecture an activity works on, from its input (student before teacher:
    distillation trains the student), or "" when it names none."""
    for arg in args:
        for owner in (arg, getattr(arg, "student", None), getattr(arg, "teacher", None)):
            value = getattr(owner, "architecture", None) if owner is not None else None
            if isinstance(value, str) and value:
                return value
    return ""


def _outcome(err: BaseException | None) -> str:
    if err is None:
        return "completed"
    if isinstance(err, (CancelledError, asyncio.CancelledError)):
        return "cancelled"
    if isinstance(err, ApplicationError) and err.non_retryable:
        return "failed"
    # Temporal retries anything else.
    return "error"


class WorkerMetrics:
    """The metrics, in a registry of their own (tests run several workers in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.activity_duration = Histogram(
            "edgeforge_gpu_activity_duration_seconds",
            "Time an activity attempt took on this worker, by activity and outcome (completed, "
            "failed: not retried, error: retried by Temporal, cancelled)",
            ["activity", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.activities_running = Gauge(
            "edgeforge_gpu_activities_running",
            "Activity attempts running on this worker",
            ["activity"],
            registry=self.registry,
        )
        labels = ["activity", "architecture"]
        self.training_epoch = Gauge(
            "edgeforge_gpu_training_epoch",
            "Epoch the latest training is in (1-based), by activity and architecture",
            labels,
            registry=self.registry,
        )
        self.training_progress = Gauge(
            "edgeforge_gpu_training_progress_ratio",
            "Share of the latest training done (epochs and batches), 0-1",
            labels,
            registry=self.registry,
        )
        self.training_loss = Gauge(
            "edgeforge_gpu_training_loss",
            "Mean training loss of the latest training's current epoch so far",
            labels,
            registry=self.registry,
        )
        self.training_accuracy = Gauge(
            "edgeforge_gpu_training_accuracy",
            "Accuracy (0-1) of the latest training: split=train over the current epoch so far, "
            "split=validation after the last finished epoch",
            [*labels, "split"],
            registry=self.registry,
        )

    def interceptor(self) -> Interceptor:
        return _MetricsInterceptor(self)

    def expect_activities(self, names: Iterable[str]) -> None:
        """Starts the series of the activities this worker serves at zero, so that the first
        completion is an increase Prometheus sees (a series born at 1 has no increase)."""
        for name in names:
            self.activities_running.labels(activity=name)
            for outcome in ("completed", "failed"):
                self.activity_duration.labels(activity=name, outcome=outcome)

    def observe_progress(self, activity_name: str, architecture: str, details: Any) -> None:
        """Reads a training heartbeat ({phase, epoch, epochs, batch, batches, loss, accuracy,
        validation_accuracy}); other heartbeats (phases without numbers) are ignored."""
        if not isinstance(details, dict) or not {"epoch", "epochs", "loss"} <= details.keys():
            return
        labels = {"activity": activity_name, "architecture": architecture}
        epoch, epochs = int(details["epoch"]), max(1, int(details["epochs"]))
        batches = max(1, int(details.get("batches") or 1))
        batch = int(details.get("batch") or 0)
        self.training_epoch.labels(**labels).set(epoch)
        self.training_progress.labels(**labels).set(
            min(1.0, (epoch - 1 + min(batch, batches) / batches) / epochs)
        )
        self.training_loss.labels(**labels).set(float(details["loss"]))
        if details.get("accuracy") is not None:
            self.training_accuracy.labels(**labels, split="train").set(float(details["accuracy"]))
        if details.get("validation_accuracy") is not None:
            self.training_accuracy.labels(**labels, split="validation").set(
                float(details["validation_accuracy"])
            )

    def serve(self, listen: str, healthy: Callable[[], bool]) -> "MetricsServer":
        """Serves GET /metrics and GET /healthz (200 while `healthy()`, else 503) on a thread."""
        host, port = parse_listen(listen)
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/healthz":
                ok = healthy()
                start_response(
                    "200 OK" if ok else "503 Service Unavailable",
                    [("Content-Type", "text/plain")],
                )
                return [b"ok\n" if ok else b"the worker is not running\n"]
            if path == "/metrics":
                return metrics_app(environ, start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics\n"]

        server_class = _Server6 if ":" in host else _Server
        try:
            server = make_server(host, port, app, server_class, _QuietHandler)
        except OSError as err:
            raise OSError(
                f"cannot serve /metrics on {listen}: {err}"
                + ("; another process has that port: choose another one" if port else "")
            ) from err
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        bound = server.server_address[1]
        url_host = f"[{host}]" if ":" in host else host
        return MetricsServer(
            url=f"http://{url_host}:{bound}/metrics", _server=server, _thread=thread
        )


@dataclass
class MetricsServer:
    url: str
    """e.g. http://127.0.0.1:9468/metrics, with the port actually bound."""
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape is noise


class _MetricsInterceptor(Interceptor):
    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next, self._metrics)


class _ActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, metrics: WorkerMetrics) -> None:
        super().__init__(next)
        self._metrics = metrics
        self._outbound: _ActivityOutbound | None = None

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self._outbound = _ActivityOutbound(outbound, self._metrics)
        super().init(self._outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        if self._outbound is not None:
            self._outbound.activity_name = name
            self._outbound.architecture = _architecture(input.args)
        running = self._metrics.activities_running.labels(activity=name)
        running.inc()
        started = time.monotonic()
        error: BaseException | None = None
        try:
            return await super().execute_activity(input)
        except BaseException as err:
            error = err
            raise
        finally:
            running.dec()
            self._metrics.activity_duration.labels(activity=name, outcome=_outcome(error)).observe(
                time.monotonic() - started
            )


class _ActivityOutbound(ActivityOutboundInterceptor):
    def __init__(self, next: ActivityOutboundInterceptor, metrics: WorkerMetrics) -> None:
        super().__init__(next)
        self._metrics = metrics
        self.activity_name = ""
        self.architecture = ""

    def heartbeat(self, *details: Any) -> None:
        super().heartbeat(*details)
        try:
            if details:
                self._metrics.observe_progress(self.activity_name, self.architecture, details[0])
        except (TypeError, ValueError) as err:  # metrics never fail an activity
            log.debug("heartbeat details not understood as training progress: %s", err)
