#!/usr/bin/env bash
# benchmarks/scaling.sh --quick: every layout of np 1 and 2 in both modes lands in the CSV with a
# positive rate and an efficiency, and the plot is a PNG (the figures themselves are recorded in
# docs/benchmarks.md). usage: scaling_quick_test.sh SOURCE_DIR BENCH_TRAIN WORKDIR
set -euo pipefail
src=$1 bench=$2 work=$3
rm -rf "$work"
BENCH_TRAIN=$bench bash "$src/benchmarks/scaling.sh" --quick --steps 2 --out "$work"
fail() { echo "scaling_quick_test: $*" >&2; exit 1; }
rows=$(awk -F, 'NR > 1 && $8 > 0 && $11 > 0 { print $1 "," $2 "," $3 "," $4 }' "$work/results.csv" | sort | tr '\n' ' ')
[ "$rows" = "strong,1,1,1 strong,2,1,2 strong,2,2,1 weak,1,1,1 weak,2,1,2 weak,2,2,1 " ] ||
  fail "rows (mode,np,tp,dp) with a positive rate and efficiency: '$rows'"
head -c 8 "$work/efficiency.png" | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a' ||
  fail "$work/efficiency.png is not a PNG"
echo "scaling_quick_test: ok"
