#!/usr/bin/env bash
# test.sh -- the whole test suite, as CI runs it: installs what is missing,
# builds, runs every test under ctest, runs every libFuzzer target for 30 s
# (scripts/fuzz.sh), then every test again in an AddressSanitizer +
# UndefinedBehaviorSanitizer build, whose ctest summary closes the output.
# Tests that need a GPU skip and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

# skipped BUILD_DIR: each test the last ctest run reported skipped
# (BUILD_DIR/Testing/ctest.out), with the last line it printed: its reason
# (no CUDA device, no valgrind...), from ctest's LastTest.log
skipped() {
  local t
  for t in $(sed -n 's/^.* - \([^ ]*\) (Skipped)$/\1/p' "$1/Testing/ctest.out"); do
    printf 'skipped: %s: %s\n' "$t" "$(awk -v t="$t" '$0 ~ "^[0-9]+/[0-9]+ Test: " {name = $3}
      /^<end of output>/ {if (name == t) print last} /^Output:/ {getline; last = ""; next} NF {last = $0}' \
      "$1/Testing/Temporary/LastTest.log")"
  done
}

bash scripts/setup.sh build
mkdir -p build/Testing
ctest --test-dir build --output-on-failure -j "$jobs" | tee build/Testing/ctest.out
skipped build

if [ "${TFTX_SKIP_SANITIZERS:-0}" != 1 ]; then
  # every libFuzzer target for 30 s from its seeds (6 targets: about 3 min
  # plus a clang build of under a minute)
  echo "== libFuzzer targets, 30 s each"
  bash scripts/fuzz.sh 30
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
  bash scripts/setup.sh build-asan -DTFTX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  ctest --test-dir build-asan --output-on-failure -j "$jobs"
fi
