#!/usr/bin/env bash
# The main job's stages (scripts/demo.sh sets up and builds first), run in the current folder:
#   1. pretrain a tiny llama on WordNet glosses (examples/wordnet/pretrain.ini);
#   2. fine-tune it to name a synset's lexicographer category from its gloss
#      (examples/wordnet/lexname.ini) with each strategy: sft, lora, ptuning-v2, freeze;
#   3. score each on held-out synsets (`shardtune score`), print one table and plot the loss curves
#      (runs/wordnet-lexname.png).
# usage: scripts/demo_run.sh SHARDTUNE_BINARY [--section.key=value ...]   (extra options go to
# every training stage, e.g. --train.steps=20). NP=2 runs every stage on two ranks.
set -euo pipefail
BIN=$1
shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
NP=${NP:-1}
run() {
  if [ "$NP" -gt 1 ]; then
    local extra=()
    [ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
    [ "$NP" -gt "$(nproc)" ] && extra+=(--oversubscribe)
    mpirun -np "$NP" "${extra[@]}" --bind-to none "$BIN" "$@"
  else
    "$BIN" "$@"
  fi
}
# Hide the resolved-configuration dump (INI lines); keep the progress and result lines.
quiet_config() { grep -vE '^[a-z0-9_.-]+ = |^\[[a-z._-]+\]$|^$|^# resolved' || true; }

STRATEGIES=(sft lora ptuning-v2 freeze)
# Each strategy's learning rate: adapters and prefixes start from zero or random values and move
# few parameters, so they take larger steps than full fine-tuning.
declare -A LR=([sft]=3e-3 [lora]=1e-2 [ptuning-v2]=3e-2 [freeze]=5e-3)
CONFIG=$SRC/examples/wordnet/lexname.ini

rm -rf runs/wordnet-pretrain runs/wordnet-lexname runs/wordnet-lexname-*
mkdir -p runs
echo "== 1/3 pretrain on WordNet glosses"
run train --config "$SRC/examples/wordnet/pretrain.ini" "$@" | quiet_config
run score --config "$CONFIG" "$@" > runs/wordnet-lexname-pretrained.score

for s in "${STRATEGIES[@]}"; do
  echo "== 2/3 fine-tune: category from gloss, strategy $s (lr ${LR[$s]})"
  out=runs/wordnet-lexname-$s
  run train --config "$CONFIG" --strategy.name="$s" --train.lr="${LR[$s]}" \
    --train.out_dir="$out" "$@" | quiet_config
  run score --config "$CONFIG" --strategy.name="$s" --train.out_dir="$out" \
    --checkpoint.init_from="$out/checkpoints" "$@" > "$out/score.txt"
done

echo "== 3/3 held-out results"
/usr/bin/python3 "$SRC/scripts/demo_report.py" runs "${STRATEGIES[@]}"
