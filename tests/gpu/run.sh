#!/usr/bin/env bash
# tests/gpu/run.sh -- the GPU checks of the cuda backend, in one go, for a
# lent NVIDIA GPU (an H100: about five minutes). Every step prints what it
# did, and a failing step does not stop the ones after it.
#
#   bash tests/gpu/run.sh            # builds in build-gpu, then checks
#   TFTX_GPU_BUILD=dir               # build directory (default build-gpu)
#   TFTX_GPU_PREBUILT=1              # use the build directory as it is
#   TFTX_GPU_OUT=dir                 # logs and results (default: a temp dir)
#   TFTX_GPU_JOBS=16                 # build and ctest jobs
#   TFTX_GPU_TORCH=0                 # skip the PyTorch figures
#   TFTX_GPU_LOGS_TAR=file.tgz       # pack the logs into one file at the end
#   TFTX_GPU_QUICK=1                 # tests, curves, benches only (no profile,
#                                    # PyTorch or whole suite)
#   TFTX_GPU_TORCH_PRECISIONS="..."  # PyTorch's precisions (default tf32 bf16)
#   TFTX_GPU_VARIANTS=all            # also bench tf32 without step graphs,
#                                    # without the bias epilogues and
#                                    # (bert-small) without the [CLS] tail
#
# A GPU machine without the Debian libraries can run a build made on a
# Debian machine (tests/gpu/pack.sh): the build directory and the shared
# libraries it needs (.gpulibs/, put on LD_LIBRARY_PATH here) travel with
# the tree as .gpupack.tar.xz; since ctest files hold absolute paths, the
# tree is copied to the path it was built in when it now lies elsewhere.
#
# Steps: the cuda tests (test_cuda_kernels compares every cuda kernel with
# the cpu one, test_models_cuda and test_model_checkpoints_cuda run the
# model tests against the PyTorch fixtures on the GPU; they must PASS, not
# skip); the loss curves of 20 training steps of both bench models on cpu
# and cuda (tests/gpu/{bert,gpt}-curve.cfg) compared step by step: fp32
# within 1e-4 relative, tf32 within 1e-3, bf16 within 2e-2, tf32 and bf16
# also with attention = "fused", tf32 without step graphs (graphs =
# false: the same bits as with), bf16 with fuse_bias = false (the bias
# and GELU kernels instead of cuBLASLt's epilogues); `tftx bench` of the
# bench models on cuda at each precision, with and without fused
# attention, and GPT-2 124M at bf16 fused with fuse_bias = false (its
# bias and GELU epilogues' worth) (TFTX_GPU_VARIANTS=all: also at tf32
# without step graphs, with fuse_bias = false and (bert-small)
# TFTX_CLS_TAIL=0);
# PyTorch on the same card
# (bench/torch_baseline.py --device cuda); a sweep whose second run cannot
# fit on the GPU (it must fail with the reason, the first must end ok);
# tftx_cuda_attention_bench (GPT-2 124M's and bert-small's attention);
# tftx_cuda_optim_bench; TFTX_CUDA_PROFILE tables; the time, DRAM and SM
# throughput of the kernels other than cuBLAS's under Nsight Compute (ncu,
# where installed); the whole ctest suite;
# the three speed goals against the best bench medians.
# Exit 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=${TFTX_GPU_BUILD:-build-gpu}
out=${TFTX_GPU_OUT:-$(mktemp -d /tmp/tftx-gpu.XXXXXX)}
jobs=${TFTX_GPU_JOBS:-16}
mkdir -p "$out"
failed=()
step() { echo; echo "=================== $* ($(date +%T))"; }
fail() { echo "!! FAILED: $*"; failed+=("$*"); }
export OMP_WAIT_POLICY=passive

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "(no nvidia-smi)"
command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>&1
nproc
echo "logs in $out"

if [ "${TFTX_GPU_PREBUILT:-0}" = 1 ]; then
  step "prebuilt $build"
  [ -f .gpupack.tar.xz ] && tar -xJf .gpupack.tar.xz && rm .gpupack.tar.xz && echo "unpacked .gpupack.tar.xz"
  src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
  if [ -n "$src" ] && [ "$src" != "$root" ] && [ ! -e "$src" ]; then
    # ctest files and the programs' paths name the tree where it was built:
    # run from a copy there (a link would show up in resolved paths)
    mkdir -p "$(dirname "$src")" && cp -a "$root" "$src" && echo "copied the tree to $src (ctest's paths)"
    exec bash "$src/tests/gpu/run.sh"
  fi
  [ -d .gpulibs ] && export LD_LIBRARY_PATH="$root/.gpulibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
  done
  export LD_LIBRARY_PATH
  ldd "$build/bin/tftx" "$build/lib/tftx/plugins/"*.so | grep "not found" && fail "missing shared libraries"
