"""Dataclass fields that carry a description: the step configs' documentation, exported to
contracts.schema.json so the TypeScript side sees the same words."""

import dataclasses
from collections.abc import Callable
from typing import Any


def option(default: Any, description: str) -> Any:
    """A field with a default value and a description."""
    return dataclasses.field(default=default, metadata={"description": description})


def option_factory(factory: Callable[[], Any], description: str) -> Any:
    """A field whose default is built per instance (lists, nested configs)."""
    return dataclasses.field(default_factory=factory, metadata={"description": description})


def required(description: str) -> Any:
    """A field without a default."""
    return dataclasses.field(metadata={"description": description})
