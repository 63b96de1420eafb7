#!/usr/bin/env bash
# setup.sh -- install the Debian packages tftx needs (only those missing),
# then configure and build. Idempotent and quiet when everything is there.
#
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
#
# Debian 12 as root (or with sudo available). BUILD_DIR defaults to build/.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  gcc g++ make cmake pkg-config binutils
  libconfig-dev libmsgpack-dev libcmocka-dev
  libopenblas-dev libopenblas0-openmp libcjson-dev libutf8proc-dev libstemmer-dev
  python3-msgpack
  slurm-wlm munge  # tests/slurm: a single-node Slurm cluster on loopback
  clang libclang-rt-14-dev valgrind util-linux
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=${1:-build}
shift || true
if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
cmake --build "$build" -j "$(nproc)" 2>&1 | grep -E "error|warning|Error" || true
test -x "$build/bin/tftx" || { echo "setup: the build failed; run: cmake --build $build" >&2; exit 1; }
