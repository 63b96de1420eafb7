#!/usr/bin/env bash
# faults_test.sh -- faults a sweep must survive, each followed by a look at
# what is on disk: the file size limit hit during a sweep (RLIMIT_FSIZE, as
# a full disk), an output folder we may not write, and a results log with
# flipped bytes, a cut in the middle, and records of another format version
# (report keeps the good records, resume refuses, tftx repair cleans it).
set -u
. "$(dirname "$0")/../testlib.sh"
: "${TFTX_BIN:?} ${TFTX_TEST_PLUGINS:?}"
make_tmp faults
export TFTX_PLUGIN_PATH=$TFTX_TEST_PLUGINS
# records LOG: "type:status" of every record a strict reader finds, then
# "ERROR" if anything is left over or broken
records() {
  "$PY" - "$1" <<'PY'
import sys, msgpack
data = open(sys.argv[1], 'rb').read()
u = msgpack.Unpacker(raw=False); u.feed(data)
try:
    for o in u: print("%s:%s" % (o.get("type"), o.get("status")))
    if u.tell() != len(data): print("ERROR")
except Exception as e: print("ERROR", e)
PY
}
cd "$T"
cat >x.cfg <<'CFG'
experiment = { name = "faults"; output = "out"; repeats = 2; };
tokenizer = { plugin = "probe"; };
train = { backend = "tback"; };
optimizer = { plugin = "tsgd"; };
sweep = { optimizer = { lr = [0.1, 0.01]; }; };
CFG

# 1. file size limit (a full disk) in the middle of the sweep: header and
# first run fit in 4 KiB, the second run's record does not
out=$( (ulimit -f 4; "$TFTX_BIN" run x.cfg -q --out fsize/log.msgpack) 2>&1); rc=$?
got=$(records fsize/log.msgpack | tr '\n' ' ')
if [ $rc = 1 ] && grep -q "cannot write a [0-9]*-byte record: File too large" <<<"$out" &&
   [ "$got" = "header:None run:ok " ]; then ok fsize
else bad "fsize: rc $rc, records '$got', output: $out"; fi
# and the sweep resumes where it stopped once there is room
"$TFTX_BIN" run x.cfg -q --out fsize/log.msgpack >/dev/null 2>&1
got=$(records fsize/log.msgpack | grep -c run:ok)
[ "$got" = 4 ] && ok fsize-resume || bad "fsize-resume: $got runs ok after resuming"

# 2. an output folder we may not write (root ignores modes: run as nobody)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  mkdir -p ro && chown 65534:65534 ro && chmod 555 ro
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$TFTX_BIN" run x.cfg -q --out ro/sub/log.msgpack 2>&1); rc=$?
  if [ $rc = 1 ] && grep -q "cannot create the directory ro/sub: Permission denied" <<<"$out" && [ -z "$(ls -A ro)" ]; then
    ok unwritable
  else bad "unwritable: rc $rc: $out"; fi
elif [ "$(id -u)" != 0 ]; then
  mkdir -p ro && chmod 555 ro
  out=$("$TFTX_BIN" run x.cfg -q --out ro/sub/log.msgpack 2>&1); rc=$?
  [ $rc = 1 ] && grep -q "Permission denied" <<<"$out" && ok unwritable || bad "unwritable: rc $rc: $out"
else echo "SKIP unwritable: running as root without setpriv (root ignores permissions)"; fi

