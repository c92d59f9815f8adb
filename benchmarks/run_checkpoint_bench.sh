#!/bin/sh
# Checkpoint write/read throughput at np = 1, 2, 4 against dd of the same bytes to the same disk
# (docs/benchmarks-checkpoint.md).
#   benchmarks/run_checkpoint_bench.sh BUILD_DIR [WORK_DIR] [REPS]
# WORK_DIR (default BUILD_DIR/bench-ckpt) must be on the disk to measure.
set -eu
build=${1:?usage: run_checkpoint_bench.sh BUILD_DIR [WORK_DIR] [REPS]}
work=${2:-$build/bench-ckpt}
reps=${3:-3}
mpirun="mpirun --allow-run-as-root --oversubscribe --bind-to none"
mkdir -p "$work"
for xfer in collective independent; do
  for np in 1 2 4; do
    rm -rf "$work/np$np"
    OMP_NUM_THREADS=1 $mpirun -np "$np" "$build/benchmarks/bench_checkpoint" "$work/np$np" \
      --reps "$reps" --xfer "$xfer"
  done
done
# dd of the same bytes (the last checkpoint file), same disk: write with fsync, read cold.
src=$(ls "$work"/np1/step-*.h5 | tail -n 1)
bytes=$(stat -c %s "$src")
for r in $(seq "$reps"); do
  dd if="$src" of=/dev/null bs=4M status=none  # source in the page cache: dd times the write only
  w=$( { /usr/bin/time -f %e dd if="$src" of="$work/dd.bin" bs=4M conv=fsync status=none; } 2>&1 )
  dd if="$work/dd.bin" iflag=nocache count=0 status=none  # drop dd.bin from the page cache
  rd=$( { /usr/bin/time -f %e dd if="$work/dd.bin" of=/dev/null bs=4M status=none; } 2>&1 )
  echo "{\"dd\": true, \"bytes\": $bytes, \"write_s\": $w, \"read_s\": $rd}"
done
rm -f "$work/dd.bin"
