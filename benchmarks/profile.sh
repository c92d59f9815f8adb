#!/usr/bin/env bash
# Where the time of a training step goes: ShardTune (build/benchmarks/profile_step) and the PyTorch
# peer (benchmarks/peers/torch_llama.py --profile) on the same llama, per op family
# (benchmarks/profile_families.py), with glibc's default allocator settings and with large
# allocations kept in the heap (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_), and perf's view of
# one ShardTune run by shared object and symbol. Writes under OUT (default /tmp/shardtune-profile).
# Usage: benchmarks/profile.sh [small|30m|both] ; threads: THREADS (default 1). Needs perf.
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH=${1:-both}
OUT=${OUT:-/tmp/shardtune-profile}
THREADS=${THREADS:-1}
STEPS=${STEPS:-3}
mkdir -p "$OUT"
KEEP_HEAP="MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736"
run_model() {  # name, shardtune args, peer args
  local name=$1 st_args=$2 peer_args=$3
  for alloc in default keep_heap; do
    local envs="OMP_NUM_THREADS=$THREADS"
    [[ $alloc == keep_heap ]] && envs="$envs $KEEP_HEAP"
    # shellcheck disable=SC2086
    env $envs perf stat -e page-faults,task-clock -x, -o "$OUT/$name-shardtune-$alloc.stat" \
      build/benchmarks/profile_step $st_args --profile.steps="$STEPS" \
      --profile.out="$OUT/$name-shardtune-$alloc.tsv"
    # shellcheck disable=SC2086
    env $envs perf stat -e page-faults,task-clock -x, -o "$OUT/$name-pytorch-$alloc.stat" \
      /usr/bin/python3 benchmarks/peers/torch_llama.py --threads "$THREADS" $peer_args \
      --steps $((STEPS + 1)) --profile "$OUT/$name-pytorch-$alloc.tsv"
  done
  benchmarks/profile_families.py "$OUT/$name"-*.tsv > "$OUT/$name-families.md"
  grep -H page-faults "$OUT/$name"-*.stat
}
if [[ $WHICH == small || $WHICH == both ]]; then
  run_model small "--model.hidden_size=128 --model.num_layers=4 --model.num_heads=4 \
--model.intermediate_size=344 --train.seq_len=128" \
    "--hidden 128 --layers 4 --heads 4 --ffn 344 --seq 128"
fi
if [[ $WHICH == 30m || $WHICH == both ]]; then
  run_model 30m "" ""
  # perf by shared object and symbol, one ShardTune process (set-up included; see the doc).
  OMP_NUM_THREADS=$THREADS perf record -F 499 -o "$OUT/30m-shardtune.perf" \
    build/benchmarks/profile_step --profile.steps="$STEPS" --profile.out=/dev/null
  perf report -i "$OUT/30m-shardtune.perf" --sort dso --stdio > "$OUT/30m-shardtune-dso.txt"
  perf report -i "$OUT/30m-shardtune.perf" --sort dso,sym --stdio > "$OUT/30m-shardtune-sym.txt"
fi
cat "$OUT"/*-families.md
