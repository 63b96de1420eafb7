#!/usr/bin/env bash
# cli_test.sh -- the tftx command line as a user meets it: exit codes and
# messages of validate/plan/run/plugins/describe, Ctrl-C and kill -9 in the
# middle of a sweep, the Python reader of docs/results-format.md, exported
# plugin symbols, and a plugin built out of tree against the installed SDK.
set -u
. "$(dirname "$0")/testlib.sh"
: "${TFTX_BIN:?} ${TFTX_TEST_PLUGINS:?} ${TFTX_TEST_BROKEN:?} ${TFTX_SOURCE_DIR:?}"
make_tmp cli
export TFTX_PLUGIN_PATH=$TFTX_TEST_PLUGINS

cat >"$T/good.cfg" <<'CFG'
experiment = { name = "cli"; repeats = 2; };
tokenizer = { plugin = "probe"; };
train = { backend = "tback"; };
optimizer = { plugin = "tsgd"; };
sweep = { optimizer = { lr = [0.1, 0.01]; }; };
CFG
cat >"$T/bad.cfg" <<'CFG'
experiment = { name = "bad"; };
optimizer = { plugin = "tsgd";
  lr = "fast"; };
CFG

check version 0 '^tftx [0-9]+\.[0-9]+\.[0-9]+ \(plugin ABI 5\.1\)' -- "$TFTX_BIN" version
check no-args 2 'usage: tftx' -- "$TFTX_BIN"
check unknown-command 2 "unknown command 'frobnicate'" -- "$TFTX_BIN" frobnicate
check validate-ok 0 'valid, 4 runs' -- "$TFTX_BIN" validate "$T/good.cfg"
check validate-bad 2 'bad.cfg:3: optimizer.lr: expected a number, found a string' -- "$TFTX_BIN" validate "$T/bad.cfg"
check validate-missing 2 'nope.cfg: cannot read the experiment file: No such file' -- "$TFTX_BIN" validate "$T/nope.cfg"
check plan-table 0 '^4 runs$' -- "$TFTX_BIN" plan "$T/good.cfg"
check plan-columns 0 '^#  id +optimizer.lr +repeat +seed' -- "$TFTX_BIN" plan "$T/good.cfg"
check plan-set 0 '^6 runs$' -- "$TFTX_BIN" plan "$T/good.cfg" --set experiment.repeats=3
check set-bad 2 "--set train.timeout=soon: train.timeout: expected a number" -- "$TFTX_BIN" plan "$T/good.cfg" --set train.timeout=soon
check jobs-bad 2 '-j expects a number' -- "$TFTX_BIN" run "$T/good.cfg" -j 0
check plugins 0 'optimizer +tsgd +0\.1\.0 +ok' -- "$TFTX_BIN" plugins optimizer
check plugins-unavailable 0 'backend +tgpu .*unavailable.*no device found' -- "$TFTX_BIN" plugins backend
check plugins-broken 1 'optimizer +badmajor +- +broken .*built for plugin ABI 6\.1' -- env TFTX_PLUGIN_PATH="$TFTX_TEST_BROKEN" "$TFTX_BIN" plugins
check describe 0 'momentum +float +default 0 +range \[0, 1\]' -- "$TFTX_BIN" describe optimizer tsgd
check describe-enum 0 'activation +enum +default "gelu" +one of: gelu relu' -- "$TFTX_BIN" describe tokenizer probe
check describe-missing 2 "no optimizer plugin named 'nope'" -- "$TFTX_BIN" describe optimizer nope
check describe-section 0 'repeats +int +default 1 +range \[1, 10000\]' -- "$TFTX_BIN" describe experiment

# a sweep, resumed: nothing is run twice
cd "$T"
check run 0 'cli: 4 ok, 0 failed, 0 already done' -- "$TFTX_BIN" run good.cfg -j 2
check run-output-dir 0 '' -- test -s "$T/results/cli/results.msgpack"
check rerun 0 'cli: 0 ok, 0 failed, 4 already done' -- "$TFTX_BIN" run good.cfg

# the Python reader printed in docs/results-format.md works on that log
if $PY -c 'import msgpack' 2>/dev/null; then
  sed -n '/^```python$/,/^```$/p' "$TFTX_SOURCE_DIR/docs/results-format.md" | sed '1d;$d' >"$T/reader.py"
  check python-reader 0 'ok +4' -- $PY "$T/reader.py" "$T/results/cli/results.msgpack"
