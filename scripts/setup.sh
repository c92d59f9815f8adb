#!/usr/bin/env bash
# Installs every Debian package ShardTune's build, tests and demo need (idempotent), then
# configures and builds a Release tree in build/ (override with BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake g++ ninja-build pkg-config
  libtorch-dev            # LibTorch 1.13 (CPU)
  libopenblas0-openmp     # fast BLAS for LibTorch; the default reference BLAS is ~25x slower
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev
  libgtest-dev
  nlohmann-json3-dev
  libspdlog-dev
  libsentencepiece-dev
  libpcre2-dev
  libicu-dev              # Unicode normalization (NFC) for tokenizers
  wordnet-base            # English text for the demo and the real-task tests
  dict-freedict-eng-fra dict-freedict-eng-spa  # word pairs: examples/translation (P-tuning transfer)
  iproute2                # ip netns for the multi-node rehearsal (tests/cluster.cmake)
  python3-torch           # tests/reference/hf_reference.py: the independent HF-semantics reference
  gnuplot-nox             # benchmarks/run.sh: throughput, MFU and ratio plots (pngcairo)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bash scripts/fetch_test_assets.sh || echo "setup: WARNING: tokenizer test assets not fetched (tests that need them will fail)" >&2

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
echo "setup: built $BUILD_DIR/launch/shardtune"
