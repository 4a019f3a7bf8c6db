"""Failures that retrying cannot fix: bad input, or a model that fails its own checks.

Activities turn these into non-retryable Temporal application failures typed by the class name;
anything else (a NATS hiccup, an out-of-memory kill) is raised as is and Temporal retries it.
"""

from collections.abc import Iterable


class EdgeforgeError(Exception):
    """Names what went wrong and what to do about it, as one message a user can act on."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}. {fix}")
        self.problem = problem
        self.fix = fix


class DatasetError(EdgeforgeError):
    """The data set is missing, malformed, or cannot be split as asked."""


class ModelError(EdgeforgeError):
    """An architecture, checkpoint or ONNX model does not fit the request or the data."""


class ConfigError(EdgeforgeError):
    """A configuration value is out of range or names something unknown."""


class ParityError(EdgeforgeError):
    """The exported ONNX model does not compute what the PyTorch model computes."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> ConfigError:
    """The error for a registry lookup that missed: lists what the registry does know."""
    return ConfigError(f"unknown {kind} {name!r}", f"Use one of: {', '.join(sorted(known))}")


class ArtifactError(EdgeforgeError):
    """A model file named in a request is not in the object store."""
