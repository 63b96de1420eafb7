#!/usr/bin/env bash
# valgrind_test.sh BUILD -- memcheck of a short real sweep: `tftx run` on a
# 2-run experiment (ids data written here, bow model, cpu backend, sgd,
# train.threads = 1, a few steps), every child process traced. Any memory
# error or definite leak fails it; suppressions (valgrind.supp) cover only
# library-internal false positives. Skips (77) without valgrind or in a
# sanitizer build (BUILD = sanitized), where valgrind cannot run.
set -u
. "$(dirname "$0")/../testlib.sh"
: "${TFTX_BIN:?}"
if [ "${1:-plain}" = sanitized ]; then echo "SKIP: a sanitizer build (valgrind cannot run it)"; exit 77; fi
command -v valgrind >/dev/null || { echo "SKIP: valgrind is missing (scripts/setup.sh installs it)"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
make_tmp valgrind
cd "$T" || exit 1
"$PY" - data.ids <<'PY'
import random, sys
r = random.Random(3)
with open(sys.argv[1], "w") as f:
    for _ in range(48):
        f.write("%d\t%s\n" % (r.randint(0, 1), " ".join(str(r.randint(1, 30)) for _ in range(r.randint(3, 8)))))
PY
cat >vg.cfg <<'CFG'
experiment = { name = "vg"; seed = 2; };
data = { path = "data.ids"; format = "ids"; max_len = 8; valid = 0.25; test = 0.0; };
model = { plugin = "bow"; d_model = 8; hidden = 8; };
optimizer = { plugin = "sgd"; };
train = { backend = "cpu"; threads = 1; max_steps = 4; batch_size = 8; };
sweep = { optimizer = { lr = [0.1, 0.3]; }; };
CFG
unset TFTX_PLUGIN_PATH
valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --trace-children=yes \
  --suppressions="$here/valgrind.supp" --log-file=vg.%p.log \
  "$TFTX_BIN" run vg.cfg -q --out out/results.msgpack >run.out 2>&1
rc=$?
cat vg.*.log | grep -E "ERROR SUMMARY|definitely lost|Invalid|uninitialised|Mismatched" || true
if [ $rc != 0 ] || ! grep -q "vg: 2 ok, 0 failed" run.out; then
  echo "FAIL: valgrind run exit $rc" >&2
  cat run.out >&2
  for l in vg.*.log; do grep -q "ERROR SUMMARY: 0 errors" "$l" || cat "$l" >&2; done
  exit 1
fi
echo "PASS: $(ls vg.*.log | wc -l) processes, no memory errors, no definite leaks"
