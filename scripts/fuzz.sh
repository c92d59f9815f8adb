#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/, clang + ASan + UBSan, in build-fuzz/) and runs each
# for a fixed time, then prints executions and findings per target. Exit status 1 if any target
# found something (its reproducer is under build-fuzz/fuzz-findings/<target>/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#   FUZZ_TARGETS="fuzz_a fuzz_b" scripts/fuzz.sh 30    run only these
#   FUZZ_JOBS=2 ...                                    build parallelism (default 2)
#
# Runs under nice -n 19 so a shared machine stays usable. Each target keeps its growing corpus in
# build-fuzz/fuzz-corpus/<target>/ (seeded from tests/fuzz/corpus/<target>/), so later runs
# continue where earlier ones stopped. fuzz_tokenizer_encode runs once per tokenizer in
# FUZZ_TOKENIZERS (default: GPT-2 and Llama 3 from the test assets).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-60}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${FUZZ_JOBS:-2}

need=()
command -v clang++ >/dev/null || need+=(clang)
dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "install ok installed" ||
  need+=(libclang-rt-14-dev)
if ((${#need[@]})); then
  echo "fuzz: installing ${need[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
bash scripts/fetch_test_assets.sh >/dev/null

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSHARDTUNE_FUZZ=ON -DSHARDTUNE_BUILD_BENCHMARKS=OFF -DSHARDTUNE_USE_PCH=OFF >/dev/null
fi
nice -n 19 cmake --build "$BUILD" -j "$JOBS" --target fuzz_targets

assets=${SHARDTUNE_TEST_ASSETS:-.cache/test-assets}
TOKENIZERS=${FUZZ_TOKENIZERS:-"$assets/gpt2 $assets/llama3"}
targets=${FUZZ_TARGETS:-$(cd "$BUILD/tests/fuzz" && ls fuzz_* | grep -v '\.' | sort)}

# One run: NAME LABEL [ENV...]. Appends a line to $summary.
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
run_one() {
  local name=$1 label=$2
  shift 2
  local corpus="$BUILD/fuzz-corpus/$name" findings="$BUILD/fuzz-findings/$label" log="$BUILD/fuzz-logs/$label.log"
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  local dict=()
  [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
  local seeds=()
  [ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
  local before
  before=$(find "$findings" -maxdepth 1 -type f | wc -l)
  touch "$log.start"
  echo "fuzz: $label for ${SECONDS_PER_TARGET}s"
  env "$@" nice -n 19 "$BUILD/tests/fuzz/$name" -max_total_time="$SECONDS_PER_TARGET" -timeout=30 \
    -max_len=16384 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$findings/" \
    "${dict[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1 || true
  # A timeout on a starved machine (nice 19 among other builds) is not a finding unless the input
  # is slow on its own: re-run each new timeout reproducer at normal priority and keep it only if
  # it still takes over a second.
  local f ms
  for f in "$findings"/timeout-*; do
    [ -f "$f" ] && [ "$f" -nt "$log.start" ] || continue
    ms=$(env "$@" "$BUILD/tests/fuzz/$name" "$f" 2>&1 | grep -o 'in [0-9]* ms' | grep -o '[0-9]*' || true)
    if [ -n "$ms" ] && [ "$ms" -lt 1000 ]; then
      mkdir -p "$findings/not-reproduced"
      mv "$f" "$findings/not-reproduced/"
      echo "fuzz: $label: $(basename "$f") ran in ${ms} ms when re-run alone: machine load, not a finding"
    fi
  done
  local execs corpus_n after
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  corpus_n=$(find "$corpus" -type f | wc -l)
  after=$(find "$findings" -maxdepth 1 -type f | wc -l)
  printf '%-44s %8ss %12s %8s %8s\n' "$label" "$SECONDS_PER_TARGET" "${execs:-?}" "$corpus_n" \
    "$((after - before))" >>"$summary"
}

for name in $targets; do
  if [ "$name" = fuzz_tokenizer_encode ]; then
    for tok in $TOKENIZERS; do
      run_one "$name" "$name-$(basename "$tok")" SHARDTUNE_FUZZ_TOKENIZER="$tok"
    done
  else
    run_one "$name" "$name"
  fi
done

printf '\n%-44s %9s %12s %8s %8s\n' target time executions corpus findings
cat "$summary"
if awk '{ if ($5 > 0) bad = 1 } END { exit bad ? 0 : 1 }' "$summary"; then
  echo "fuzz: findings above; reproducers in $BUILD/fuzz-findings/, logs in $BUILD/fuzz-logs/"
  exit 1
fi
echo "fuzz: no findings"
