import os
import time
from pathlib import Path

import pytest

from edgeforge_gpu.settings import Settings
from edgeforge_gpu.work_dir import prune_work_dir


def _rollout(work: Path, name: str, age_hours: float, now: float) -> Path:
    folder = work / name
    (folder / "variants").mkdir(parents=True)
    model = folder / "variants" / "int8.onnx"
    model.write_bytes(b"x" * 1000)
    old = now - age_hours * 3600
    for path in (model, folder / "variants", folder):
        os.utime(path, (old, old))
    return folder


def test_removes_rollout_folders_untouched_for_the_retention_and_keeps_the_rest(tmp_path: Path):
    now = time.time()
    stale = _rollout(tmp_path, "r-old", 200, now)
    fresh = _rollout(tmp_path, "r-new", 2, now)
    # Old folder, but a checkpoint written an hour ago: the rollout is still running.
    running = _rollout(tmp_path, "r-running", 200, now)
    checkpoint = running / "distill-checkpoint.pt"
    checkpoint.write_bytes(b"c")
    os.utime(checkpoint, (now - 3600, now - 3600))

    pruned = prune_work_dir(tmp_path, retention_hours=168, now=now)

    assert (pruned.folders, pruned.bytes) == (1, 1000)
    assert not stale.exists()
    assert fresh.exists() and running.exists()


def test_zero_retention_keeps_everything(tmp_path: Path):
    now = time.time()
    folder = _rollout(tmp_path, "r-old", 10_000, now)
    assert prune_work_dir(tmp_path, retention_hours=0, now=now).folders == 0
    assert folder.exists()
    assert prune_work_dir(tmp_path / "missing", retention_hours=1).folders == 0


def test_retention_comes_from_the_environment_and_bad_values_are_named():
    assert Settings.from_env({}).work_retention_hours == 168
    assert Settings.from_env({"EDGEFORGE_GPU_WORK_RETENTION_HOURS": "0"}).work_retention_hours == 0
    bad = "EDGEFORGE_GPU_WORK_RETENTION_HOURS='soon' is not a number"
    with pytest.raises(SystemExit, match=bad):
        Settings.from_env({"EDGEFORGE_GPU_WORK_RETENTION_HOURS": "soon"})