else
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
fi
tftx="$root/$build/bin/tftx"
[ -f "$build/lib/tftx/plugins/tftx_backend_cuda.so" ] || { echo "the cuda backend was not built"; exit 1; }
"$tftx" plugins backend

step "cuda tests (kernels against cpu, models against PyTorch fixtures)"
ctest --test-dir "$build" -R 'cuda' -E 'emulat' --timeout 150 --output-on-failure -V >"$out/cuda-tests.log" 2>&1 || fail "cuda tests"
grep -E "^[0-9]+: (ok|FAIL|PASS|no CUDA|skipped|encoder|decoder|probe|worst|tf32)|\[  (PASSED|FAILED) \]|Test +#|tests passed" \
  "$out/cuda-tests.log" | sed 's/^[0-9]*: //' | head -120
for t in test_cuda_kernels test_models_cuda test_model_checkpoints_cuda; do
  grep -qE "Test +#[0-9]+: $t \.+ +Passed" "$out/cuda-tests.log" || fail "$t did not pass (skipped or failed)"
done

step "loss curves, 20 steps, cpu against cuda"
run_curve() { # model backend precision [fused|nographs|biaskernel] -> $out/curve-$model-$tag.msgpack
  local model=$1 backend=$2 prec=$3 att=${4:-} tag=$2${3:+-$3}${4:+-$4}
  local args=(--set "train.backend=\"$backend\"")
  [ -n "$prec" ] && args+=(--set "train.cuda.precision=\"$prec\"")
  [ "$att" = fused ] && args+=(--set 'train.cuda.attention="fused"')
  [ "$att" = nographs ] && args+=(--set train.cuda.graphs=false)
  [ "$att" = biaskernel ] && args+=(--set train.cuda.fuse_bias=false)
  [ "$backend" = cpu ] && args+=(--set train.cpu.threads=16)
  rm -f "$out/curve-$model-$tag.msgpack"
  (cd "$out" && timeout 120 "$tftx" run "$root/tests/gpu/$model-curve.cfg" --quiet \
      --out "$out/curve-$model-$tag.msgpack" "${args[@]}") >"$out/curve-$model-$tag.log" 2>&1 ||
    { tail -5 "$out/curve-$model-$tag.log"; fail "tftx run $model on $tag"; return 1; }
}
for model in bert gpt; do
  run_curve "$model" cpu "" || continue
  for prec in fp32 tf32 bf16; do
    case $prec in fp32) rtol=1e-4 ;; tf32) rtol=1e-3 ;; bf16) rtol=2e-2 ;; esac
    run_curve "$model" cuda "$prec" || continue
    echo "--- $model: cpu against cuda $prec (rtol $rtol)"
    python3 tests/gpu/loss_curves.py "$out/curve-$model-cpu.msgpack" "$out/curve-$model-cuda-$prec.msgpack" \
      --rtol "$rtol" || fail "loss curve $model $prec"
    [ "$prec" = fp32 ] && continue
    if [ "$prec" = tf32 ] && run_curve "$model" cuda "$prec" nographs; then
      echo "--- $model: cuda tf32 with step graphs against without (the same bits)"
      python3 tests/gpu/loss_curves.py "$out/curve-$model-cuda-tf32.msgpack" "$out/curve-$model-cuda-tf32-nographs.msgpack" \
        --rtol 0 || fail "loss curve $model tf32 graphs against none"
    fi
    if [ "$prec" = bf16 ] && run_curve "$model" cuda "$prec" biaskernel; then
      echo "--- $model: cpu against cuda bf16, fuse_bias = false (rtol $rtol)"
      python3 tests/gpu/loss_curves.py "$out/curve-$model-cpu.msgpack" "$out/curve-$model-cuda-bf16-biaskernel.msgpack" \
        --rtol "$rtol" || fail "loss curve $model bf16 fuse_bias = false"
    fi
    run_curve "$model" cuda "$prec" fused || continue
    echo "--- $model: cpu against cuda $prec, attention fused (rtol $rtol)"
    python3 tests/gpu/loss_curves.py "$out/curve-$model-cpu.msgpack" "$out/curve-$model-cuda-$prec-fused.msgpack" \
      --rtol "$rtol" || fail "loss curve $model $prec fused"
  done
