"""Running ONNX models with ONNX Runtime's CPU provider: logits, accuracy, reference latency."""

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnxruntime


def open_session(path: Path, threads: int | None = None) -> "onnxruntime.InferenceSession":
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(path: Path, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    session = open_session(path)
    name = session.get_inputs()[0].name
    batch_dim = session.get_inputs()[0].shape[0]
    if isinstance(batch_dim, int):  # a model exported with a fixed batch size
        batch_size = batch_dim
    return np.concatenate(
        [
            session.run(None, {name: x[start : start + batch_size]})[0]
            for start in range(0, len(x), batch_size)
        ]
    )


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Share of samples whose top-1 class matches the reference model's."""
    return float((logits.argmax(1) == reference.argmax(1)).mean())


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p90_ms: float
    threads: int
    runs: int


def reference_latency(
    path: Path, sample: np.ndarray, threads: int, warmup: int = 10, runs: int = 100
) -> Latency:
    """Batch-1 latency on this worker: a reference point, not what a device will measure."""
    session = open_session(path, threads)
    feed = {session.get_inputs()[0].name: sample[:1]}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000)
    deciles = statistics.quantiles(times, n=10)
    return Latency(statistics.median(times), deciles[-1], threads, runs)
