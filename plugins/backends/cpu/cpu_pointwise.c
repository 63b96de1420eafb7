/*
 * cpu_pointwise.c -- element-wise kernels: GELU (erf and tanh forms, see
 * cpu_math.h), ReLU, tanh and residual add. Each is a static split
 * of [0, N) over the threads; no element depends on another, so results do
 * not depend on the thread count.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu.h"
#include "cpu_math.h"

/* The GELU loops over one thread's part, compiled for AVX2 and baseline. */
CPU_VECTOR_CLONES static void gelu_span(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = cpu_gelu(inp[i]);
}

CPU_VECTOR_CLONES static void gelu_tanh_span(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = cpu_gelu_tanh(inp[i]);
}

/* dinp (+)= dout * gelu'(inp): add, or write 0 + the term (the bits of
 * adding to zeros, nothing of dinp read) */
CPU_VECTOR_CLONES static void gelu_grad_span(float *dinp, const float *dout, const float *inp, size_t n, int add)
{
    if (add)
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * cpu_gelu_grad(inp[i]);
    else
        for (size_t i = 0; i < n; i++) dinp[i] = 0.0f + dout[i] * cpu_gelu_grad(inp[i]);
}

CPU_VECTOR_CLONES static void gelu_tanh_grad_span(float *dinp, const float *dout, const float *inp, size_t n, int add)
{
    if (add)
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * cpu_gelu_tanh_grad(inp[i]);
    else
        for (size_t i = 0; i < n; i++) dinp[i] = 0.0f + dout[i] * cpu_gelu_tanh_grad(inp[i]);
}

/* y = gelu(x) in either form (cpu_math.h) or relu(x) = max(x, 0) */
void cpu_activation_forward(void *self, float *out, const float *inp, size_t N, tftx_activation act)
{
    const int nt = cpu_nt(self);
    if (act == TFTX_ACT_RELU) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) out[i] = inp[i] < 0.0f ? 0.0f : inp[i]; /* NaN stays NaN */
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        cpu_split(N, omp_get_num_threads(), omp_get_thread_num(), &lo, &hi);
        if (act == TFTX_ACT_GELU_TANH)
            gelu_tanh_span(out + lo, inp + lo, hi - lo);
        else
            gelu_span(out + lo, inp + lo, hi - lo);
    }
}

/* dinp (+)= dout * dy/dx, dy/dx of the GELU forms in cpu_math.h, of relu
 * [x > 0] */
void cpu_activation_backward(void *self, float *dinp, const float *dout, const float *inp, size_t N,
                             tftx_activation act, int dinp_add)
{
    const int nt = cpu_nt(self);
    if (act == TFTX_ACT_RELU) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) dinp[i] = (dinp_add ? dinp[i] : 0.0f) + (inp[i] > 0.0f ? dout[i] : 0.0f);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        cpu_split(N, omp_get_num_threads(), omp_get_thread_num(), &lo, &hi);
        if (act == TFTX_ACT_GELU_TANH)
            gelu_tanh_grad_span(dinp + lo, dout + lo, inp + lo, hi - lo, dinp_add);
        else
            gelu_grad_span(dinp + lo, dout + lo, inp + lo, hi - lo, dinp_add);
    }
}

/* out = tanh(inp) */
void cpu_tanh_forward(void *self, float *out, const float *inp, size_t N)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (size_t i = 0; i < N; i++) out[i] = tanhf(inp[i]);
}

/* dinp += dout * (1 - out^2) */
void cpu_tanh_backward(void *self, float *dinp, const float *dout, const float *out, size_t N)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (size_t i = 0; i < N; i++) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}


/* da += dout; db += dout */
void cpu_residual_backward(void *self, float *da, float *db, const float *dout, size_t N)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (size_t i = 0; i < N; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}
