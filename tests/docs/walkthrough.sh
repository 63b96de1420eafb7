#!/usr/bin/env bash
# walkthrough.sh -- docs/writing-an-optimizer.md, done as the page says: the
# files it shows are the ones shipped in docs/examples/lion/ (and its Python
# regenerates data.ids), the SDK installs into a temporary prefix, Lion
# builds out of tree with find_package(tftx) and with the page's pkg-config
# line, `tftx describe` and `tftx check optimizer lion` accept it, and the
# example sweep trains AdamW and Lion (both `ok`, both above chance) and
# `tftx report` lists them. Everything happens under a temporary directory,
# removed at exit; one PASS/FAIL line per step, exit 1 when any fails.
set -u
. "$(dirname "$0")/../testlib.sh"
: "${TFTX_BUILD_DIR:?} ${TFTX_SOURCE_DIR:?}"
make_tmp walkthrough
DOC=$TFTX_SOURCE_DIR/docs/writing-an-optimizer.md
EX=$TFTX_SOURCE_DIR/docs/examples/lion
unset TFTX_PLUGIN_PATH
# block LANG: the first fenced block of that language on the page
block() { awk -v fence='```'"$1" '$0 == fence {on = 1; next} on && $0 == "```" {exit} on {print}' "$DOC"; }

# the page shows the shipped files
block c >"$T/lion.c"
block cmake >"$T/CMakeLists.txt"
block cfg >"$T/sweep.cfg"
check page-lion.c 0 '' -- diff -u "$EX/lion.c" "$T/lion.c"
check page-CMakeLists.txt 0 '' -- diff -u "$EX/CMakeLists.txt" "$T/CMakeLists.txt"
check page-sweep.cfg 0 '' -- diff -u "$EX/sweep.cfg" "$T/sweep.cfg"
if command -v python3 >/dev/null; then
  mkdir -p "$T/gen"
  block python >"$T/gen/make_data.py"
  check page-data.ids 0 '' -- sh -c "cd '$T/gen' && python3 make_data.py && cmp data.ids '$EX/data.ids'"
else
  echo "SKIP page-data.ids (no python3)"
fi

# 1. the SDK, in a prefix of our own
check install 0 '' -- cmake --install "$TFTX_BUILD_DIR" --prefix "$T/prefix"
TFTX=$T/prefix/bin/tftx

# 3. building: CMake with find_package(tftx), and the pkg-config line
check cmake-configure 0 '' -- cmake -S "$EX" -B "$T/build" -DCMAKE_PREFIX_PATH="$T/prefix"
check cmake-build 0 '' -- cmake --build "$T/build"
line=$(grep -m1 '^cc .*pkg-config --cflags tftx' "$DOC")
mkdir -p "$T/pc"
cp "$EX/lion.c" "$T/pc/"
check pkg-config-build 0 '' -- sh -c "cd '$T/pc' && PKG_CONFIG_PATH='$T/prefix/lib/pkgconfig' && export PKG_CONFIG_PATH && $line"
for so in "$T/build/tftx_optimizer_lion.so" "$T/pc/tftx_optimizer_lion.so"; do
  syms=$(nm -D --defined-only "$so" 2>/dev/null | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^_' | sort -u | tr '\n' ' ')
  [ "$syms" = "tftx_plugin_entry " ] && ok "exports-${so#$T/}" || bad "exports-${so#$T/}: $syms"
done

# 4. describing it, from either build
check describe 0 'betas +float list +default \[0\.9, 0\.99\]' -- env TFTX_PLUGIN_PATH="$T/build" "$TFTX" describe optimizer lion
check describe-pkg-config 0 '^optimizer lion 1\.0\.0: Lion' -- env TFTX_PLUGIN_PATH="$T/pc" "$TFTX" describe optimizer lion

# 5. checking it
if "$TFTX" check 2>&1 | grep -q "unknown command 'check'"; then
  bad "check: this tftx has no 'check' command (dispatch cmd_check of host/check_optimizer.h in host/main.c)"
else
  check check-lion 0 'optimizer lion: all 9 checks passed' -- env TFTX_PLUGIN_PATH="$T/build" "$TFTX" check optimizer lion
  check check-lion-pkg-config 0 'all 9 checks passed' -- env TFTX_PLUGIN_PATH="$T/pc" "$TFTX" check optimizer lion
fi

# 6. the sweep, run from elsewhere (paths in the file are relative to it)
mkdir -p "$T/work"
cd "$T/work"
check sweep 0 'lion-vs-adamw: 2 ok, 0 failed' -- env TFTX_PLUGIN_PATH="$T/build" "$TFTX" run "$EX/sweep.cfg"
check report 0 'optimizer\.plugin=lion' -- "$TFTX" report results/lion-vs-adamw/results.msgpack --csv "$T/report.csv"
# both runs ok and better than chance (3 balanced classes: 1/3)
check trained 0 '^2 runs ok, 2 above chance$' -- awk -F, 'NR > 1 { n += $2 == "ok"; good += $6 > 0.5 }
  END { printf "%d runs ok, %d above chance\n", n, good }' "$T/report.csv"
check report-adamw 0 '' -- grep -q 'optimizer\.plugin=adamw' "$T/report.csv"
# nothing was written next to the sources
check source-untouched 0 '' -- sh -c "! ls -d '$EX/build' '$EX/results' 2>/dev/null | grep -q ."

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
