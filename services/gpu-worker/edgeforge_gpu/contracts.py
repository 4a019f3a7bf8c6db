"""Payloads exchanged with the TypeScript side through Temporal.

Mirrors common/temporal-api.ts field for field (snake_case JSON). The TypeScript integration
tests parse what these activities return with strict schemas, so a drift fails there.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuEnvironment:
    python_version: str
    torch_version: str
    onnxruntime_version: str
    cuda_available: bool
    cuda_device_name: str | None
    training_device: str
    hostname: str