else
  echo "SKIP: python-reader (python3-msgpack not installed)"
fi

# Ctrl-C in the middle: finished runs stay, exit 130, the rerun completes
cat >"$T/slow.cfg" <<'CFG'
experiment = { name = "slow"; };
tokenizer = { plugin = "probe"; };
train = { backend = "tback"; timeout = 30.0; };
optimizer = { plugin = "tsgd"; };
sweep = { tokenizer = { mode = ["ok", "hang"]; layers = [1, 2, 3]; }; };
CFG
"$TFTX_BIN" run slow.cfg --out "$T/slow.msgpack" >"$T/slow.out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q '\[3/6\]' "$T/slow.out" 2>/dev/null && break; sleep 0.1; done
sleep 0.3
kill -INT $pid; wait $pid; rc=$?
[ "$rc" = 130 ] && ok || bad "ctrl-c: exit $rc, wanted 130: $(cat "$T/slow.out")"
grep -q 'stopped by Interrupt: 1 run interrupted and not recorded' "$T/slow.out" && ok || bad "ctrl-c message: $(cat "$T/slow.out")"
check after-ctrl-c 0 'slow: 0 ok, 0 failed, 3 already done, 0 not run' -- "$TFTX_BIN" run slow.cfg --out "$T/slow.msgpack" --set 'sweep.tokenizer.mode=["ok"]'
# kill -9 of the whole sweep (runner and runs): the log reads cleanly, the rerun finishes without duplicates
"$TFTX_BIN" run slow.cfg --out "$T/k9.msgpack" --set train.timeout=0.5 >"$T/k9.out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q '\[3/6\]' "$T/k9.out" 2>/dev/null && break; sleep 0.1; done
pkill -9 -P $pid; kill -9 $pid; wait $pid 2>/dev/null
check after-kill-9 1 'slow: 0 ok, 3 failed, 3 already done, 0 not run' -- "$TFTX_BIN" run slow.cfg --out "$T/k9.msgpack" --set train.timeout=0.5
if $PY -c 'import msgpack' 2>/dev/null; then
  # no finished run is lost or recorded twice (failed runs are retried, so they may repeat)
  check k9-no-duplicates 0 '^3 3 6$' -- $PY -c '
import msgpack, sys
recs = [r for r in msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False) if r["type"] == "run"]
ok = [r["id"] for r in recs if r["status"] == "ok"]
print(len(ok), len(set(ok)), len({r["id"] for r in recs}))' "$T/k9.msgpack"
fi

# plugins export only their entry point
for so in "$TFTX_TEST_PLUGINS"/*.so; do
  syms=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^_' | sort -u | tr '\n' ' ')
  [ "$syms" = "tftx_plugin_entry " ] && ok || bad "$(basename "$so") exports: $syms"
done

# out of tree: install the SDK into a prefix, build a plugin with find_package
# and with pkg-config, and load both
if [ -n "${TFTX_BUILD_DIR:-}" ]; then
  cmake --install "$TFTX_BUILD_DIR" --prefix "$T/prefix" >/dev/null && ok || bad "cmake --install failed"
  check oot-cmake-configure 0 '' -- cmake -S "$TFTX_SOURCE_DIR/tests/out_of_tree" -B "$T/oot" -DCMAKE_PREFIX_PATH="$T/prefix"
  check oot-cmake-build 0 '' -- cmake --build "$T/oot"
  check oot-load 0 'optimizer oot 0\.0\.1: built out of tree' -- env TFTX_PLUGIN_PATH="$T/oot" "$T/prefix/bin/tftx" describe optimizer oot
  mkdir -p "$T/pc"
  check oot-pkgconfig 0 '' -- sh -c "cc -shared \$(PKG_CONFIG_PATH='$T/prefix/lib/pkgconfig:$T/prefix/share/pkgconfig' pkg-config --cflags tftx) -o '$T/pc/tftx_optimizer_oot.so' '$TFTX_SOURCE_DIR/tests/out_of_tree/oot.c'"
  check oot-pkgconfig-load 0 'built out of tree' -- env TFTX_PLUGIN_PATH="$T/pc" "$T/prefix/bin/tftx" describe optimizer oot
  check installed-headers 0 '' -- test -f "$T/prefix/include/tftx/plugin.h"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
