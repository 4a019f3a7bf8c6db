"""The worker's configuration, read once from the environment (same variables as the TypeScript
side: common/config.ts)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_REPLICAS_MAX = 5  # common/config.ts NATS_REPLICAS_MAX: JetStream's limit


@dataclass(frozen=True)
class Settings:
    nats_url: str
    """NATS server with JetStream, where model files go (EDGEFORGE_NATS_URL): one URL, or the
    nodes of one cluster separated by commas."""
    work_dir: Path
    """Checkpoints and intermediate files, one folder per rollout (EDGEFORGE_GPU_WORK_DIR)."""
    work_retention_hours: float = 168.0
    """Rollout folders in work_dir untouched this long are removed, default a week, 0 keeps them
    (EDGEFORGE_GPU_WORK_RETENTION_HOURS): their artifacts are in the Object Store."""
    metrics_listen: str = "127.0.0.1:0"
    """host:port of /metrics and /healthz (EDGEFORGE_GPU_METRICS_LISTEN); port 0 picks a free
    one, which the worker logs."""
    nats_replicas: int = 1
    """Replicas of the object store when this worker creates it (EDGEFORGE_NATS_REPLICAS, 1 to 5,
    the same variable as the TypeScript side): 3 on a three-node NATS cluster."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        work_dir = env.get("EDGEFORGE_GPU_WORK_DIR") or "~/.cache/edgeforge/gpu-work"
        return cls(
            nats_url=env.get("EDGEFORGE_NATS_URL") or DEFAULT_NATS_URL,
            work_dir=Path(work_dir).expanduser(),
            work_retention_hours=_hours(env, "EDGEFORGE_GPU_WORK_RETENTION_HOURS", 168.0),
            metrics_listen=env.get("EDGEFORGE_GPU_METRICS_LISTEN") or "127.0.0.1:0",
            nats_replicas=_replicas(env, "EDGEFORGE_NATS_REPLICAS"),
        )


def _replicas(env: Mapping[str, str], name: str) -> int:
    text = env.get(name)
    if text is None:
        return 1
    if text.strip() not in {str(n) for n in range(1, NATS_REPLICAS_MAX + 1)}:
        raise SystemExit(
            f"{name}={text!r}: expected a whole number from 1 to {NATS_REPLICAS_MAX}: how many"
            " JetStream servers keep a copy of every bucket (1 for a single nats-server, 3 for a"
            " three-node cluster)"
        )
    return int(text)


def _hours(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SystemExit(f"{name}={text!r} is not a number of hours (0 keeps everything)") from None
    if value < 0:
        raise SystemExit(f"{name}={text!r} must be 0 or more hours (0 keeps everything)")
    return value
