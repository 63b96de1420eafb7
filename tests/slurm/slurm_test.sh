#!/usr/bin/env bash
# slurm_test.sh -- the Slurm workflow of docs/cluster.md on a single-node
# Slurm cluster that this script starts on loopback: its own munged (own
# key and socket), slurmctld and slurmd (own slurm.conf, ports, state,
# spool and logs), all under a temporary directory, as root, no systemd.
#
# A small real sweep (bow model, cpu backend, sgd, the `ids` data format,
# 6 runs of a few steps, train.threads = 1) goes through `tftx slurm` ->
# `sbatch` (the first task submits the merge job) -> 3 array tasks -> the
# merge job; the merged log must hold exactly the runs of the same sweep
# run on this machine, with the same metrics (timing fields aside). Then a
# task is requeued: it resumes its shard and runs nothing again. A second
# submission with `bash SCRIPT` submits the array and the merge job itself.
#
# The checks that need no cluster (the reference sweep, the generated
# script, refusals of `tftx slurm` and `--shard`) run first. Every daemon
# and job the script started is stopped on exit, also on failure. Needs
# Debian's slurm-wlm and munge: installs them when missing; when that is
# impossible, exits 77 (skipped) after the checks that need no cluster.
set -u
. "$(dirname "$0")/../testlib.sh"
: "${TFTX_BIN:?}"
SKIP=77
# no Slurm here: what ran passed, the cluster part is skipped (exit 77)
skip_cluster() {
  echo "$pass passed, $fail failed; SKIP: the Slurm part: $*"
  [ "$fail" = 0 ] && exit $SKIP
  exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); } # milliseconds as seconds
started=$(now_ms)

S=$(mktemp -d "${TMPDIR:-/tmp}/tftx-slurm-XXXXXX")
chmod 755 "$S" # munged wants its socket's directories searchable by all
pids=() ctld=""
cleanup() {
  if [ -n "$ctld" ] && kill -0 "$ctld" 2>/dev/null; then
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u)
    if [ -n "$jobs" ]; then
      scancel $jobs 2>/dev/null
      for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
    fi
  fi
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$S"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------- the sweep, and what needs no cluster
W="$S/exp dir" # a space: every path in the script must be quoted
mkdir -p "$W"
$PY - "$W/data.ids" <<'PY'
import random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for _ in range(240):
        label = r.randint(0, 1)
        ids = [r.randint(1, 39) for _ in range(r.randint(4, 12))]
        if label:
            ids[r.randrange(len(ids))] = r.randint(40, 49)
        f.write(f"{label}\t{' '.join(map(str, ids))}\n")
PY
cat >"$W/sweep.cfg" <<'CFG'
experiment = { name = "slurmy"; seed = 3; repeats = 2; };
data = { path = "data.ids"; format = "ids"; max_len = 16; valid = 0.2; test = 0.2; };
model = { plugin = "bow"; d_model = 16; hidden = 16; };
optimizer = { plugin = "sgd"; lr = 0.1; };
train = { backend = "cpu"; threads = 1; max_steps = 3; batch_size = 8; };
sweep = { optimizer = { lr = [0.1, 0.3, 0.03]; }; };
CFG
sets=(--set train.max_steps=6 --set "experiment.description=it's \"quoted\" \$HOME")
cd "$W" || exit 1

# the same sweep on this machine, for reference
out=$("$TFTX_BIN" run sweep.cfg -j 2 --quiet "${sets[@]}" --out "$S/local.msgpack" 2>&1)
if grep -q 'slurmy: 6 ok, 0 failed' <<<"$out"; then ok; else bad "local run: $out"; fi

out=$("$TFTX_BIN" slurm sweep.cfg --shards 3 --parallel 2 --time 10 "${sets[@]}" 2>"$S/gen.err" >"$W/sweep.sh")
if [ $? = 0 ] && grep -q '^#SBATCH --array=0-2%2$' sweep.sh && grep -q '^#SBATCH --requeue$' sweep.sh &&
  grep -q '6 runs in 3 shards' "$S/gen.err"; then ok; else bad "tftx slurm: $(cat "$S/gen.err" sweep.sh)"; fi
bash -n sweep.sh && ok || bad "the generated script is not valid bash"
check_gen() { # NAME WANT_RC PATTERN ARGS...: tftx slurm's refusals
  local name=$1 want=$2 pat=$3; shift 3
  local o rc
  o=$("$TFTX_BIN" slurm "$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" = "$want" ] && grep -qE -- "$pat" <<<"$o"; then ok; else bad "$name: exit $rc: $o"; fi
}
check_gen shards-zero 2 '--shards expects a whole number' sweep.cfg --shards 0
check_gen unknown-option 2 "unknown option '--nodes'" sweep.cfg --nodes 2
check_gen bad-file 2 'cannot read the experiment file' nope.cfg
check_run() { # NAME PATTERN ARGS...: tftx run --shard refusals (exit 2)
  local name=$1 pat=$2; shift 2
  local o rc
  o=$("$TFTX_BIN" run sweep.cfg "$@" 2>&1); rc=$?
  if [ "$rc" = 2 ] && grep -qE -- "$pat" <<<"$o"; then ok; else bad "$name: exit $rc: $o"; fi
}
check_run shard-range 'shards are numbered from 0, so I must be in 0..2' --shard 3/3
check_run shard-form 'expects I/N' --shard 1-3
check_run shard-zero 'number of shards must be in 1' --shard 0/0
o=$("$TFTX_BIN" plan sweep.cfg --shard 0/2 2>&1)
[ $? = 2 ] && grep -q -- '--shard applies to run only' <<<"$o" && ok || bad "plan --shard: $o"

