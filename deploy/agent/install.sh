#!/bin/sh
# Installs the packed edgeforge agent on a device, and (as root, by default) as a systemd service.
#
#   sudo sh install.sh edgeforge-agent-0.1.0.tgz            # service: user, unit, /etc/edgeforge
#   sh install.sh --prefix "$HOME/.local" --no-service edgeforge-agent-0.1.0.tgz
#
# It needs Node.js 20 or newer and npm, and a registry (or npm cache) that has onnxruntime-node.
# Running it again upgrades the agent and keeps the settings and the device's state.
set -eu

PREFIX=/opt/edgeforge-agent
SERVICE=yes
TARBALL=
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --no-service) SERVICE=no; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    -*) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) TARBALL=$1; shift ;;
  esac
done
say() { echo "[edgeforge-agent] $*"; }
fail() { echo "install.sh: $*" >&2; exit 1; }

[ -n "$TARBALL" ] || fail "name the packed agent (edgeforge-agent-VERSION.tgz); see --help"
[ -f "$TARBALL" ] || fail "$TARBALL: no such file"
command -v node >/dev/null || fail "Node.js 20 or newer is needed (node is not on PATH)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || fail "Node.js 20 or newer is needed (this is $(node --version))"
if [ "$SERVICE" = yes ] && [ "$(id -u)" -ne 0 ]; then
  fail "installing the service needs root (or give --no-service --prefix DIR)"
fi

# Install scripts stay off: onnxruntime-node's would download CUDA libraries; its CPU build is
# in the package already.
say "installing $TARBALL into $PREFIX"
npm install --global --prefix "$PREFIX" --ignore-scripts --omit=dev --no-audit --no-fund \
  --loglevel=error "$TARBALL"

# onnxruntime-node carries native builds for every platform (about 290 MB); keep this one's.
ort=$PREFIX/lib/node_modules/edgeforge-agent/node_modules/onnxruntime-node/bin
platform=$(node -p 'process.platform')
arch=$(node -p 'process.arch')
for dir in "$ort"/napi-v*/*/*; do
  [ -d "$dir" ] || continue
  case "$dir" in */"$platform"/"$arch") ;; *) rm -rf "$dir" ;; esac
done
for dir in "$ort"/napi-v*/*; do rmdir "$dir" 2>/dev/null || true; done
ls "$ort"/napi-v*/"$platform"/"$arch"/onnxruntime_binding.node >/dev/null 2>&1 ||
  fail "onnxruntime-node has no build for $platform/$arch"
say "installed: $PREFIX/bin/edgeforge-agent ($(du -sh "$PREFIX/lib/node_modules/edgeforge-agent" | cut -f1))"

[ "$SERVICE" = yes ] || exit 0

if ! id edgeforge >/dev/null 2>&1; then
  say "creating the system user edgeforge"
  useradd --system --home-dir /var/lib/edgeforge --no-create-home --shell /usr/sbin/nologin \
    --user-group edgeforge
fi
install -d -m 0750 -o root -g edgeforge /etc/edgeforge
here=$(dirname "$0")
unit_source=$here/edgeforge-agent.service
[ -f "$unit_source" ] ||
  unit_source=$PREFIX/lib/node_modules/edgeforge-agent/dist/deploy/edgeforge-agent.service
env_source=$(dirname "$unit_source")/agent.env
if [ ! -f /etc/edgeforge/agent.env ]; then
  install -m 0640 -o root -g edgeforge "$env_source" /etc/edgeforge/agent.env
fi
# The node this script found, by its absolute path: systemd's PATH may not have it.
sed -e "s#/usr/bin/env node#$(command -v node)#" -e "s#/opt/edgeforge-agent#$PREFIX#g" \
  "$unit_source" > /etc/systemd/system/edgeforge-agent.service
chmod 0644 /etc/systemd/system/edgeforge-agent.service
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
say "service installed. Next:"
say "  1. set EDGEFORGE_CONTROL_PLANE (and TLS) in /etc/edgeforge/agent.env"
say "  2. put the fleet's enrollment token in /etc/edgeforge/enrollment-token:"
say "       install -m 0640 -o root -g edgeforge /dev/stdin /etc/edgeforge/enrollment-token"
say "  3. systemctl enable --now edgeforge-agent; journalctl -u edgeforge-agent -f"
