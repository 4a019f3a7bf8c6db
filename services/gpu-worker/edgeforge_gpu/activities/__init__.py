"""Registry of the activities this worker serves, by the name the workflows call them."""

from collections.abc import Callable
from typing import Any

from edgeforge_gpu.activities.environment import describe_environment

ACTIVITIES: dict[str, Callable[..., Any]] = {
    "describe_environment": describe_environment,
}


def activity(name: str) -> Callable[..., Any]:
    try:
        return ACTIVITIES[name]
    except KeyError:
        known = ", ".join(sorted(ACTIVITIES))
        raise KeyError(f"unknown gpu activity {name!r}; this worker serves: {known}") from None
