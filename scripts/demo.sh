#!/usr/bin/env bash
# The main job: set up, build, then a real end-to-end run on WordNet (Debian wordnet-base), in
# runs/: pretrain a tiny llama on glosses, fine-tune it with each of the four strategies (sft,
# lora, ptuning-v2, freeze) to name a synset's category from its gloss, and print one table of
# held-out results plus a PNG of the loss curves (scripts/demo_run.sh says more).
# NP=2 runs every stage with mpirun -np 2 (data parallelism). Extra arguments go to every training
# stage, e.g. scripts/demo.sh --train.steps=50.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bash scripts/demo_run.sh "${BUILD_DIR:-build}/launch/shardtune" "$@"
