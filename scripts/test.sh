#!/usr/bin/env bash
# test.sh -- the whole test suite, as CI runs it: installs what is missing,
# builds, runs every test under ctest, runs every libFuzzer target for 30 s
# (scripts/fuzz.sh), then every test again in an AddressSanitizer +
# UndefinedBehaviorSanitizer build, whose ctest summary closes the output.
# Tests that need a GPU skip and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/setup.sh build
ctest --test-dir build --output-on-failure -j "$jobs"

if [ "${TFTX_SKIP_SANITIZERS:-0}" != 1 ]; then
  # every libFuzzer target for 30 s from its seeds (6 targets: about 3 min
  # plus a clang build of under a minute)
  echo "== libFuzzer targets, 30 s each"
  bash scripts/fuzz.sh 30
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
  bash scripts/setup.sh build-asan -DTFTX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  ctest --test-dir build-asan --output-on-failure -j "$jobs"
fi