done

step "out of device memory: a failed run with the reason, the sweep goes on"
(cd "$out" && timeout 120 "$tftx" run "$root/tests/gpu/gpt-curve.cfg" --out "$out/oom.msgpack" \
  --set 'train.backend="cuda"' --set train.max_steps=2 --set 'sweep.model.d_model=[384, 49152]') >"$out/oom.log" 2>&1
grep -E "failed|ok|memory" "$out/oom.log" | tail -4
grep -q "1 ok, 1 failed" "$out/oom.log" && grep -q "out of memory" "$out/oom.log" ||
  fail "out-of-memory run (expected 1 ok, 1 failed with an out-of-memory reason)"

step "tftx bench on cuda"
for cfg in bert-small gpt-small gpt2-124m; do
  [ -f "bench/$cfg.cfg" ] || continue
  steps=30; [ "$cfg" = gpt2-124m ] && steps=10
  variants="fp32 tf32 bf16 tf32-fused bf16-fused"
  # GPT-2 124M's bias and GELU epilogues against their kernels, at the precision of its goal
  [ "$cfg" = gpt2-124m ] && variants="$variants bf16-fused-biaskernel"
  if [ "${TFTX_GPU_VARIANTS:-}" = all ]; then # what step graphs, the bias epilogues and the [CLS] tail gain
    variants="$variants tf32-nographs tf32-biaskernel"
    [ "$cfg" = bert-small ] && variants="$variants tf32-notail"
  fi
  for prec in $variants; do
    echo "--- $cfg, precision $prec"
    args=(--set "train.cuda.precision=\"${prec%%-*}\"")
    cls_tail=1
    case $prec in
    *-fused*) args+=(--set 'train.cuda.attention="fused"') ;;
    *) args+=(--set 'train.cuda.attention="cublas"') ;;
    esac
    case $prec in
    *-nographs) args+=(--set train.cuda.graphs=false) ;;
    *-biaskernel) args+=(--set train.cuda.fuse_bias=false) ;;
    *-notail) cls_tail=0 ;;
    esac
    debug=0; [ "$prec" = tf32 ] && debug=1 # the graphs' node counts and cuBLASLt's refusals in the log
    TFTX_CLS_TAIL=$cls_tail TFTX_DEBUG=$debug timeout 60 "$tftx" bench "bench/$cfg.cfg" --steps $steps --warmup 3 \
      --set 'train.backend="cuda"' "${args[@]}" >"$out/bench-$cfg-$prec.log" 2>&1 || fail "bench $cfg $prec"
    grep -vE "^\s*$| debug: " "$out/bench-$cfg-$prec.log" | tail -4
    grep -E "debug: .*(graph of|cuBLASLt)" "$out/bench-$cfg-$prec.log" | sed 's/^.*debug: //' | sort | uniq -c | head -6
  done
done

step "attention: cuBLAS against the fused kernels (tftx_cuda_attention_bench)"
for shape in "" "-B 32 -T 128 -C 256 -H 4 --no-causal"; do
  # shellcheck disable=SC2086
  timeout 120 "$root/$build/bin/tftx_cuda_attention_bench" $shape || fail "tftx_cuda_attention_bench $shape"
done

step "optimizer step bandwidth (tftx_cuda_optim_bench, 100M parameters)"
"$root/$build/bin/tftx_cuda_optim_bench" -n 100000000 -r 20 || fail "tftx_cuda_optim_bench"

