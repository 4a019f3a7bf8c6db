#!/usr/bin/env bash
# Regenerates proto/gen (ts-proto, grpc-js services) from proto/edgeforge/v1/*.proto.
# buf compiles the protos itself, so no protoc is needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../proto"
../node_modules/.bin/buf lint
../node_modules/.bin/buf generate
