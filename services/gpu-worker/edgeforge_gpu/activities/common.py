"""What the model activities share: failure mapping, heartbeats, request fingerprints, reuse of
results an earlier call already stored, and the summaries they return."""

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import activity
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError

from edgeforge_gpu.artifacts import ModelStore, StoredObject
from edgeforge_gpu.contracts import DatasetSummary, EpochSummary, TrainingSummary
from edgeforge_gpu.data import Dataset
from edgeforge_gpu.errors import EdgeforgeError, ModelError
from edgeforge_gpu.steps.teacher import FileRef

if TYPE_CHECKING:  # torch stays out of the worker's start-up
    from edgeforge_gpu.training.loop import FitResult, Progress

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


def permanent_failures(fn: F) -> F:
    """Bad input and failed model checks become non-retryable application failures (Python's
    ApplicationError, TypeScript's ApplicationFailure) whose type is the error class and whose
    details are {problem, fix}; everything else propagates, and Temporal retries it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeforgeError as err:
            raise ApplicationError(
                str(err),
                {"problem": err.problem, "fix": err.fix},
                type=type(err).__name__,
                non_retryable=True,
            ) from err

    return wrapper  # type: ignore[return-value]


def heartbeat(phase: str, **details: Any) -> None:
    activity.heartbeat({"phase": phase, **details})


def training_heartbeat(phase: str) -> "Callable[[Progress], None]":
    return lambda progress: heartbeat(phase, **dataclasses.asdict(progress))


def fingerprint(*parts: Any) -> str:
    """sha256 of the parts' canonical JSON (dataclasses as dicts)."""
    canonical = json.dumps(
        [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored_objects(value: Any) -> list[StoredObject]:
    if isinstance(value, StoredObject):
        return [value]
    if dataclasses.is_dataclass(value):
        return [
            o for f in dataclasses.fields(value) for o in _stored_objects(getattr(value, f.name))
        ]
    if isinstance(value, list):
        return [o for item in value for o in _stored_objects(item)]
    return []


def reuse(store: ModelStore, record: str, request: str, result_type: type[R]) -> R | None:
    """The result an earlier call stored for the same request, if every object it names is
    still there, unchanged; None means the work has to be done."""
    stored = store.get_json(record)
    if not stored or stored.get("request") != request:
        return None
    try:
        result = value_to_type(result_type, stored["result"])
    except (TypeError, ValueError, KeyError):  # stored by a worker whose result type differed
        return None
    for obj in _stored_objects(result):
        current = store.stat(obj.name)
        if current is None or current.sha256 != obj.sha256:
            return None
    return result


def remember(store: ModelStore, record: str, request: str, result: Any) -> None:
    store.put_json(record, {"request": request, "result": dataclasses.asdict(result)})


def resolve_file(ref: FileRef | None, store: ModelStore, folder: Path) -> Path | None:
    """A user's file as a local path, fetched from the models bucket when named there."""
    if ref is None:
        return None
    if (ref.path is None) == (ref.object_name is None):
        raise ModelError("a file reference needs exactly one of path and object_name", "Set one")
    if ref.object_name is not None:
        return store.download(ref.object_name, folder / Path(ref.object_name).name)
    path = Path(ref.path or "").expanduser()
    if not path.is_file():
        raise ModelError(f"{path} is not a file on the gpu worker", "Check the path")
    return path


def dataset_summary(dataset: Dataset) -> DatasetSummary:
    return DatasetSummary(
        name=dataset.name,
        fingerprint=dataset.fingerprint,
        classes=list(dataset.classes),
        input_shape=list(dataset.input_shape),
        train_samples=len(dataset.train),
        validation_samples=len(dataset.validation),
        test_samples=len(dataset.test),
        labels=dataset.labels,
    )


def training_summary(fit: "FitResult", device: str) -> TrainingSummary:
    return TrainingSummary(
        device=device,
        epochs=[EpochSummary(**dataclasses.asdict(record)) for record in fit.history],
        resumed_from_epoch=fit.resumed_from_epoch,
        seconds=fit.seconds,
    )