# ---------------------------------------------------------------- Slurm itself
have_slurm() {
  local c
  for c in munged slurmctld slurmd sbatch squeue scontrol scancel; do
    command -v "$c" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$c" >/dev/null 2>&1 || return 1
  done
}
export PATH=$PATH:/usr/sbin
if ! have_slurm; then
  [ "$(id -u)" = 0 ] || skip_cluster "slurm-wlm and munge are not installed, and installing them needs root"
  command -v apt-get >/dev/null || skip_cluster "slurm-wlm and munge are not installed, and there is no apt-get"
  echo "slurm test: installing slurm-wlm munge (once)"
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$log" 2>&1; then
    apt-get update -qq >>"$log" 2>&1
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >>"$log" 2>&1 ||
      { why=$(tail -n 1 "$log"); rm -f "$log"; skip_cluster "apt-get install slurm-wlm munge failed: $why"; }
  fi
  rm -f "$log"
  have_slurm || skip_cluster "slurm-wlm and munge were installed but their programs are not on PATH"
fi
[ "$(id -u)" = 0 ] || skip_cluster "the test cluster's daemons run as root"
$PY -c 'import msgpack' 2>/dev/null || skip_cluster "python3-msgpack is not installed (scripts/setup.sh installs it)"

# ---------------------------------------------------------------- the cluster
mkdir -p "$S/munge" "$S/state" "$S/spool" "$S/log"
chmod 755 "$S/munge"
head -c 1024 /dev/urandom >"$S/munge/munge.key"
chmod 400 "$S/munge/munge.key"
munged -F --key-file="$S/munge/munge.key" --socket="$S/munge/munge.sock" --pid-file="$S/munge/munged.pid" \
  --log-file="$S/log/munged.log" --seed-file="$S/munge/munged.seed" >"$S/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$S/munge/munge.sock" ] && break; sleep 0.1; done
[ -S "$S/munge/munge.sock" ] || { cat "$S/log/munged.out" "$S/log/munged.log" >&2; skip_cluster "munged did not start"; }

