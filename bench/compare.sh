#!/usr/bin/env bash
# compare.sh -- tftx against PyTorch, full training steps, side by side.
#
# For each model (bench/bert-small.cfg, bench/gpt-small.cfg) and each
# thread count (1 and 2), runs `tftx bench` and bench/torch_baseline.py
# REPEATS times each, interleaved, and keeps the best median ms/step of
# each (other jobs share the machine: the best run is the one they
# disturbed least). Prints ms/step, tokens/s, tftx's GFLOP/s and the ratio
# tftx tokens/s / torch tokens/s.
#
# PyTorch is measured in every thread setup this machine offers, and the
# ratio is taken against the fastest:
#   1 thread:  torch.set_num_threads(1), OPENBLAS_NUM_THREADS=1
#   2 threads: "default"  torch's own thread count (no set_num_threads)
#                         with the system OpenBLAS (pthread build) on
#                         every core
#              "set2"     torch.set_num_threads(2), OpenBLAS pthread build
#                         on 2 threads (its pool and OpenMP's alternate)
#              "omp2"     torch.set_num_threads(2) with Debian's OpenMP
#                         build of OpenBLAS (LD_LIBRARY_PATH), whose
#                         threads are the same libgomp pool as torch's
#
# usage: bench/compare.sh [--tftx PATH] [--steps N] [--warmup N]
#                         [--repeats R] [--threads "1 2"]
#                         [--models "bert-small gpt-small"] [--quiet PCT]
# defaults: --tftx build/bin/tftx --steps 10 --warmup 2 --repeats 3
# --quiet PCT: before each run, wait (at most 5 minutes) until the CPUs
# were at least PCT% idle over one second.
set -euo pipefail
cd "$(dirname "$0")/.."

TFTX=build/bin/tftx
STEPS=10
WARMUP=2
REPEATS=3
THREADS="1 2"
MODELS="bert-small gpt-small"
QUIET=0
PYTHON=/usr/bin/python3
OMP_BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-openmp
while [ $# -gt 0 ]; do
    case "$1" in
    --tftx) TFTX=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --quiet) QUIET=$2; shift 2 ;;
    *) echo "usage: $0 [--tftx PATH] [--steps N] [--warmup N] [--repeats R] [--threads \"1 2\"] [--models \"...\"]" \
            "[--quiet PCT]" >&2
       exit 2 ;;
    esac
done
[ -x "$TFTX" ] || { echo "compare.sh: $TFTX not found (build first, or pass --tftx)" >&2; exit 2; }

# idle percentage of all CPUs over one second, from /proc/stat
idle_pct() {
    local u n s i w x y z t1 i1
    read -r _ u n s i w x y z _ </proc/stat
    t1=$((u + n + s + i + w + x + y + z)) i1=$((i + w))
    sleep 1
    read -r _ u n s i w x y z _ </proc/stat
    echo $((100 * (i + w - i1) / (u + n + s + i + w + x + y + z - t1)))
}
wait_quiet() {
    [ "$QUIET" -gt 0 ] || return 0
    for _ in $(seq 300); do [ "$(idle_pct)" -ge "$QUIET" ] && return 0; done
    echo "# (not $QUIET% idle after 5 minutes; running anyway)" >&2
}

# the median ms/step of one run's output ("median 123.4 ms/step")
median_of() { sed -n 's/.*median \([0-9.]*\) ms\/step.*/\1/p' | head -1; }
gflops_of() { sed -n 's/.*tokens\/s, \([0-9.]*\) GFLOP\/s.*/\1/p' | head -1; }
min_of() { printf '%s\n' "$@" | sort -g | head -1; }

tokens_per_step() { case "$1" in bert-small) echo $((32 * 128)) ;; gpt-small) echo $((8 * 256)) ;; esac; }

# torch_run MODEL CONFIG: one torch_baseline.py run; prints its median ms/step
torch_run() {
    local model=$1 cfg=$2 args=(--steps "$STEPS" --warmup "$WARMUP")
    case "$cfg" in
    t1) OPENBLAS_NUM_THREADS=1 "$PYTHON" bench/torch_baseline.py "$model" --threads 1 "${args[@]}" ;;
    default) env -u OPENBLAS_NUM_THREADS "$PYTHON" bench/torch_baseline.py "$model" "${args[@]}" ;;
    set2) env -u OPENBLAS_NUM_THREADS "$PYTHON" bench/torch_baseline.py "$model" --threads 2 "${args[@]}" ;;
    omp2) LD_LIBRARY_PATH=$OMP_BLAS_DIR OPENBLAS_NUM_THREADS=2 "$PYTHON" bench/torch_baseline.py "$model" \
              --threads 2 "${args[@]}" ;;
    esac | median_of
}

echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# tftx: $TFTX; steps $STEPS after $WARMUP warm-up, best median of $REPEATS runs"
printf '%-11s %3s | %9s %9s %8s | %-8s %9s %9s | %6s\n' model thr "tftx ms" "tok/s" "GFLOP/s" torch ms "tok/s" ratio
for model in $MODELS; do
    tokens=$(tokens_per_step "$model")
    for t in $THREADS; do
        if [ "$t" = 1 ]; then configs="t1"; else configs="default set2 omp2"; fi
        declare -A best=()
        tftx_ms=() gflops=""
        for _ in $(seq "$REPEATS"); do
            wait_quiet
            out=$("$TFTX" bench "bench/$model.cfg" --steps "$STEPS" --warmup "$WARMUP" --set "train.cpu.threads=$t")
            ms=$(median_of <<<"$out")
            tftx_ms+=("$ms")
            [ "$(min_of "${tftx_ms[@]}")" = "$ms" ] && gflops=$(gflops_of <<<"$out")
            for cfg in $configs; do
                wait_quiet
                ms=$(torch_run "$model" "$cfg")
                best[$cfg]=$(min_of "$ms" ${best[$cfg]:-})
            done
        done
        tms=$(min_of "${tftx_ms[@]}")
        for cfg in $configs; do
            pms=${best[$cfg]}
            printf '%-11s %3s | %9.1f %9.0f %8s | %-8s %9.1f %9.0f | %6.2f\n' "$model" "$t" "$tms" \
                "$(echo "$tokens * 1000 / $tms" | bc -l)" "$gflops" "$cfg" "$pms" \
                "$(echo "$tokens * 1000 / $pms" | bc -l)" "$(echo "$pms / $tms" | bc -l)"
        done
        unset best
    done
done
