#!/usr/bin/env bash
# The package test (tests/install.cmake): install this build into a fresh prefix, configure and
# build examples/custom_strategy/ against it with find_package(ShardTune) only (no path into the
# source or build tree), and train with the strategy the example registers.
#
# usage: install_and_build_example.sh SOURCE_DIR BUILD_DIR WORK_DIR
# WORK_DIR keeps the example's build folder between runs at the same path, so that ccache (when
# CMAKE_CXX_COMPILER_LAUNCHER is set in the environment or found) turns a rebuild into a cache hit.
set -euo pipefail
src=$1 build=$2 work=$3
prefix=$work/prefix
rm -rf "$prefix" "$work/run"
mkdir -p "$work/run"

cmake --install "$build" --prefix "$prefix" > "$work/install.log"
# The installed tree holds what a user links against, with the source layout of the headers.
for f in include/shardtune/core/model.h include/shardtune/strategies/registry.h \
         include/shardtune/launch/cli.h include/shardtune/io/checkpoint/options.h \
         lib/cmake/ShardTune/ShardTuneConfig.cmake bin/shardtune; do
  [ -e "$prefix/$f" ] || { echo "install: $f is missing from $prefix" >&2; exit 1; }
done

launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
# Only the prefix is given: the example must find everything through the package config.
cmake -S "$src/examples/custom_strategy" -B "$work/example" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" > "$work/configure.log"
cmake --build "$work/example" -j 2 > "$work/build.log"

cd "$work/run"
"$work/example/custom_strategy" train --config "$src/examples/custom_strategy/run.ini" \
  --data.max_eval_samples=64 | tee "$work/train.log"

# run.ini: hidden 64, 2 layers: (2 * 2 + 1) * 64 = 320 normalisation weights train, nothing else.
grep -q "strategy norm-tuning: trainable 320 / " "$work/train.log" ||
  { echo "FAIL: the registered strategy did not train exactly the 320 norm weights" >&2; exit 1; }
line=$(grep -o "held-out loss [0-9.]* -> [0-9.]*" "$work/train.log") ||
  { echo "FAIL: no held-out loss line" >&2; exit 1; }
read -r before after < <(echo "$line" | awk '{print $3, $5}')
awk -v a="$before" -v b="$after" 'BEGIN { exit !(b < a) }' ||
  { echo "FAIL: held-out loss did not fall ($before -> $after)" >&2; exit 1; }
# The checkpoint records the strategy by its registered name; the installed shardtune reads it.
"$prefix/bin/shardtune" ckpt inspect runs/custom-strategy/checkpoints | tee "$work/inspect.log"
grep -q "norm-tuning" "$work/inspect.log" ||
  { echo "FAIL: the checkpoint does not name the strategy" >&2; exit 1; }
echo "PASS: installed package built the example, which trained with norm-tuning ($before -> $after)"