export SLURM_CONF=$S/slurm.conf
unset SLURM_JOB_ID SLURM_ARRAY_TASK_ID SLURM_ARRAY_JOB_ID
start_slurm() {
  local port=$((20000 + RANDOM % 40000))
  cat >"$SLURM_CONF" <<EOF
ClusterName=tftxtest
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/munge.sock,cred_expire=5
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_min_interval=200000
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.log
ReturnToService=2
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -D -i >"$S/log/slurmctld.out" 2>&1 &
  ctld=$!
  slurmd -D -N localhost >"$S/log/slurmd.out" 2>&1 &
  slurmd=$!
  pids+=("$ctld" "$slurmd")
  for _ in $(seq 100); do
    [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && return 0
    kill -0 "$ctld" 2>/dev/null && kill -0 "$slurmd" 2>/dev/null || break
    sleep 0.1
  done
  kill "$ctld" "$slurmd" 2>/dev/null
  wait "$ctld" "$slurmd" 2>/dev/null
  return 1
}
start_slurm || start_slurm || {
  tail -n 5 "$S/log/slurmctld.log" "$S/log/slurmd.log" "$S/log/"*.out >&2
  skip_cluster "the single-node Slurm cluster did not come up (logs above)"
}
echo "slurm test: cluster up after $(secs $(($(now_ms) - started))) s"

# wait_jobs SECONDS: until our cluster has no pending or running job
wait_jobs() {
  local deadline=$(($(date +%s) + $1))
  while [ -n "$(squeue -h 2>/dev/null)" ]; do
    [ "$(date +%s)" -ge "$deadline" ] && { squeue >&2; return 1; }
    sleep 0.2
  done
}

# submit with sbatch: the first task to start submits the merge job
t0=$(now_ms)
array=$(sbatch --parsable sweep.sh 2>&1) || bad "sbatch: $array"
array=${array%%;*}
wait_jobs 60 || bad "the array and its merge job did not finish within 60 s"
t_sweep=$(secs $(($(now_ms) - t0)))
R="$W/results/slurmy"
merge_job=$(cat "$R/slurm/merge-$array.submitted/job" 2>/dev/null)
[ -n "$merge_job" ] && ok || bad "no merge job was submitted for array $array: $(ls -la "$R/slurm" 2>&1)"
n_merge_jobs=$(grep -c 'Name=tftx-slurmy-merge ' "$S/log/jobcomp.log")
[ "$n_merge_jobs" = 1 ] && ok || bad "$n_merge_jobs merge jobs ran, wanted 1"
for k in 0 1 2; do
  if grep -q "ArrayJobId=$array ArrayTaskId=$k .*ExitCode=0:0" <(grep "JobState=COMPLETED" "$S/log/jobcomp.log"); then
    ok
  else
    bad "task $k did not complete: $(grep "ArrayTaskId=$k" "$S/log/jobcomp.log") $(cat "$R/slurm/shard-$k-of-3.out")"
  fi
done
if grep -q "JobId=$merge_job .*JobState=COMPLETED.*ExitCode=0:0" "$S/log/jobcomp.log" &&
  grep -q 'every planned run is present and ok' "$R/slurm/merge-$merge_job.out"; then
  ok
else
  bad "merge job: $(grep "JobId=$merge_job " "$S/log/jobcomp.log") $(cat "$R/slurm/merge-$merge_job.out" 2>&1)"
fi

# the merged log holds exactly the runs of the local sweep, with its metrics
compare() { # MERGED: exit 0 when it matches local.msgpack
  $PY - "$S/local.msgpack" "$1" <<'PY'
import sys
import msgpack

TIMING = {"train_s", "tokens_per_s", "wall_s", "peak_rss_mib"}

def load(path):
    headers, runs = [], {}
    with open(path, "rb") as f:
        for r in msgpack.Unpacker(f, raw=False):
            if r["type"] == "header":
                headers.append(r)
            else:
                runs[r["id"]] = r
    return headers, runs

_, local = load(sys.argv[1])
headers, merged = load(sys.argv[2])
problems = []
if len(headers) != 1 or len(headers[0].get("merged_from", [])) != 3:
    problems.append(f"want one header merging 3 logs, got {[h.get('merged_from') for h in headers]}")
if sorted(local) != sorted(merged):
    problems.append(f"ids differ: local {sorted(local)} merged {sorted(merged)}")
for i in sorted(set(local) & set(merged)):
    a, b = local[i], merged[i]
    if b["status"] != "ok":
        problems.append(f"{i}: {b['status']} {b['error']}")
    ma = {k: v for k, v in a["metrics"].items() if k not in TIMING}
    mb = {k: v for k, v in b["metrics"].items() if k not in TIMING}
    if ma != mb:
        diff = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
        problems.append(f"{i}: metrics differ in {diff}")
    if not ma.get("steps"):
        problems.append(f"{i}: no training steps in the metrics: {ma}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
}
out=$(compare "$R/results.msgpack" 2>&1) && ok || bad "merged log vs local sweep: $out"

# a requeued task resumes its shard: nothing runs twice, no second merge job
sizes() { stat -c %s "$R"/results.shard-*-of-3.msgpack | tr '\n' ' '; }
before=$(sizes)
scontrol requeue "${array}_1" >/dev/null 2>&1 || bad "scontrol requeue ${array}_1 failed"
# a requeued job waits for its old credential to expire (cred_expire); no need here
scontrol update JobId="${array}_1" StartTime=now >/dev/null 2>&1
wait_jobs 30 || bad "the requeued task did not finish within 30 s"
if grep -q '=== tftx shard 1/3: .*restart 1' "$R/slurm/shard-1-of-3.out" &&
  grep -qE 'slurmy: 0 ok, 0 failed, [0-9]+ already done, 0 not run of [0-9]+ runs in this shard \(1/3\)' \
    "$R/slurm/shard-1-of-3.out"; then
  ok
else
  bad "requeued task 1: $(cat "$R/slurm/shard-1-of-3.out")"
fi
[ "$(sizes)" = "$before" ] && ok || bad "a shard log changed on requeue: $before -> $(sizes)"
n_merge_jobs=$(grep -c 'Name=tftx-slurmy-merge ' "$S/log/jobcomp.log")
[ "$n_merge_jobs" = 1 ] && ok || bad "the requeue submitted another merge job ($n_merge_jobs)"

# submit with bash: the script submits the array, then the merge job; the
# shards resume (all done), the merge writes the same runs again
rm -f "$R/results.msgpack"
out=$(bash sweep.sh 2>&1)
array2=$(sed -n 's/^tftx: job array \([0-9]*\): 3 shards.*/\1/p' <<<"$out")
if [ -n "$array2" ] && grep -q "merge job [0-9]* will run after job array $array2" <<<"$out"; then
  ok
else
  bad "bash sweep.sh: $out"
fi
wait_jobs 60 || bad "the second submission did not finish within 60 s"
n_merge_jobs=$(grep -c 'Name=tftx-slurmy-merge ' "$S/log/jobcomp.log")
[ "$n_merge_jobs" = 2 ] && ok || bad "$n_merge_jobs merge jobs in all, wanted 2 (one per array)"
out=$(compare "$R/results.msgpack" 2>&1) && ok || bad "second merged log vs local sweep: $out"

echo "slurm test: sbatch to merged log $t_sweep s; whole test $(secs $(($(now_ms) - started))) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
