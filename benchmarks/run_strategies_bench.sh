#!/usr/bin/env bash
# The four strategies on the same base model, task and step budget (docs/strategies.md).
# 1. pretrains the benchmark llama on WordNet glosses (the base model every strategy starts from),
# 2. fine-tunes it on "define: WORD" with each strategy, one process each (VmHWM is per process).
# Usage: benchmarks/run_strategies_bench.sh [build-dir] [steps] [pretrain-steps]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
STEPS=${2:-40}
PRE=${3:-150}
BENCH="$BUILD/benchmarks/bench_strategies"
OUT=runs/bench-strategies
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
if [ ! -f "$OUT/base/checkpoints/latest" ]; then
  "$BENCH" --data.wordnet_task=glosses --train.steps="$PRE" --train.lr=3e-3 \
    --train.out_dir="$OUT/base" --checkpoint.save_final=true --strategy.name=sft 2>/dev/null | tail -1
fi
run() {
  "$BENCH" --checkpoint.init_from="$OUT/base/checkpoints" --train.steps="$STEPS" \
    --train.out_dir="$OUT/$1" --strategy.name="$1" "${@:2}" 2>/dev/null | tail -1
}
run sft --train.lr=1e-3
run lora --train.lr=3e-3 --strategy.lora.target_modules=all-linear
run lora --train.lr=3e-3
run ptuning-v2 --train.lr=2e-2 --strategy.ptuning-v2.pre_seq_len=16
run freeze --train.lr=1e-3 --strategy.freeze.trainable_layers=1
