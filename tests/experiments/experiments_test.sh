#!/usr/bin/env bash
# experiments_test.sh -- run each experiment of experiments/ at a reduced
# size (--set overrides: few steps, the shipped sample instead of the full
# corpus, one seed) and check every run ends `ok`, the report ranks them, and
# a run repeated with `tftx rerun` matches its record exactly. finetune.cfg
# starts from a checkpoint that a reduced quickstart run saves.
set -u
. "$(dirname "$0")/../testlib.sh"
: "${TFTX_BIN:?} ${TFTX_SOURCE_DIR:?}"
make_tmp exp
cd "$T"
E=$TFTX_SOURCE_DIR/experiments
unset TFTX_PLUGIN_PATH

# run NAME RUNS [--set ...]: the sweep at reduced size; expect RUNS ok runs
run() {
  local name=$1 runs=$2; shift 2
  local out
  out=$("$TFTX_BIN" run "$E/$name.cfg" -j 2 --quiet --set train.max_steps=3 --set train.eval_every=3 "$@" 2>&1)
  if grep -qE "^tftx: [a-z]+: $runs ok, 0 failed" <<<"$out"; then ok; else bad "$name: $out"; return; fi
  out=$("$TFTX_BIN" report "results/$name/results.msgpack" 2>&1)
  if grep -qE "^\* " <<<"$out"; then ok; else bad "$name report: $out"; fi
}

run quickstart 8 --set train.save=last
run ablation 5 --set experiment.repeats=1
run optimizers 12 --set data.path=data/spamassassin-sample --set experiment.repeats=1 --set 'sweep.train.batch_size=[8]'
run lm 2 --set tokenizer.vocab_size=600

# fine-tune from the checkpoint the first quickstart run saved
ckpt=$(ls -d "$T"/results/quickstart/runs/*/checkpoint-last | head -n 1)
if [ -f "$ckpt/config.json" ] && [ -f "$ckpt/model.safetensors" ]; then ok; else bad "no quickstart checkpoint in $ckpt"; fi
run finetune 3 --set experiment.repeats=1 --set "model.pretrained=$ckpt"

# a run repeated from its record gives the same metrics, bit for bit
id=$($PY -c '
import msgpack, sys
print([r["id"] for r in msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False) if r["type"] == "run"][2])' results/quickstart/results.msgpack 2>/dev/null)
out=$("$TFTX_BIN" rerun results/quickstart/results.msgpack "$id" 2>&1)
if grep -q "the metrics match the log exactly" <<<"$out"; then ok; else bad "rerun $id: $out"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
