#!/usr/bin/env bash
# examples/translation/transfer.sh on a small budget: pretraining, the FreeDict conversion, the
# three P-tuning v2 runs and the table; the Spanish run that starts from the French prefix must
# start from it (its held-out loss before training differs from the fresh prefix's).
# usage: translation_test.sh SOURCE_DIR SHARDTUNE_BINARY WORKDIR
set -euo pipefail
src=$1 bin=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
cd "$work"
SHARDTUNE=$bin bash "$src/examples/translation/transfer.sh" --train.steps=3 --train.warmup_steps=1 --train.eval_every=1 \
  --data.max_eval_samples=16 > out.txt 2>&1 || { cat out.txt; exit 1; }
cat out.txt
grep -qE '^eng-fra: [0-9]+ train, [0-9]+ held-out records' out.txt || { echo "no eng-fra data"; exit 1; }
row=$(awk '$1 == "0" { print $2, $3 }' out.txt)
[ -n "$row" ] || { echo "no step-0 row"; exit 1; }
awk -v r="$row" 'BEGIN { split(r, v, " "); exit !(v[1] > 0 && v[2] > 0 && v[1] != v[2]) }' ||
  { echo "the transferred prefix did not change the starting loss: $row"; exit 1; }
[ "$(awk '$1 ~ /^[0-9]+$/ && NF == 3' out.txt | wc -l)" -eq 4 ] || { echo "expected 4 rows"; exit 1; }
echo "translation_test: ok"
