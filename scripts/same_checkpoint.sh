# Sourced by the rehearsal scripts. `same_checkpoint A B OUT` succeeds when two checkpoint files
# hold the same tensors, the same per-tensor attributes and the same root metadata, except the two
# root attributes that name the run that wrote them: `run_id` (every run gets its own, issue 13)
# and `metadata_checksum` (which covers it). Two runs of the same job differ only there. On a
# difference it prints the first lines of the report (kept in OUT) to stderr and fails.

# The root attributes of FILE as h5dump prints them, without run_id and metadata_checksum.
root_attributes() {
  h5dump -A "$1" | awk '
    NR == 1 { next }                                   # HDF5 "<file name>" {
    /^   (GROUP|DATASET) / { exit }                    # past the root attributes
    /^   ATTRIBUTE / { skip = ($2 == "\"run_id\"" || $2 == "\"metadata_checksum\"") }
    !skip { print }'
}

same_checkpoint() {
  local a=$1 b=$2 out=$3
  if ! h5diff --exclude-attribute / "$a" "$b" >"$out" 2>&1 ||
     ! diff <(root_attributes "$a") <(root_attributes "$b") >>"$out" 2>&1; then
    head -n 20 "$out" >&2
    return 1
  fi
}
