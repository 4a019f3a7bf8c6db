"""A training run killed mid-way resumes from its last checkpoint instead of starting over, and
ends exactly where an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.resume_child import EPOCHS

CHILD = Path(__file__).with_name("resume_child.py")
ROOT = CHILD.parent.parent


def _start(work: Path, result: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(CHILD), str(work), str(result)], env=env)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    work, result = tmp_path / "interrupted", tmp_path / "interrupted.json"
    checkpoint = work / "training-checkpoint.pt"
    child = _start(work, result)
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert child.poll() is None, "the run ended before its first checkpoint appeared"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.01)
    still_running = child.poll() is None
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert still_running, "the run finished before it could be killed; the test proved nothing"
    killed_at = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 1 <= killed_at < EPOCHS and not result.exists()

    resumed = _start(work, result)
    assert resumed.wait(timeout=300) == 0
    report = json.loads(result.read_text())
    assert report["resumed_from_epoch"] == killed_at
    assert report["epochs"] == list(range(1, EPOCHS + 1))

    straight, straight_result = tmp_path / "straight", tmp_path / "straight.json"
    assert _start(straight, straight_result).wait(timeout=300) == 0
    assert json.loads(straight_result.read_text())["resumed_from_epoch"] is None
    # Weights, optimizer, schedule and RNG states all came back: same weights as never killed.
    after_resume = torch.load(work / "model.pt", weights_only=True)
    uninterrupted = torch.load(straight / "model.pt", weights_only=True)
    assert after_resume.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        assert torch.equal(after_resume[name], tensor), name
