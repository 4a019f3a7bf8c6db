#!/usr/bin/env bash
# The whole test suite, as `npm test` runs it after the bootstrap: static checks, the gpu
# worker's pytest suite, then vitest's unit and integration projects against real services.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
section() { printf '\n== %s ==\n' "$*"; }
section "static checks (typecheck, eslint, buf lint, prettier)"
npm run --silent check
section "gpu worker (ruff, pytest)"
bash scripts/pytest.sh
section "vitest (unit, then integration against nats-server, Temporal and the gpu worker)"
npx vitest run "$@"
