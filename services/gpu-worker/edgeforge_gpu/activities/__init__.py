"""Registry of the activities this worker serves, by the name the workflows call them."""

from collections.abc import Callable
from typing import Any

from edgeforge_gpu.activities.environment import describe_environment
from edgeforge_gpu.activities.import_model import create_import_model
from edgeforge_gpu.activities.student import create_distill_student
from edgeforge_gpu.activities.teacher import create_prepare_teacher
from edgeforge_gpu.activities.variants import create_build_variants
from edgeforge_gpu.artifacts import ModelStore
from edgeforge_gpu.settings import Settings

Activities = dict[str, Callable[..., Any]]


def build_activities(settings: Settings) -> Activities:
    """Every activity, wired to the object store and work folder the settings name."""
    store = ModelStore(settings.nats_url, replicas=settings.nats_replicas)
    return {
        "describe_environment": describe_environment,
        "prepare_teacher": create_prepare_teacher(store, settings.work_dir),
        "distill_student": create_distill_student(store, settings.work_dir),
        "import_model": create_import_model(store, settings.work_dir),
        "build_variants": create_build_variants(store, settings.work_dir),
    }


def activity(name: str, activities: Activities) -> Callable[..., Any]:
    try:
        return activities[name]
    except KeyError:
        known = ", ".join(sorted(activities))
        raise KeyError(f"unknown gpu activity {name!r}; this worker serves: {known}") from None
