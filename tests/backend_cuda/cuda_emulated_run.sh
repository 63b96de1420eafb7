#!/usr/bin/env bash
# cuda_emulated_run.sh -- `tftx run` on the cuda backend built for the CPU
# emulator of CUDA (emu/), so the whole path of a run on a GPU (session,
# arenas, the optimizer's one launch a step, checkpoints' copies, errors)
# is exercised without one:
#   - the loss curves of 6 training steps of a small encoder (on cuda at
#     fp32, tf32 and bf16, and with attention = "fused" at tf32 and bf16),
#     a small decoder (fp32, and bf16 fused) and the bow model (fp32,
#     bf16), dropout on, against the cpu backend's, step by step
#     (tests/gpu/loss_curves.py), within the
#     tolerances tests/gpu/run.sh holds a GPU to: 1e-4 relative at fp32,
#     1e-3 at tf32, 2e-2 at bf16; and the encoder's curve with step graphs
#     (the default) and without (graphs = false) the same, bit for bit;
#   - out of device memory (TFTX_EMU_DEVICE_MEMORY makes the emulated
#     device small): a sweep whose second run does not fit ends with that
#     run failed and the reason given, the first one ok.
# tftx looks for plugins next to its binary first, so the test runs a copy
# of the binary whose plugin folder holds the emulated cuda backend and
# optimizers and the build's other plugins.
# Needs TFTX_BIN, TFTX_SOURCE_DIR, TFTX_BUILD_PLUGINS and EMU_PLUGIN_DIR.
set -u
. "$(dirname "$0")/../testlib.sh"
: "${TFTX_BIN:?} ${TFTX_SOURCE_DIR:?} ${EMU_PLUGIN_DIR:?}"
make_tmp cuda-emulated
main_plugins=${TFTX_BUILD_PLUGINS##*:}
mkdir -p "$T/bin" "$T/lib/tftx/plugins"
cp "$TFTX_BIN" "$T/bin/tftx"
for so in "$main_plugins"/tftx_*.so; do ln -s "$so" "$T/lib/tftx/plugins/"; done
for so in "$EMU_PLUGIN_DIR"/tftx_*.so; do ln -sf "$so" "$T/lib/tftx/plugins/"; done
tftx=$T/bin/tftx
export OMP_WAIT_POLICY=passive

check "cuda available (emulated)" 0 "^backend +cuda +[0-9.]+ +ok " -- "$tftx" plugins backend

data=$TFTX_SOURCE_DIR/experiments/data
cat >"$T/encoder.cfg" <<CFG
experiment = { name = "enc"; seed = 3; };
data = { path = "$data/spamassassin-sample"; format = "dirs"; clean = ["email", "html", "lower", "whitespace"];
         max_len = 32; valid = 0.02; test = 0.0; };
tokenizer = { plugin = "wordpiece"; vocab = "$data/bert-base-uncased-vocab.txt"; };
model = { plugin = "transformer"; arch = "encoder"; layers = 2; d_model = 64; heads = 2; d_ff = 128;
          max_len = 32; dropout = 0.1; attn_dropout = 0.1; };
optimizer = { plugin = "adamw"; lr = 1e-3; weight_decay = 0.01; };
train = { batch_size = 4; max_steps = 6; log_every = 1; eval_every = 1000; };
CFG
sed -e 's/name = "enc"/name = "dec"/; s/arch = "encoder"/arch = "decoder"/; s/max_len = 32; valid = 0.02/task = "lm"; max_len = 32; valid = 0.02/' \
    -e 's/plugin = "wordpiece"; vocab = "[^"]*"/plugin = "bpe"; vocab_size = 512/' "$T/encoder.cfg" >"$T/decoder.cfg"
sed -e 's/name = "enc"/name = "bow"/; s/plugin = "transformer"; arch = "encoder"; layers = 2; d_model = 64; heads = 2; d_ff = 128;/plugin = "bow";/' \
    -e 's/max_len = 32; dropout = 0.1; attn_dropout = 0.1; };/dropout = 0.1; };/' "$T/encoder.cfg" >"$T/bow.cfg"

curve() { # model backend [precision [attention]] -> $T/<model>-<tag>.msgpack
  local model=$1 backend=$2 prec=${3:-} att=${4:-} tag=$2${3:+-$3}${4:+-$4}
  local args=(--set "train.backend=\"$backend\"")
  [ -n "$prec" ] && args+=(--set "train.cuda.precision=\"$prec\"")
  [ -n "$att" ] && args+=(--set "train.cuda.attention=\"$att\"")
  (cd "$T" && "$tftx" run "$model.cfg" --quiet --out "$model-$tag.msgpack" "${args[@]}") >"$T/$model-$tag.log" 2>&1 ||
    { bad "tftx run $model on $tag: $(tail -3 "$T/$model-$tag.log")"; return 1; }
}
specs_encoder=("fp32 1e-4" "tf32 1e-3" "bf16 2e-2" "tf32 1e-3 fused" "bf16 2e-2 fused")
specs_decoder=("fp32 1e-4" "bf16 2e-2 fused")
specs_bow=("fp32 1e-4" "bf16 2e-2")
for model in encoder decoder bow; do
  curve "$model" cpu || continue
  declare -n specs=specs_$model
  for spec in "${specs[@]}"; do
    set -- $spec
    curve "$model" cuda "$1" "${3:-}" || continue
    tag=cuda-$1${3:+-$3}
    if out=$("$PY" "$TFTX_SOURCE_DIR/tests/gpu/loss_curves.py" "$T/$model-cpu.msgpack" "$T/$model-$tag.msgpack" \
      --rtol "$2" 2>&1); then
      ok "$model loss curve, cpu against $tag within $2: $(tail -1 <<<"$out")"
    else bad "$model loss curve, cpu against $tag: $out"; fi
  done
done

# step graphs change nothing: a training pass recorded once and replayed
# gives the curve of kernel-by-kernel passes (graphs = false) bit for bit
if (cd "$T" && "$tftx" run encoder.cfg --quiet --out encoder-nographs.msgpack --set 'train.backend="cuda"' \
  --set 'train.cuda.precision="tf32"' --set 'train.cuda.attention="fused"' --set train.cuda.graphs=false) \
  >"$T/encoder-nographs.log" 2>&1 &&
  out=$("$PY" "$TFTX_SOURCE_DIR/tests/gpu/loss_curves.py" "$T/encoder-cuda-tf32-fused.msgpack" \
    "$T/encoder-nographs.msgpack" --rtol 0 2>&1); then
  ok "encoder loss curve, cuda tf32 fused with graphs against without: the same: $(tail -1 <<<"$out")"
else bad "encoder loss curve with graphs against without: ${out:-$(tail -3 "$T/encoder-nographs.log")}"; fi

# a device of 100 MB (32 MiB of it cuBLAS's workspace): d_model 64 (2M
# parameters: 32 MB of weights, gradients and AdamW's two slots) fits,
# d_model 1024 (41M parameters, 157 MB of weights alone) does not
out=$(cd "$T" && TFTX_EMU_DEVICE_MEMORY=100000000 "$tftx" run encoder.cfg --out oom.msgpack \
  --set 'train.backend="cuda"' --set train.max_steps=2 --set 'sweep.model.d_model=[64, 1024]' 2>&1)
if grep -q "1 ok, 1 failed" <<<"$out" && grep -qi "out of .*memory" <<<"$out"; then
  ok "out of device memory: $(grep -i "memory" <<<"$out" | head -1)"
else bad "out of device memory: expected 1 ok and 1 failed with the reason: $out"; fi

echo "cuda_emulated_run: $pass passed, $fail failed"
[ "$fail" = 0 ]
