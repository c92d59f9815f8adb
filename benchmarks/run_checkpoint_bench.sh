#!/bin/sh
# Checkpoint write/read throughput at np = 1, 2, 4 against dd of the same bytes to the same disk
# (docs/benchmarks-checkpoint.md). For each np: bench_checkpoint with TP = np (independent and
# collective MPI-IO) and TP = 1 (pure DP: replicated tensors, writers taking turns). Each
# repetition times our write and read and, in the same repetition, dd writing and reading the
# checkpoint file just written (bench_checkpoint.cpp's header says exactly how).
#   benchmarks/run_checkpoint_bench.sh BUILD_DIR [WORK_DIR] [REPS]
# WORK_DIR (default BUILD_DIR/bench-ckpt) must be on the disk to measure.
set -eu
build=${1:?usage: run_checkpoint_bench.sh BUILD_DIR [WORK_DIR] [REPS]}
work=${2:-$build/bench-ckpt}
reps=${3:-5}
mpirun="mpirun --allow-run-as-root --oversubscribe --bind-to none"
mkdir -p "$work"
bench() {  # np tp xfer
  rm -rf "$work/run"
  # More ranks than cores: ranks waiting in MPI calls must yield their core instead of spinning
  # (Open MPI's setting for oversubscribed runs), or they starve the ranks doing the I/O.
  yield=0
  [ "$1" -gt "$(nproc)" ] && yield=1
  OMP_NUM_THREADS=1 $mpirun --mca mpi_yield_when_idle "$yield" -np "$1" \
    "$build/benchmarks/bench_checkpoint" "$work/run" --tp "$2" --reps "$reps" --xfer "$3"
}
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for np in 1 2 4; do
  bench "$np" "$np" independent
  if [ "$np" -gt 1 ]; then
    bench "$np" "$np" collective
    bench "$np" 1 independent
  fi
done
rm -rf "$work/run"
