#!/usr/bin/env bash
# The docs/hf.md walkthrough as a test: runs the document's blocks marked NAME
# (tests/docs/run_blocks.sh) on one tiny model folder written by
# `tests/reference/hf_reference.py walkthrough`, then checks the numbers the commands printed:
#   - every export's held-out loss equals the loss of the checkpoint it came from (rel 1e-5);
#   - the independent PyTorch reference, reading only the exported files (and applying PEFT
#     adapters as PEFT does), gives the same losses (rel 1e-5);
#   - training changed the model: each checkpoint's loss differs from the base folder's.
#
# usage: hf_walkthrough.sh SOURCE_DIR SHARDTUNE PYTHON MODELS_DIR MODEL WORKDIR NAME STRATEGY...
#   MODELS_DIR holds the generated folders and train.jsonl / eval.jsonl; STRATEGY... are the
#   strategies the blocks train (their out/<strategy>/ folders are checked).
set -euo pipefail
src=$1 shardtune=$2 python=$3 models=$4 model=$5 work=$6 name=$7
shift 7
strategies=("$@")

bash "$src/tests/docs/run_blocks.sh" "$src/docs/hf.md" "$name" "$shardtune" "$work" \
  MODEL="$models/$model" DATA="$models"
cd "$work"

eval_loss() {  # FILE -> the eval_loss value `shardtune eval` printed
  awk '$1 == "eval_loss" { print $2 }' "$1"
}
same() {  # WHAT A B: |A - B| <= 1e-5 * |B|
  if awk -v a="$2" -v b="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b;
                                       exit !(d <= 1e-5 * m) }'; then
    echo "ok    $1: $2 vs $3"
  else
    echo "FAIL  $1: $2 vs $3 (rel 1e-5)"
    failed=1
  fi
}
failed=0

# What the reference computes from the files alone.
specs=("$models/$model")
for s in "${strategies[@]}"; do
  if [ -d "out/$s/hf" ]; then specs+=("out/$s/hf"); fi
  if [ -d "out/$s/peft" ]; then specs+=("$models/$model,out/$s/peft"); fi
done
"$python" "$src/tests/reference/hf_reference.py" loss --jsonl "$models/eval.jsonl" "${specs[@]}" \
  > reference.txt
cat reference.txt
reference() { awk -v s="$1" '$2 == s { print $1 }' reference.txt; }
base=$(reference "$models/$model")

for s in "${strategies[@]}"; do
  trained=$(eval_loss "out/$s/eval.txt")
  [ -n "$trained" ] || { echo "FAIL  $s: no eval_loss in out/$s/eval.txt"; exit 1; }
  if awk -v a="$trained" -v b="$base" 'BEGIN { exit !(a == b) }'; then
    echo "FAIL  $s: the trained checkpoint's loss $trained is the base model's"
    failed=1
  fi
  if [ -d "out/$s/hf" ]; then
    same "$s export hf, shardtune" "$(eval_loss "out/$s/eval-hf.txt")" "$trained"
    same "$s export hf, reference" "$(reference "out/$s/hf")" "$trained"
  fi
  if [ -d "out/$s/peft" ]; then
    same "$s export peft, shardtune" "$(eval_loss "out/$s/eval-peft.txt")" "$trained"
    same "$s export peft, reference" "$(reference "$models/$model,out/$s/peft")" "$trained"
  fi
done
exit "$failed"
