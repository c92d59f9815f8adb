#!/usr/bin/env bash
# Training throughput: ShardTune (bench_train) vs PyTorch eager (Debian python3-torch) on the same
# ~30M llama, back to back on the same machine. Needs: apt-get install python3-torch.
# Usage: benchmarks/run_train_bench.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-6}
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
build/benchmarks/bench_train --train.steps="$STEPS" 2>/dev/null | tail -1
/usr/bin/python3 benchmarks/peers/pytorch_llama.py "$STEPS" 2
