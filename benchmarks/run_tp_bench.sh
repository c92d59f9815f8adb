#!/usr/bin/env bash
# Tensor vs data parallelism on the ~30M llama (hidden 512, 8 layers, seq 256, micro-batch 8 per
# data-parallel rank): step time, tokens/s, peak memory per rank and per-step communication volume
# (TP axis next to Megatron's 4 x layers x b x s x h all-reduce formula) for
#   np=1: TP=1 DP=1;  np=2: TP=1 DP=2;  np=2: TP=2 DP=1.
# Prints one JSON line per layout (bench_train). Usage: benchmarks/run_tp_bench.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-6}
BIN=build/benchmarks/bench_train
MPI=(mpirun --bind-to none)
if [ "$(id -u)" = 0 ]; then MPI+=(--allow-run-as-root); fi
if [ "$(nproc)" -lt 2 ]; then MPI+=(--oversubscribe); fi
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
"$BIN" --train.steps="$STEPS" 2>/dev/null | tail -1
"${MPI[@]}" -np 2 "$BIN" --train.steps="$STEPS" --parallel.tp=1 2>/dev/null | tail -1
"${MPI[@]}" -np 2 "$BIN" --train.steps="$STEPS" --parallel.tp=2 2>/dev/null | tail -1
