#!/usr/bin/env bash
# Runs the shell blocks of a document that are marked for a test, so that the commands the docs
# show are exactly the ones a test runs:
#
#   <!-- test: NAME -->
#   ```sh
#   shardtune preprocess --config run.ini ...
#   ```
#
# A block shared by several tests lists them: <!-- test: NAME, OTHER -->.
#
# usage: run_blocks.sh DOC.md NAME SHARDTUNE_BINARY WORKDIR [VAR=VALUE ...]
#
# Every block marked NAME runs, in document order, as one bash script with `set -euo pipefail`
# in WORKDIR (created empty), with the binary's folder first on PATH (so `shardtune` is the build's)
# and VAR=VALUE exported (the test's stand-ins for the user's paths, e.g. MODEL=...). `mpirun` gets
# the flags a test machine needs (root, more ranks than cores, no binding), which docs/hpc.md
# explains and a user's cluster does not need. A block line ending in `# doc-only` is shown to
# readers but not run (a path that exists only on the reader's machine).
set -euo pipefail
doc=$1 name=$2 binary=$3 workdir=$4
shift 4

script=$(awk -v want="$name" '
  /^<!-- test: .* -->[[:space:]]*$/ {
    list = $0; sub(/^<!-- test: /, "", list); sub(/ -->[[:space:]]*$/, "", list)
    n = split(list, names, /[, ]+/)
    for (i = 1; i <= n; i++) if (names[i] == want) { armed = 1; next }
  }
  armed && /^```sh[[:space:]]*$/ { inside = 1; armed = 0; next }
  inside && /^```[[:space:]]*$/ { inside = 0; print ""; next }
  inside && /# doc-only[[:space:]]*$/ { next }
  inside { print }
  !inside && NF { armed = 0 }
' "$doc")
if [ -z "$script" ]; then
  echo "run_blocks: no block marked '$name' in $doc" >&2
  exit 1
fi

rm -rf "$workdir"
mkdir -p "$workdir"
cd "$workdir"
for assignment in "$@"; do export "${assignment?}"; done
PATH="$(cd "$(dirname "$binary")" && pwd):$PATH"
export PATH
mpirun() { command mpirun --allow-run-as-root --oversubscribe --bind-to none "$@"; }
export -f mpirun
printf '%s\n' "---- $doc [$name] in $workdir" "$script" "----"
bash -euo pipefail -c "$script"
