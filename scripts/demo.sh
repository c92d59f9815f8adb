#!/usr/bin/env bash
# The main job: set up, build, then a real end-to-end run on WordNet (Debian wordnet-base):
#   1. pretrain a tiny llama on glosses,
#   2. fine-tune it on "define: WORD" -> definition (held-out loss before/after),
#   3. generate definitions of held-out words next to WordNet's.
# NP=2 runs every stage with mpirun -np 2 (data parallelism). Extra arguments go to both training
# stages, e.g. scripts/demo.sh --train.steps=50.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BIN=${BUILD_DIR:-build}/launch/shardtune
NP=${NP:-1}
run() {
  if [ "$NP" -gt 1 ]; then
    extra=()
    [ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
    [ "$NP" -gt "$(nproc)" ] && extra+=(--oversubscribe)
    mpirun -np "$NP" "${extra[@]}" --bind-to none "$BIN" "$@"
  else
    "$BIN" "$@"
  fi
}
# Hide the resolved-configuration dump (INI lines); keep the progress and result lines.
quiet_config() { grep -vE '^[a-z_]+ = |^\[[a-z._]+\]$|^$|^# resolved' || true; }
rm -rf runs/wordnet-pretrain runs/wordnet-define
echo "== 1/3 pretrain on WordNet glosses"
run train --config examples/wordnet/pretrain.ini "$@" | quiet_config
echo "== 2/3 fine-tune on define: WORD -> definition"
run train --config examples/wordnet/finetune.ini "$@" | quiet_config
echo "== 3/3 definitions of held-out words (greedy)"
run generate --config examples/wordnet/finetune.ini \
  --checkpoint.init_from=runs/wordnet-define/checkpoints | quiet_config