[ "${TFTX_GPU_QUICK:-0}" = 1 ] && TFTX_GPU_TORCH=0
step "where a step's GPU time goes (TFTX_CUDA_PROFILE=1, attention fused; no step graphs while profiling)"
[ "${TFTX_GPU_QUICK:-0}" = 1 ] && echo "(skipped: TFTX_GPU_QUICK)"
for run in bert-small:tf32 gpt-small:tf32 gpt2-124m:tf32 gpt2-124m:bf16; do
  [ "${TFTX_GPU_QUICK:-0}" = 1 ] && break
  cfg=${run%:*} prec=${run#*:}
  echo "--- $cfg, $prec"
  TFTX_CUDA_PROFILE=1 timeout 60 "$tftx" bench "bench/$cfg.cfg" --steps 5 --warmup 1 --set 'train.backend="cuda"' \
    --set "train.cuda.precision=\"$prec\"" --set 'train.cuda.attention="fused"' 2>&1 | grep -vE "^\s*$|tokens/s|parameters"
done

step "kernels under Nsight Compute (GPT-2 124M, bf16, one step without graphs)"
if [ "${TFTX_GPU_QUICK:-0}" = 1 ] || ! command -v ncu >/dev/null; then
  echo "(skipped: TFTX_GPU_QUICK or no ncu)"
else
  # the kernels other than cuBLAS's, the first 80 launches that match: the
  # forward's, then the backward's (time, DRAM and SM throughput)
  timeout 150 ncu --csv --kernel-name regex:'layernorm|embedding_table|flash|colsum|crossentropy|activation|residual|dropout' \
    --launch-count 80 --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed \
    "$tftx" bench bench/gpt2-124m.cfg --steps 1 --warmup 0 --set 'train.backend="cuda"' --set train.cuda.graphs=false \
    >"$out/ncu-gpt2.txt" 2>&1 || echo "(ncu ended with an error: $out/ncu-gpt2.txt)"
  python3 tests/gpu/ncu_summary.py "$out/ncu-gpt2.txt" | head -30
fi

if [ "${TFTX_GPU_TORCH:-1}" = 1 ]; then
  step "PyTorch on the same card"
  python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' 2>&1
  for m in bert-small gpt-small; do
    for prec in ${TFTX_GPU_TORCH_PRECISIONS:-tf32 bf16}; do
      timeout 120 python3 bench/torch_baseline.py "$m" --device cuda --precision "$prec" --steps 30 --warmup 5 \
        2>&1 | grep -E "ms/step|tokens/s|Error" | tr '\n' ' '
      echo " [$m eager $prec]"
    done
  done
fi

step "ctest (the whole suite, -j $jobs)"
[ "${TFTX_GPU_QUICK:-0}" = 1 ] && echo "(skipped: TFTX_GPU_QUICK)" || ctest --test-dir "$build" -j "$jobs" --timeout 240 -E 'cuda|valgrind' >"$out/ctest.log" 2>&1 || fail "ctest"
grep -E "tests passed|\(Failed\)|\(Timeout\)|\*\*\*|Skipped|Not Run" "$out/ctest.log" | head -40

step "ctest failures"
for t in $(sed -n 's/^.*Test *#[0-9]*: \([^ ]*\) \.*\*\*\*Failed.*$/\1/p' "$out/ctest.log"); do
  echo "--- $t"
  ctest --test-dir "$build" -R "^$t\$" --output-on-failure 2>&1 | grep -vE "^(UpdateCTest|Test project|Constructing|Checking|Start|Total Test)" | tail -25
done

step "the speed goals (best median of the benches above)"
for goal in bert-small:2.5 gpt-small:4.4 gpt2-124m:56; do
  cfg=${goal%:*} limit=${goal#*:}
  best=$(for f in "$out"/bench-"$cfg"-*.log; do
      [ -f "$f" ] || continue
      v=$(sed -n 's/.*median \([0-9.]*\) ms\/step.*/\1/p' "$f" | head -1)
      [ -n "$v" ] && echo "$v ${f##*/bench-$cfg-}"
    done | sort -n | head -1)
  if [ -z "$best" ]; then
    echo "$cfg: no bench result"
  else
    awk -v c="$cfg" -v lim="$limit" -v b="$best" 'BEGIN { split(b, x, " "); sub(/\.log$/, "", x[2]);
      printf "%s: %.2f ms/step (%s) against %s: %s\n", c, x[1], x[2], lim, x[1] < lim ? "met" : "not met" }'
  fi
done

step "summary"
[ -n "${TFTX_GPU_LOGS_TAR:-}" ] && tar -czf "$TFTX_GPU_LOGS_TAR" -C "$out" . && echo "logs packed in $TFTX_GPU_LOGS_TAR"
if [ ${#failed[@]} -eq 0 ]; then
  echo "all GPU checks passed (logs in $out)"
  exit 0
fi
printf 'failed: %s\n' "${failed[@]}"
echo "(logs in $out)"
exit 1
