#!/usr/bin/env bash
# Installs everything edgeforge needs to run for real: npm dependencies, nats-server, the Temporal
# dev server, the gpu worker's Python environment, Prometheus and the Fashion-MNIST data set.
#
# Idempotent: every step checks first and says when it skips. Heavy things are cached outside the
# repository (EDGEFORGE_CACHE, default ~/.cache/edgeforge) so fresh clones and CI reuse them.
# At the end it writes .edgeforge/toolchain.json: the paths the stack launcher and tests use.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EDGEFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeforge}
temporal_cli_version=v1.5.1
fashion_mnist_dir=/usr/share/datasets/fashion-mnist
steps=6
step=0
started=$(date +%s)

say() { printf '[bootstrap] %s\n' "$*"; }
begin() { step=$((step + 1)); say "($step/$steps) $*"; }
skip() { say "      skipped: $*"; }
fail() {
  printf '[bootstrap] FAILED: %s\n' "$1" >&2
  shift
  for line in "$@"; do printf '[bootstrap]   %s\n' "$line" >&2; done
  exit 1
}
is_root() { [ "$(id -u)" = 0 ]; }

apt_updated=0
apt_install() {
  # apt_install PACKAGE... : installs Debian packages, or explains how when we cannot.
  if ! command -v apt-get >/dev/null; then
    fail "need $* but this machine has no apt-get" "install $* with your system's package manager, then rerun"
  fi
  if ! is_root; then
    fail "need the Debian packages: $*" "run: sudo apt-get install -y $*   (then rerun this command)"
  fi
  if [ "$apt_updated" = 0 ]; then
    say "      apt-get update"
    apt-get update -qq || fail "apt-get update failed" "check the Debian mirror is reachable, then rerun"
    apt_updated=1
  fi
  say "      apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
    fail "apt-get install $* failed" "run it by hand to see why: apt-get install -y $*"
}

mkdir -p "$cache"
# Two runs at once (two clones, or CI beside a session) take turns instead of racing on the cache.
exec 9>"$cache/.bootstrap.lock"
flock 9

# 1. npm dependencies ---------------------------------------------------------------------------
begin "npm dependencies"
command -v node >/dev/null || fail "node is not installed" "install Node.js 20.19 or newer (https://nodejs.org)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "Node.js $(node --version) is too old" "install Node.js 20.19 or newer"
lock_hash=$(cat "$repo/package-lock.json" <(node --version) | sha256sum | cut -c1-16)
if [ -f "$repo/node_modules/.edgeforge-lock" ] && [ "$(cat "$repo/node_modules/.edgeforge-lock")" = "$lock_hash" ]; then
  skip "node_modules matches package-lock.json"
else
  say "      npm ci (the npm cache in ~/.npm makes repeats fast)"
  (cd "$repo" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) ||
    fail "npm ci failed" "check the npm registry is reachable (npm ping), then rerun"
  echo "$lock_hash" >"$repo/node_modules/.edgeforge-lock"
fi

# 2. nats-server --------------------------------------------------------------------------------
begin "nats-server (JetStream)"
if command -v nats-server >/dev/null; then
  skip "$(nats-server --version) at $(command -v nats-server)"
else
  apt_install nats-server
fi
nats_bin=$(command -v nats-server)

# 3. Temporal dev server ------------------------------------------------------------------------
begin "Temporal CLI (dev server)"
if [ -n "${EDGEFORGE_TEMPORAL_BIN:-}" ]; then
  [ -x "$EDGEFORGE_TEMPORAL_BIN" ] || fail "EDGEFORGE_TEMPORAL_BIN=$EDGEFORGE_TEMPORAL_BIN is not an executable"
  temporal_bin=$EDGEFORGE_TEMPORAL_BIN
  skip "using EDGEFORGE_TEMPORAL_BIN=$temporal_bin"
elif command -v temporal >/dev/null; then
  temporal_bin=$(command -v temporal)
  skip "temporal already on PATH at $temporal_bin"
elif [ -x "$cache/bin/temporal" ]; then
  temporal_bin=$cache/bin/temporal
  skip "built before: $temporal_bin"
else
  command -v go >/dev/null || fail "the Temporal CLI is missing and Go is not installed to build it" \
    "either install the Temporal CLI (https://docs.temporal.io/cli) so that 'temporal' is on PATH," \
    "or install Go 1.22+ and rerun: the bootstrap then builds it once into $cache/bin"
  say "      go install github.com/temporalio/cli/cmd/temporal@$temporal_cli_version (one time, several minutes)"
  mkdir -p "$cache/bin"
  GOBIN="$cache/bin" GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@$temporal_cli_version" ||
    fail "building the Temporal CLI failed" "check the Go module proxy is reachable (go env GOPROXY), then rerun"
  temporal_bin=$cache/bin/temporal
fi

# 4. Python environment for the gpu worker --------------------------------------------------------
begin "Python environment (torch, onnxruntime, temporalio, ...)"
python=${EDGEFORGE_PYTHON:-python3}
command -v "$python" >/dev/null || fail "python3 is not installed" "install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  fail "$("$python" --version) is too old" "install Python 3.11 or newer, or point EDGEFORGE_PYTHON at one"
lockfile=$repo/services/gpu-worker/requirements.lock
venv_key=$(cat "$lockfile" <("$python" --version) | sha256sum | cut -c1-16)
venv=$cache/venv/$venv_key
if [ -f "$venv/.complete" ]; then
  skip "venv for this requirements.lock exists: $venv"
else
  "$python" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  # No .complete marker means an earlier install was cut off: start that venv over.
  rm -rf "$venv"
  "$python" -m venv "$venv"
  say "      pip install -r services/gpu-worker/requirements.lock (torch is large: minutes the first time)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$lockfile" ||
    fail "pip install failed" "check PyPI is reachable (pip download --no-deps six), then rerun"
  touch "$venv/.complete"
fi

# 5. Prometheus and promtool -------------------------------------------------------------------
begin "Prometheus and promtool"
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  skip "$(prometheus --version 2>&1 | head -n1)"
else
  apt_install prometheus
  # The Debian package starts a system Prometheus on :9090; edgeforge starts its own on free ports.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
fi

# 6. Fashion-MNIST ------------------------------------------------------------------------------
begin "Fashion-MNIST data set"
if [ -f "$fashion_mnist_dir/train-images-idx3-ubyte.gz" ]; then
  skip "present in $fashion_mnist_dir"
else
  apt_install dataset-fashion-mnist
fi

mkdir -p "$repo/.edgeforge"
cat >"$repo/.edgeforge/toolchain.json" <<EOF
{
  "natsServer": "$nats_bin",
  "temporal": "$temporal_bin",
  "python": "$venv/bin/python",
  "prometheus": "$(command -v prometheus)",
  "promtool": "$(command -v promtool)",
  "fashionMnistDir": "$fashion_mnist_dir",
  "cache": "$cache"
}
EOF
say "ready in $(($(date +%s) - started))s; tool paths in .edgeforge/toolchain.json"
