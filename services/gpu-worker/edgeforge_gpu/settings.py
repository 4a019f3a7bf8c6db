"""The worker's configuration, read once from the environment (same variables as the TypeScript
side: common/config.ts)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class Settings:
    nats_url: str
    """NATS server with JetStream, where model files go (EDGEFORGE_NATS_URL)."""
    work_dir: Path
    """Checkpoints and intermediate files, one folder per rollout (EDGEFORGE_GPU_WORK_DIR)."""
    metrics_listen: str = "127.0.0.1:0"
    """host:port of /metrics and /healthz (EDGEFORGE_GPU_METRICS_LISTEN); port 0 picks a free
    one, which the worker logs."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        work_dir = env.get("EDGEFORGE_GPU_WORK_DIR") or "~/.cache/edgeforge/gpu-work"
        return cls(
            nats_url=env.get("EDGEFORGE_NATS_URL") or DEFAULT_NATS_URL,
            work_dir=Path(work_dir).expanduser(),
            metrics_listen=env.get("EDGEFORGE_GPU_METRICS_LISTEN") or "127.0.0.1:0",
        )
