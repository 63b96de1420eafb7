#!/usr/bin/env bash
# tests/gpu/run.sh -- the GPU checks of the cuda backend, in one go, for a
# lent NVIDIA GPU (an H100: a few minutes). Written without a GPU and never
# run yet: the first run on a GPU is its test, so every step prints what
# it did and a failing step does not stop the ones after it.
#
#   bash tests/gpu/run.sh            # from anywhere; output on stdout
#   TFTX_GPU_BUILD=dir               # build directory (default build-gpu)
#   TFTX_GPU_OUT=dir                 # logs and results (default: a temp dir)
#   TFTX_GPU_JOBS=16                 # build jobs
#
# Steps: configure and build (nvcc must be found; the cuda backend must be
# built), the whole ctest suite (test_cuda_kernels compares every cuda
# kernel with the cpu one and must PASS, not skip), `tftx bench` of
# bench/bert-small.cfg and bench/gpt-small.cfg on the cuda backend at fp32
# and tf32 (bf16 is not implemented: create() refuses it, shown once), and
# the loss curves of 20 training steps of both models on cpu and cuda
# (tests/gpu/{bert,gpt}-curve.cfg) compared step by step: fp32 within 1e-4
# relative, tf32 within 1e-3 (bf16 would be 2e-2). Exit 0 when every step
# passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=${TFTX_GPU_BUILD:-build-gpu}
out=${TFTX_GPU_OUT:-$(mktemp -d /tmp/tftx-gpu.XXXXXX)}
jobs=${TFTX_GPU_JOBS:-16}
mkdir -p "$out"
failed=()
step() { echo; echo "=================== $*"; }
fail() { echo "!! FAILED: $*"; failed+=("$*"); }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "(no nvidia-smi)"
command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>&1
echo "logs in $out"

step "configure ($build)"
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log" 2>&1; then
  tail -40 "$out/cmake.log"; echo "configure failed: nothing else can run"; exit 1
fi
grep -iE "cuda" "$out/cmake.log"

step "build (-j $jobs)"
start=$(date +%s)
if ! cmake --build "$build" -j "$jobs" >"$out/build.log" 2>&1; then
  grep -E "error|Error" "$out/build.log" | head -40; echo "build failed: nothing else can run"; exit 1
fi
echo "built in $(( $(date +%s) - start )) s"
tftx="$root/$build/bin/tftx"
[ -f "$build/lib/tftx/plugins/tftx_backend_cuda.so" ] || { echo "the cuda backend was not built"; exit 1; }
"$tftx" plugins backend

step "ctest (whole suite)"
if ! ctest --test-dir "$build" -j 8 --output-on-failure >"$out/ctest.log" 2>&1; then fail "ctest"; fi
grep -E "tests passed|Failed|\*\*\*|Skipped|Not Run" "$out/ctest.log" | head -40
step "test_cuda_kernels (every kernel against the cpu backend)"
ctest --test-dir "$build" -R '^test_cuda_kernels$' -V >"$out/kernels.log" 2>&1
grep -E "^[0-9]+: (ok|FAIL|PASS|no CUDA)" "$out/kernels.log" | sed 's/^[0-9]*: //'
grep -qE "^[0-9]+: PASS" "$out/kernels.log" || fail "test_cuda_kernels did not pass (skipped or failed)"

step "tftx bench on cuda"
for cfg in bert-small gpt-small; do
  for prec in fp32 tf32 bf16; do
    echo "--- $cfg, precision $prec"
    if ! timeout 300 "$tftx" bench "bench/$cfg.cfg" --steps 20 --warmup 3 --set 'train.backend="cuda"' \
        --set "train.cuda.precision=\"$prec\"" 2>&1 | tee "$out/bench-$cfg-$prec.log"; then
      [ "$prec" = bf16 ] && echo "(bf16 is not implemented yet: expected)" || fail "bench $cfg $prec"
    fi
  done
  echo "--- $cfg on the cpu backend (16 threads), for scale"
  timeout 300 "$tftx" bench "bench/$cfg.cfg" --steps 3 --warmup 1 --set train.cpu.threads=16 2>&1 |
    tee "$out/bench-$cfg-cpu.log" || fail "bench $cfg cpu"
done

step "loss curves, 20 steps, cpu against cuda"
run_curve() { # model backend precision -> $out/curve-$model-$tag.msgpack
  local model=$1 backend=$2 prec=$3 tag=$2${3:+-$3}
  local args=(--set "train.backend=\"$backend\"")
  [ -n "$prec" ] && args+=(--set "train.cuda.precision=\"$prec\"")
  [ "$backend" = cpu ] && args+=(--set train.cpu.threads=16)
  rm -f "$out/curve-$model-$tag.msgpack"
  (cd "$out" && timeout 600 "$tftx" run "$root/tests/gpu/$model-curve.cfg" --quiet \
      --out "$out/curve-$model-$tag.msgpack" "${args[@]}") >"$out/curve-$model-$tag.log" 2>&1 ||
    { tail -5 "$out/curve-$model-$tag.log"; fail "tftx run $model on $tag"; return 1; }
}
for model in bert gpt; do
  run_curve "$model" cpu "" || continue
  for prec in fp32 tf32; do
    rtol=1e-4; [ "$prec" = tf32 ] && rtol=1e-3
    run_curve "$model" cuda "$prec" || continue
    echo "--- $model: cpu against cuda $prec (rtol $rtol)"
    python3 tests/gpu/loss_curves.py "$out/curve-$model-cpu.msgpack" "$out/curve-$model-cuda-$prec.msgpack" \
      --rtol "$rtol" || fail "loss curve $model $prec"
  done
done

step "summary"
if [ ${#failed[@]} -eq 0 ]; then
  echo "all GPU checks passed (logs in $out)"
  exit 0
fi
printf 'failed: %s\n' "${failed[@]}"
echo "(logs in $out)"
exit 1
