#!/usr/bin/env bash
# The main job's stages (scripts/demo_run.sh) on a small budget: every strategy trains, is scored
# and appears in the table with figures in range; the plot is a PNG. usage: demo_run_test.sh SOURCE_DIR SHARDTUNE_BINARY WORKDIR
set -euo pipefail
src=$1 bin=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
cd "$work"
bash "$src/scripts/demo_run.sh" "$bin" --train.steps=4 --train.warmup_steps=1 --train.eval_every=2 \
  --data.max_eval_samples=32 > out.txt 2>&1 || { cat out.txt; exit 1; }
cat out.txt
fail() { echo "demo_run_test: $*" >&2; exit 1; }
for s in sft lora ptuning-v2 freeze; do
  row=$(grep -E "^$s +" out.txt) || fail "no table row for $s"
  # strategy trainable state step-ms loss accuracy%: loss finite and positive, accuracy in 0..100.
  awk -v s="$s" '{ acc = $NF; sub(/%$/, "", acc);
                   if (!($(NF-1) > 0 && $(NF-1) < 100 && acc >= 0 && acc <= 100 && $(NF-2) > 0))
                     { print "bad row for " s ": " $0; exit 1 } }' <<<"$row" || exit 1
  [ -s "runs/wordnet-pos-$s/metrics.jsonl" ] || fail "no metrics for $s"
done
grep -qE '^pretrained only ' out.txt || fail "no pretrained-only row"
grep -qE '^majority class \((noun|verb|adjective|adverb)\) ' out.txt || fail "no majority-class row"
# Trainable parameters differ by strategy: full SFT trains the most.
sft=$(awk '$1 == "sft" { print $2 }' out.txt) lora=$(awk '$1 == "lora" { print $2 }' out.txt)
[ "$sft" != "$lora" ] || fail "sft and lora report the same trainable count ($sft)"
head -c 8 runs/wordnet-pos.png | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a' ||
  fail "runs/wordnet-pos.png is not a PNG"
echo "demo_run_test: ok"
