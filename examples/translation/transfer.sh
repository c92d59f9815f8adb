#!/usr/bin/env bash
# P-tuning v2 transfer across language pairs (docs/strategies.md, "Transfer across languages"):
#   1. the demo's pretrained model (runs/wordnet-pretrain; trained here first if missing);
#   2. a prefix trained on English -> French words (Debian dict-freedict-eng-fra);
#   3. English -> Spanish (dict-freedict-eng-spa) trained for the same number of steps twice: from
#      a fresh prefix, and from the French prefix ([strategy.ptuning-v2] init_from);
#   4. the held-out loss of both Spanish runs at every evaluation, side by side.
# usage: examples/translation/transfer.sh [--section.key=value ...]   (to every training run, e.g.
# --train.steps=50). Runs in the current folder (runs/translation/); SHARDTUNE names the binary.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SHARDTUNE:-$SRC/build/launch/shardtune}
CONFIG=$SRC/examples/translation/ptuning.ini
OUT=runs/translation
quiet_config() { grep -vE '^[a-z0-9_.-]+ = |^\[[a-z._-]+\]$|^$|^# resolved' || true; }

if [ ! -e runs/wordnet-pretrain/checkpoints/latest ]; then
  echo "== pretraining the base model (examples/wordnet/pretrain.ini)"
  "$BIN" train --config "$SRC/examples/wordnet/pretrain.ini" "$@" | quiet_config
fi
rm -rf "$OUT"
for pair in eng-fra eng-spa; do
  /usr/bin/python3 "$SRC/examples/translation/freedict_jsonl.py" "$pair" "$OUT/data/$pair"
done
data() { echo "--data.train_file=$OUT/data/$1/train.jsonl --data.eval_file=$OUT/data/$1/eval.jsonl"; }

echo "== prefix on English -> French"
# shellcheck disable=SC2046
"$BIN" train --config "$CONFIG" $(data eng-fra) --train.out_dir="$OUT/eng-fra" "$@" | quiet_config
echo "== English -> Spanish from a fresh prefix"
# shellcheck disable=SC2046
"$BIN" train --config "$CONFIG" $(data eng-spa) --train.out_dir="$OUT/eng-spa-fresh" "$@" |
  quiet_config
echo "== English -> Spanish from the French prefix"
# shellcheck disable=SC2046
"$BIN" train --config "$CONFIG" $(data eng-spa) --train.out_dir="$OUT/eng-spa-from-fra" \
  --strategy.ptuning-v2.init_from="$OUT/eng-fra/checkpoints" "$@" | quiet_config

/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def evals(run):
    rows = [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl")]
    return {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}
fresh, transfer = evals("eng-spa-fresh"), evals("eng-spa-from-fra")
print("held-out loss, English -> Spanish (nats per response token)")
print(f"{'step':>5} {'fresh prefix':>13} {'from French':>12}")
for step in sorted(fresh):
    print(f"{step:>5} {fresh[step]:>13.4f} {transfer.get(step, float('nan')):>12.4f}")
PY
