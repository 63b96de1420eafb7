/*
 * cpu.h -- internals of the cpu backend plugin, shared by its files.
 *
 * The cpu backend computes on host memory with OpenMP threads and runs
 * every matrix product through OpenBLAS (cblas_sgemm). Files:
 *   cpu_backend.c    descriptor, instance, memory, gradient utilities,
 *                    optimizer step, and the ops table
 *   cpu_matmul.c     linear layers (sgemm) and the BLAS thread budget
 *   cpu_attention.c  multi-head attention with masks and dropout
 *   cpu_layers.c     embedding, layer norm, pooling, cross-entropy
 *   cpu_pointwise.c  activations, tanh, residual
 *   cpu_dropout.c    dropout and its counter-based mask
 *   cpu_math.h       vectorisable exp and the two GELU forms
 *
 * One thread budget: every OpenMP region here names its team size
 * (num_threads(nt)) instead of relying on the process-wide setting, so
 * two instances with different `threads` can live in one process. OpenBLAS
 * is Debian's OpenMP build where available (see CMakeLists.txt): its
 * threads are the same libgomp pool, so BLAS calls and OpenMP regions never
 * fight over the cores.
 *
 * Determinism: every kernel splits work in a way that fixes the order of
 * each floating-point sum for a given thread count, and most (everything
 * but the multi-threaded sgemm calls) are independent of the thread count:
 * element-wise loops are split statically, reductions over rows are split
 * over columns (each thread owns whole output elements and sums its rows in
 * order), and scatter-adds are split over channels so no two threads ever
 * write the same element.
 */
#ifndef TFTX_CPU_H
#define TFTX_CPU_H

#include <stddef.h>
#include <stdint.h>
#include <tftx/backend.h>
#include <tftx/random.h>

/* One backend instance. */
typedef struct cpu_backend {
    const tftx_host *host;
    int nthreads; /* OpenMP team size of every kernel (>= 1) */
} cpu_backend;

static inline int cpu_nt(const void *self)
{
    return ((const cpu_backend *)self)->nthreads;
}

/* Columns per block when a reduction over rows is split over columns:
 * 64 floats = 4 cache lines of each row per step. */
#define CPU_COL_BLOCK 64

/* Hot loops (exp, GELU, softmax and norm rows) are compiled three times on
 * x86-64, for AVX-512 (x86-64-v4), for AVX2 and for the baseline (SSE2),
 * and the loader picks the first the CPU has (an ifunc). The build itself
 * stays generic. The copies do the same float operations (no FMA
 * contraction in ISO C mode), so element-wise loops give the same bits in
 * every copy; only the order inside vectorised sums differs, and one
 * machine always runs the same copy, so results stay bit-identical run to
 * run. AVX-512 pays on Zen 4 even though it splits 512-bit operations in
 * two: GELU 0.73 against 1.05 ns per element with AVX2, the softmax row
 * 0.59 against 0.84. */
#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define CPU_VECTOR_CLONES
#endif

/* Elements [*lo, *hi) of n for thread `id` of a team of `nt`: a static
 * split into nearly equal contiguous parts. */
static inline void cpu_split(size_t n, int nt, int id, size_t *lo, size_t *hi)
{
    size_t q = n / (size_t)nt, r = n % (size_t)nt, i = (size_t)id;
    *lo = i * q + (i < r ? i : r);
    *hi = *lo + q + (i < r ? 1 : 0);
}

/* ------------------------------------------------------------ BLAS */

/* Set OpenBLAS to `n` threads for the calls that follow; returns the
 * process's OpenMP default (omp_get_max_threads) to hand to cpu_blas_end,
 * because OpenBLAS's OpenMP build changes it as a side effect. Call with
 * n = 1 before an OpenMP region whose threads each call BLAS. */
int cpu_blas_begin(int n);
void cpu_blas_end(int saved);

/* ------------------------------------------------------------ dropout */

/* Keep factors of dropout for elements [i0, i0 + n) of (seed, stream):
 * f[j] = scale when uniform(seed, stream, i0 + j) >= p, else 0, with
 * uniform = tftx_uniform_at bit for bit (cpu_dropout.c). */
void cpu_dropout_factors(float *f, uint64_t seed, uint64_t stream, uint64_t i0, size_t n, float p, float scale);

/* 1/(1-p), or 0 when p >= 1 (then every element is dropped). */
static inline float cpu_dropout_scale(float p)
{
    return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

/* ------------------------------------------------------------ kernels */

void cpu_embedding_forward(void *self, float *out, const int32_t *tokens, const int32_t *segments, const float *wte,
                           const float *wpe, const float *wse, int B, int T, int C);
void cpu_embedding_backward(void *self, float *dwte, float *dwpe, float *dwse, const float *dout, const int32_t *tokens,
                            const int32_t *segments, int B, int T, int C);
void cpu_layernorm_forward(void *self, float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int N, int C, float eps);
void cpu_layernorm_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int N, int C, int dinp_add,
                            int dparam_add);
void cpu_matmul_forward(void *self, float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                        int OC);
void cpu_matmul_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, int N, int C, int OC, int dinp_add, int dparam_add);
void cpu_attention_forward(void *self, float *out, float *att, const float *qkv, const uint8_t *mask, int causal, int B,
                           int T, int C, int NH, tftx_dropout drop);
void cpu_attention_backward(void *self, float *dqkv, float *scratch, const float *dout, const float *qkv,
                            const float *att, const uint8_t *mask, int causal, int B, int T, int C, int NH,
                            tftx_dropout drop, int dqkv_add);
void cpu_activation_forward(void *self, float *out, const float *inp, size_t N, tftx_activation act);
void cpu_activation_backward(void *self, float *dinp, const float *dout, const float *inp, size_t N,
                             tftx_activation act, int dinp_add);
void cpu_tanh_forward(void *self, float *out, const float *inp, size_t N);
void cpu_tanh_backward(void *self, float *dinp, const float *dout, const float *out, size_t N);
void cpu_residual_forward(void *self, float *out, const float *a, const float *b, size_t N, tftx_dropout drop,
                            uint64_t offset);
void cpu_residual_backward(void *self, float *da, float *db, const float *dout, size_t N);
void cpu_dropout_forward(void *self, float *out, const float *inp, size_t N, tftx_dropout drop, uint64_t offset);
void cpu_dropout_backward(void *self, float *dinp, const float *dout, size_t N, tftx_dropout drop, uint64_t offset, int dinp_add);
void cpu_pool_first_forward(void *self, float *out, const float *inp, int B, int T, int C);
void cpu_pool_first_backward(void *self, float *dinp, const float *dout, int B, int T, int C);
void cpu_pool_mean_forward(void *self, float *out, const float *inp, const uint8_t *mask, int B, int T, int C);
void cpu_pool_mean_backward(void *self, float *dinp, const float *dout, const uint8_t *mask, int B, int T, int C);
void cpu_crossentropy_forward(void *self, float *losses, float *probs, const float *logits, const int32_t *targets,
                              int N, int V, int ld);
void cpu_crossentropy_fused(void *self, float *losses, float *logits, float *probs, const int32_t *targets,
                            const float *dloss, int N, int V, int ld);
void cpu_crossentropy_backward(void *self, float *dlogits, const float *probs, const int32_t *targets, const float *dloss,
                               int N, int V, int ld);

#endif /* TFTX_CPU_H */
