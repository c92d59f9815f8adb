#!/usr/bin/env bash
# Sets up (packages + build) and runs every test through ctest: unit tests, then the multi-rank
# tests (label mpi) under mpiexec.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 "$@"
