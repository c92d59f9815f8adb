#!/usr/bin/env bash
# Sets up (packages + build) and runs every test through ctest: unit tests, then the multi-rank
# tests (label mpi) under mpiexec. Two tests at a time (CTEST_JOBS, default 2): the suite passes
# under ctest -j3 with other builds running, and CI's 2-core machine finishes it in about half the
# serial time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 -j "${CTEST_JOBS:-2}" "$@"
