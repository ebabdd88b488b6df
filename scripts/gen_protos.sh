#!/usr/bin/env bash
# Regenerates the committed Python stubs in hotline/v1/ from proto/hotline/v1/*.proto.
# tests/unit/test_protos.py fails when the committed stubs differ from a fresh generation.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
out="${1:-.}"
.venv/bin/python -m grpc_tools.protoc -I proto \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/hotline/v1/*.proto
