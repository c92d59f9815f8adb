#!/usr/bin/env bash
# docs/cli.md must be exactly what `shardtune --help-markdown` prints (tests/docs.cmake).
# usage: check_cli_reference.sh SHARDTUNE_BINARY DOCS_CLI_MD
set -euo pipefail
binary=$1 doc=$2
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
"$binary" --help-markdown > "$generated"
if ! diff -u "$doc" "$generated"; then
  echo "docs/cli.md is stale: regenerate it with" >&2
  echo "  build/launch/shardtune --help-markdown > docs/cli.md" >&2
  exit 1
fi
echo "docs/cli.md matches shardtune --help-markdown"
