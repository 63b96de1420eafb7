/*
 * cpu_pointwise.c -- element-wise kernels: GELU (erf and tanh forms), ReLU,
 * tanh, residual add and dropout. Each is a static split of [0, N) over the
 * threads; no element depends on another, so results do not depend on the
 * thread count.
 */
#include <math.h>
#include <string.h>

#include "cpu.h"

/* GELU constants, as PyTorch's CPU kernels spell them */
#define GELU_SQRT1_2 0.70710678118654752440f      /* 1/sqrt(2) */
#define GELU_INV_SQRT_2PI 0.39894228040143267794f /* 1/sqrt(2 pi) */
#define GELU_BETA 0.79788456080286535588f         /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f

/* erf form (approximate='none'):  y = x/2 * (1 + erf(x/sqrt2))
 * tanh form (approximate='tanh'): y = x/2 * (1 + tanh(beta*(x + kappa*x^3)))
 * relu: y = max(x, 0) */
void cpu_activation_forward(void *self, float *out, const float *inp, size_t N, tftx_activation act)
{
    const int nt = cpu_nt(self);
    switch (act) {
    case TFTX_ACT_GELU:
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) {
            float x = inp[i];
            out[i] = x * 0.5f * (1.0f + erff(x * GELU_SQRT1_2));
        }
        break;
    case TFTX_ACT_GELU_TANH:
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) {
            float x = inp[i];
            float inner = GELU_BETA * (x + GELU_KAPPA * x * x * x);
            out[i] = 0.5f * x * (1.0f + tanhf(inner));
        }
        break;
    case TFTX_ACT_RELU:
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
        break;
    }
}

/* erf form:   dy/dx = Phi(x) + x * phi(x),  Phi(x) = (1 + erf(x/sqrt2))/2,
 *             phi(x) = exp(-x^2/2) / sqrt(2 pi)
 * tanh form:  with u = beta*(x + kappa*x^3), th = tanh(u):
 *             dy/dx = (1 + th)/2 + x/2 * (1 - th^2) * beta*(1 + 3*kappa*x^2)
 * relu:       dy/dx = [x > 0]
 * dinp += dout * dy/dx */
void cpu_activation_backward(void *self, float *dinp, const float *dout, const float *inp, size_t N,
                             tftx_activation act)
{
    const int nt = cpu_nt(self);
    switch (act) {
    case TFTX_ACT_GELU:
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) {
            float x = inp[i];
            float cdf = 0.5f * (1.0f + erff(x * GELU_SQRT1_2));
            float pdf = GELU_INV_SQRT_2PI * expf(-0.5f * x * x);
            dinp[i] += dout[i] * (cdf + x * pdf);
        }
        break;
    case TFTX_ACT_GELU_TANH:
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) {
            float x = inp[i], x2 = x * x;
            float th = tanhf(GELU_BETA * (x + GELU_KAPPA * x2 * x));
            float left = 0.5f * x, right = 1.0f + th;
            float dinner = GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * x2);
            dinp[i] += dout[i] * (0.5f * right + left * (1.0f - th * th) * dinner);
        }
        break;
    case TFTX_ACT_RELU:
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
        break;
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

/* out = a + b */
void cpu_residual_forward(void *self, float *out, const float *a, const float *b, size_t N)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
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

/* Dropout works in blocks of DROP_BLOCK elements (a multiple of 4, so each
 * Philox draw serves one block only): factors of a block on the stack. */
#define DROP_BLOCK 1024

/* out[i] = inp[i] * f(offset + i), f = 1/(1-p) when uniform >= p, else 0 */
void cpu_dropout_forward(void *self, float *out, const float *inp, size_t N, tftx_dropout drop, uint64_t offset)
{
    if (!(drop.p > 0.0f)) {
        if (out != inp && N) memmove(out, inp, N * sizeof *out);
        return;
    }
    const float scale = cpu_dropout_scale(drop.p);
    const size_t nblocks = (N + DROP_BLOCK - 1) / DROP_BLOCK;
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (size_t k = 0; k < nblocks; k++) {
        const size_t lo = k * DROP_BLOCK, w = N - lo < DROP_BLOCK ? N - lo : DROP_BLOCK;
        float f[DROP_BLOCK];
        cpu_dropout_factors(f, drop.seed, drop.stream, offset + lo, w, drop.p, scale);
        for (size_t j = 0; j < w; j++) out[lo + j] = inp[lo + j] * f[j];
    }
}

/* dinp[i] += dout[i] * f(offset + i), the same factors as the forward */
void cpu_dropout_backward(void *self, float *dinp, const float *dout, size_t N, tftx_dropout drop, uint64_t offset)
{
    const int nt = cpu_nt(self);
    if (!(drop.p > 0.0f)) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < N; i++) dinp[i] += dout[i];
        return;
    }
    const float scale = cpu_dropout_scale(drop.p);
    const size_t nblocks = (N + DROP_BLOCK - 1) / DROP_BLOCK;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t k = 0; k < nblocks; k++) {
        const size_t lo = k * DROP_BLOCK, w = N - lo < DROP_BLOCK ? N - lo : DROP_BLOCK;
        float f[DROP_BLOCK];
        cpu_dropout_factors(f, drop.seed, drop.stream, offset + lo, w, drop.p, scale);
        for (size_t j = 0; j < w; j++) dinp[lo + j] += dout[lo + j] * f[j];
    }
}
