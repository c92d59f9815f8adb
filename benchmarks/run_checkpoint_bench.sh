#!/bin/sh
# Checkpoint write/read throughput at np = 1, 2, 4 against dd of the same bytes to the same disk
# (docs/benchmarks-checkpoint.md). For each np: bench_checkpoint with TP = np (independent and
# collective MPI-IO) and TP = 1 (pure DP: replicated tensors, writers taking turns), then dd of the
# file just written, REPS times each, so that dd runs under the same machine load.
#   benchmarks/run_checkpoint_bench.sh BUILD_DIR [WORK_DIR] [REPS]
# WORK_DIR (default BUILD_DIR/bench-ckpt) must be on the disk to measure.
set -eu
build=${1:?usage: run_checkpoint_bench.sh BUILD_DIR [WORK_DIR] [REPS]}
work=${2:-$build/bench-ckpt}
reps=${3:-3}
mpirun="mpirun --allow-run-as-root --oversubscribe --bind-to none"
mkdir -p "$work"
bench() {  # np tp xfer
  rm -rf "$work/run"
  OMP_NUM_THREADS=1 $mpirun -np "$1" "$build/benchmarks/bench_checkpoint" "$work/run" \
    --tp "$2" --reps "$reps" --xfer "$3"
}
for np in 1 2 4; do
  bench "$np" "$np" independent
  if [ "$np" -gt 1 ]; then
    bench "$np" "$np" collective
    bench "$np" 1 independent
  fi
  # dd of the same bytes, same disk: write with fsync (source in the page cache), read cold.
  src=$(ls "$work"/run/step-*.h5 | tail -n 1)
  bytes=$(stat -c %s "$src")
  for r in $(seq "$reps"); do
    dd if="$src" of=/dev/null bs=4M status=none
    w=$( { /usr/bin/time -f %e dd if="$src" of="$work/dd.bin" bs=4M conv=fsync status=none; } 2>&1 )
    dd if="$work/dd.bin" iflag=nocache count=0 status=none  # drop dd.bin from the page cache
    rd=$( { /usr/bin/time -f %e dd if="$work/dd.bin" of=/dev/null bs=4M status=none; } 2>&1 )
    echo "{\"dd\": true, \"np\": $np, \"bytes\": $bytes, \"write_s\": $w, \"read_s\": $rd}"
  done
  rm -f "$work/dd.bin"
done