# 3. a damaged log: a complete sweep, then damage in the middle
"$TFTX_BIN" run x.cfg -q >/dev/null 2>&1
good=out/results.msgpack
offs=$("$PY" -c "
import msgpack,sys
u=msgpack.Unpacker(open('$good','rb'),raw=False)
print(' '.join(str(u.tell()) for o in u))")
set -- $offs   # end offsets: header, run1..run4
flip() { cp "$good" "$2"; printf '\xc1' | dd of="$2" bs=1 seek="$1" conv=notrunc status=none; }
# 3a. the first byte of the second run record (offset $2) flipped
flip "$2" flipped.msgpack
out=$("$TFTX_BIN" report flipped.msgpack 2>&1); rc=$?
if [ $rc = 0 ] && grep -q "flipped.msgpack: bytes $2\.\.$3 .*after record 2" <<<"$out" &&
   grep -q "reporting its 4 good records" <<<"$out"; then ok report-flipped
else bad "report-flipped: rc $rc: $out"; fi
mkdir -p resume && cp flipped.msgpack resume/results.msgpack
out=$("$TFTX_BIN" run x.cfg -q --out resume/results.msgpack 2>&1); rc=$?
if [ $rc = 1 ] && grep -q "damaged at byte $2 (after record 2.*tftx repair resume/results.msgpack" <<<"$out" &&
   cmp -s flipped.msgpack resume/results.msgpack; then ok resume-refuses
else bad "resume-refuses: rc $rc: $out"; fi
out=$("$TFTX_BIN" repair resume/results.msgpack 2>&1); rc=$?
got=$(records resume/results.msgpack | tr '\n' ' ')
if [ $rc = 0 ] && cmp -s flipped.msgpack resume/results.msgpack.damaged &&
   [ "$got" = "header:None run:ok run:ok run:ok " ]; then ok repair
else bad "repair: rc $rc, records '$got': $out"; fi
out=$("$TFTX_BIN" run x.cfg -q --out resume/results.msgpack 2>&1); rc=$?
got=$(records resume/results.msgpack | grep -c run:ok)
[ $rc = 0 ] && [ "$got" = 4 ] && ok resume-after-repair || bad "resume-after-repair: rc $rc, $got ok: $out"
out=$("$TFTX_BIN" repair resume/results.msgpack 2>&1); rc=$?
[ $rc = 0 ] && grep -q "no damage found" <<<"$out" && ok repair-clean || bad "repair-clean: rc $rc: $out"

# 3b. cut in the middle: the second half of run record 1 removed
half=$(( ($1 + $2) / 2 ))
{ head -c "$half" "$good"; tail -c +$(($2 + 1)) "$good"; } >cut.msgpack
out=$("$TFTX_BIN" report cut.msgpack 2>&1); rc=$?
if [ $rc = 0 ] && grep -q "cut.msgpack: bytes $1\.\..*after record 1" <<<"$out" &&
   grep -q "reporting its 4 good records" <<<"$out"; then ok report-cut
else bad "report-cut: rc $rc: $out"; fi

# 3c. a header and a run of another format version in the middle
"$PY" - "$good" foreign.msgpack "$2" <<'PY'
import sys, msgpack
data = open(sys.argv[1], 'rb').read(); at = int(sys.argv[3])
alien = msgpack.packb({"type": "header", "format": 99}) + msgpack.packb({"type": "run", "id": "x", "status": "ok"})
good = [o for o in msgpack.Unpacker(open(sys.argv[1], 'rb'), raw=False)]
# after it, the same experiment's header again, then the remaining runs
hdr = msgpack.packb(good[0])
open(sys.argv[2], 'wb').write(data[:at] + alien + hdr + data[at:])
PY
out=$("$TFTX_BIN" report foreign.msgpack 2>&1); rc=$?
if [ $rc = 0 ] && grep -q "after record 2): records under a header of another format version" <<<"$out"; then
  ok report-foreign
else bad "report-foreign: rc $rc: $out"; fi

# 3d. a torn tail (a crash mid-write) is still cut on resume, not refused
head -c $(( $5 - 7 )) "$good" >torn.msgpack; mkdir -p torn && cp torn.msgpack torn/results.msgpack
out=$("$TFTX_BIN" run x.cfg -q --out torn/results.msgpack 2>&1); rc=$?
got=$(records torn/results.msgpack | grep -c run:ok)
[ $rc = 0 ] && [ "$got" = 4 ] && grep -q "last record is incomplete" <<<"$out" && ok torn || bad "torn: rc $rc, $got ok: $out"

# 4. a loss that becomes NaN/Inf: the real sgd with lr = 1e30 on a tiny ids +
# bow experiment ends `diverged` with the step; the sweep goes on and its
# other run (lr = 0.1) ends ok
"$PY" - nan.ids <<'PY'
import random, sys
r = random.Random(7)
with open(sys.argv[1], "w") as f:
    for _ in range(64):
        f.write("%d\t%s\n" % (r.randint(0, 1), " ".join(str(r.randint(1, 30)) for _ in range(6))))
PY
cat >nan.cfg <<'CFG'
experiment = { name = "nan"; seed = 1; };
data = { path = "nan.ids"; format = "ids"; max_len = 8; valid = 0.25; test = 0.0; };
model = { plugin = "bow"; d_model = 8; hidden = 8; };
optimizer = { plugin = "sgd"; };
train = { backend = "cpu"; threads = 1; max_steps = 20; batch_size = 8; };
sweep = { optimizer = { lr = [1e30, 0.1]; }; };
CFG
out=$(TFTX_PLUGIN_PATH= "$TFTX_BIN" run nan.cfg -q --out nan/results.msgpack 2>&1); rc=$?
got=$("$PY" - nan/results.msgpack <<'PY'
import sys, msgpack
for o in msgpack.Unpacker(open(sys.argv[1], 'rb'), raw=False):
    if o.get("type") != "run": continue
    lr = o["config"]["optimizer"]["lr"]
    print("%g:%s:%s:%s" % (lr, o.get("status"), (o.get("metrics") or {}).get("diverged_at"),
                           "became" in (o.get("error") or "")))
PY
)
got=$(sort <<<"$got" | tr '\n' ' ')
if [ $rc = 1 ] && [[ "$got" =~ ^0.1:ok:None:False\ 1e\+30:diverged:[0-9]+:True\ $ ]]; then ok diverged
else bad "diverged: rc $rc, runs '$got': $out"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
