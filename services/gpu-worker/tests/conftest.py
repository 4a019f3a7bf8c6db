import os
import shutil

import pytest


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
