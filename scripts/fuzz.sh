#!/usr/bin/env bash
# fuzz.sh -- build the libFuzzer targets of tests/fuzz in build-fuzz (clang,
# ASan + UBSan) and run each for SECONDS (default 30) from its seed corpus
# in tests/fuzz/corpus/<target>. Fails on any crash, leak or sanitizer
# report; the reproducer is left in build-fuzz/findings/<target>/.
#
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
targets=(results config data tokenizer safetensors hf_config)
command -v clang >/dev/null || { echo "fuzz: clang is missing (scripts/setup.sh installs it)" >&2; exit 1; }
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  CC=clang cmake -S . -B build-fuzz -DTFTX_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
fi
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}" 2>&1 | grep -E "error|warning" || true
# a claimed length of terabytes must fail the allocation, not abort: as in TEST_ENV
export ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1
# leaks inside Debian's libraries (libconfig), each explained in the file
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
rc=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t find=build-fuzz/findings/$t
  mkdir -p "$work" "$find"
  echo "== fuzz_$t for ${secs}s"
  if ! build-fuzz/bin/fuzz_$t -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$find/" "$work" "tests/fuzz/corpus/$t" >"build-fuzz/fuzz_$t.log" 2>&1; then
    echo "fuzz: fuzz_$t found a failure (reproducer in $find/):" >&2
    tail -40 "build-fuzz/fuzz_$t.log" >&2
    rc=1
  else
    grep -E "^Done [0-9]+ runs" "build-fuzz/fuzz_$t.log" || true
  fi
done
exit $rc
