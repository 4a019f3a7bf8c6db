import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeforge_gpu.data import Dataset, DatasetSpec, load_dataset

NATS_LISTENING = re.compile(r"Listening for client connections on 127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="session")
def temporal_bin() -> str:
    """The Temporal CLI the bootstrap installed (scripts/pytest.sh passes its path)."""
    path = os.environ.get("EDGEFORGE_TEMPORAL_BIN") or shutil.which("temporal")
    if not path:
        pytest.fail(
            "no Temporal CLI: run `npm run bootstrap` (or set EDGEFORGE_TEMPORAL_BIN) first",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nats-server with JetStream on a port it picks itself (no race for a free one)."""
    # The bootstrap's nats-server (scripts/pytest.sh passes its path), else one on PATH.
    binary = os.environ.get("EDGEFORGE_NATS_SERVER_BIN") or shutil.which("nats-server") or ""
    if not Path(binary).is_file():
        pytest.fail("no nats-server: run `npm run bootstrap` first", pytrace=False)
    folder = tmp_path_factory.mktemp("nats")
    log = folder / "nats-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", str(folder / "jetstream")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while not (match := NATS_LISTENING.search(log.read_text())):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nats-server did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{match.group(1)}"
    finally:
        server.kill()
        server.wait()


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset(DatasetSpec("digits"))
