#!/usr/bin/env bash
# Runs the gpu worker's ruff checks and pytest suite in the bootstrapped virtual environment.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
toolchain=$repo/.edgeforge/toolchain.json
[ -f "$toolchain" ] || { echo "no $toolchain: run 'npm run bootstrap' first" >&2; exit 1; }
tool() { node -p "require('$toolchain').$1"; }
python=$(tool python)
venv_bin=$(dirname "$python")
cd "$repo/services/gpu-worker"
"$venv_bin/ruff" check .
"$venv_bin/ruff" format --check .
EDGEFORGE_TEMPORAL_BIN=$(tool temporal) EDGEFORGE_NATS_SERVER_BIN=$(tool natsServer) "$python" -m pytest -q "$@"
