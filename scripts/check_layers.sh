#!/usr/bin/env bash
# The layer check (ctest: layer_check): every #include in the source folders must follow the
# allowed-edges table of docs/architecture.md (the one place the graph is written down), and the
# outside headers that belong to one layer (MPI, NCCL, HDF5, Boost.Program_options, spdlog,
# LibTorch) may appear only in the folders listed for them there. Prints every violation as
# FILE:LINE and exits 1; prints a one-line summary and exits 0 when there is none.
#
# usage: scripts/check_layers.sh [SOURCE_ROOT]   (default: the repository holding this script)
set -euo pipefail
root=${1:-"$(cd "$(dirname "$0")/.." && pwd)"}
doc="$root/docs/architecture.md"
[ -f "$doc" ] || { echo "layer check: $doc is missing" >&2; exit 1; }

# Table rows between the markers: | `folder/` | `a/`, `b/` | ... (first two columns used).
table() {  # $1 = marker name
  awk -v m="$1" '
    $0 ~ "<!-- " m ":begin -->" { on = 1; next }
    $0 ~ "<!-- " m ":end -->" { on = 0 }
    on && /^\|/ && !/^\| *-/ && !/^\| *(folder|header)/ {
      split($0, c, "|"); gsub(/[` ]/, "", c[2]); gsub(/[` ]/, "", c[3]); print c[2] "\t" c[3]
    }' "$doc"
}
declare -A allowed headers
while IFS=$'\t' read -r folder uses; do
  allowed[${folder%/}]=",${uses//\//},"
done < <(table layers)
while IFS=$'\t' read -r header folders; do headers[$header]=",${folders//\//},"; done \
  < <(table headers)
[ ${#allowed[@]} -gt 0 ] || { echo "layer check: no layer table in $doc" >&2; exit 1; }
[ ${#headers[@]} -gt 0 ] || { echo "layer check: no outside-header table in $doc" >&2; exit 1; }

# ",a,b," -> "a/, b/" (or "nothing" for an empty list), for messages.
pretty() { local s=${1#,}; s=${s%,}; [ -n "$s" ] && echo "${s//,//, }/" || echo "nothing"; }

violations=0 files=0 includes=0
include_re='^([^:]+):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"]'
for folder in "${!allowed[@]}"; do
  [ -d "$root/$folder" ] || continue
  files=$((files + $(find "$root/$folder" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' \
                       -o -name '*.cc' -o -name '*.c' \) | wc -l)))
  # One grep per folder; every line is matched with bash's own regex (no process per include).
  while IFS= read -r hit; do
    [[ $hit =~ $include_re ]] || continue
    rel=${BASH_REMATCH[1]#"$root"/} line=${BASH_REMATCH[2]} target=${BASH_REMATCH[3]}
    includes=$((includes + 1))
    top=${target%%/*}
    if [ "$top" != "$target" ] && [ -n "${allowed[$top]+x}" ]; then
      if [ "$top" != "$folder" ] && [[ ${allowed[$folder]} != *",$top,"* ]]; then
        echo "$rel:$line: $folder/ may not include $target" \
             "(allowed: $(pretty "${allowed[$folder]}"))"
        violations=$((violations + 1))
      fi
      continue
    fi
    for header in "${!headers[@]}"; do
      if [[ $target == "$header"* ]] && [[ ${headers[$header]} != *",$folder,"* ]]; then
        echo "$rel:$line: $folder/ may not include <$target>" \
             "(only in: $(pretty "${headers[$header]}"))"
        violations=$((violations + 1))
      fi
    done
  done < <(grep -rnE --include='*.h' --include='*.hpp' --include='*.cpp' --include='*.cc' \
             --include='*.c' '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$root/$folder")
done
if [ "$violations" -gt 0 ]; then
  echo "layer check: $violations wrong-way include(s);" \
       "the allowed edges are in docs/architecture.md"
  exit 1
fi
echo "layer check: $files files, $includes includes, every edge allowed (docs/architecture.md)"
