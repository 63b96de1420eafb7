/*
 * kernel_cases.h -- one backend kernel pair (forward + backward) set up on
 * concrete inputs, so the tests can treat every kernel alike: finite
 * differences, accumulation, repeatability and thread independence are
 * written once (test_cpu_kernels.c) over a list of these.
 *
 * A case holds its inputs x[i] (with gradient buffers g[i]), outputs out[j]
 * and random weights R; forward() runs the kernel's forward on the given
 * backend and returns the scalar objective L = sum(out[0] * R) in double
 * (for cross-entropy L = dloss * sum(losses)); backward() accumulates dL/dx
 * into g by calling the kernel's backward with dout = R. An input may be
 * absent (x[i] == NULL: the kernel gets NULL).
 */
#ifndef TFTX_KERNEL_CASES_H
#define TFTX_KERNEL_CASES_H

#include <stddef.h>
#include <stdint.h>
#include <tftx/backend.h>

#define KC_MAX_IO 4
#define KC_MAX_ALLOCS 24

typedef struct kcase kcase;
struct kcase {
    char name[160];
    double (*forward)(void *be, kcase *k);
    void (*backward)(void *be, kcase *k);
    int n_in;
    const char *xname[KC_MAX_IO];
    float *x[KC_MAX_IO], *g[KC_MAX_IO];
    size_t nx[KC_MAX_IO];
    int n_out;
    float *out[KC_MAX_IO];
    size_t nout[KC_MAX_IO];
    float *R; /* (nout[0]) */
    /* 1 when results must not depend on the thread count (all but matmul,
       whose multi-threaded sgemm may split its sums by thread) */
    int thread_independent;
    /* kernel arguments */
    int B, T, C, NH, N, OC, V, causal;
    int ld; /* cross-entropy: the rows' stride (>= V; the columns after V are padding) */
    unsigned written; /* bit i: backward writes input i's gradient instead of adding to it (matmul's dinp_add = 0) */
    uint8_t *mask;
    int32_t *tokens, *segments, *targets;
    tftx_dropout drop;
    uint64_t offset;
    tftx_activation act;
    float eps, dloss;
    float *scratch;
    void *allocs[KC_MAX_ALLOCS];
    int n_allocs;
};

/* The table and an instance used to allocate test buffers. */
void kc_init(const tftx_backend_ops *ops, void *alloc_backend, uint64_t seed);

/* Test data: uniform in [lo, hi), from a fixed-seed generator. */
float kc_uniform(float lo, float hi);
int kc_int(int n); /* [0, n) */

/* Buffers from the backend's alloc(), freed with the case. */
void *kc_alloc(kcase *k, size_t bytes);
float *kc_floats(kcase *k, size_t n, float lo, float hi);

kcase *kc_matmul(int N, int C, int OC, int with_bias);
/* k, its backward writing input 0's gradient (dinp_add = 0: matmul,
 * layer norm, activation, dropout; attention's dqkv_add = 0) */
kcase *kc_written(kcase *k);
/* matmul, layer norm: the weight's and bias's gradients written
   (dparam_add = 0) */
kcase *kc_params_written(kcase *k);
kcase *kc_layernorm(int N, int C);
kcase *kc_attention(int B, int T, int NH, int HS, int causal, int padded, float p);
kcase *kc_activation(size_t N, tftx_activation act);
kcase *kc_tanh(size_t N);
/* out = a + dropout(b) (p = 0: a + b), b's mask at offset */
kcase *kc_residual(size_t N, float p, uint64_t offset);
kcase *kc_dropout(size_t N, float p, uint64_t offset);
kcase *kc_pool_first(int B, int T, int C);
kcase *kc_pool_mean(int B, int T, int C, int padded);
kcase *kc_crossentropy(int N, int V, int ld);
kcase *kc_embedding(int B, int T, int C, int V, int with_wpe, int with_wse, int with_segments);
void kc_free(kcase *k);

/* The padding mask used by attention and pooling cases (B,T): sequence 0
 * all real; 1 padded at the end; 2 padded at the start (with causal, its
 * query 0 sees no key); the last sequence (when B >= 4) all padding. */
uint8_t *kc_mask(kcase *k, int B, int T);

/* sum_i a[i] * b[i] in double */
double kc_dot(const float *a, const float *b, size_t n);

/* Zero every gradient buffer of the case. */
void kc_zero_grads(kcase *k);

#endif
