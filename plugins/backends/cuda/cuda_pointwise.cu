/*
 * cuda_pointwise.cu -- element-wise kernels (GELU in both forms, ReLU,
 * tanh, residual, dropout, scale) and the gradient utilities that reduce
 * (sum of squares in double, finiteness).
 *
 * GELU, erf form: y = x Phi(x), Phi(x) = erfc(-x/sqrt2)/2 (CUDA's erfcf,
 * no cancellation in the negative tail); dy/dx = Phi(x) + x phi(x).
 * GELU, tanh form: y = x/2 (1 + tanh u) = x s, s = 1/(1 + e^{-2u}),
 * u = sqrt(2/pi)(x + 0.044715 x^3); dy/dx = s + 2 x s (1-s) sqrt(2/pi)
 * (1 + 3*0.044715 x^2). The same formulas as the cpu backend (cpu_math.h)
 * with CUDA's libm: equal to within a few ulp. Activations are float or
 * bfloat16 (cuda_device.cuh); the utilities work on float gradients.
 */
#include "cuda_device.cuh"

#define GELU_BETA 0.79788456080286535588f /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f
#define INV_SQRT_2PI 0.39894228040143267794f /* 1/sqrt(2 pi) */
#define SQRT1_2 0.70710678118654752440f      /* 1/sqrt(2) */

__device__ __forceinline__ float gelu_erf(float x)
{
    return x * 0.5f * erfcf(-x * SQRT1_2);
}

__device__ __forceinline__ float gelu_erf_grad(float x)
{
    return 0.5f * erfcf(-x * SQRT1_2) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
}

__device__ __forceinline__ float gelu_tanh(float x)
{
    float u = GELU_BETA * (x + GELU_KAPPA * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
}

__device__ __forceinline__ float gelu_tanh_grad(float x)
{
    float x2 = x * x, u = GELU_BETA * (x + GELU_KAPPA * x2 * x);
    float e = expf(-2.0f * u), s = 1.0f / (1.0f + e);
    return s + 2.0f * x * s * (e * s) * GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * x2);
}

__device__ __forceinline__ float activation(float x, int act)
{
    return act == TFTX_ACT_RELU ? (x < 0.0f ? 0.0f : x) : act == TFTX_ACT_GELU_TANH ? gelu_tanh(x) : gelu_erf(x);
}

/* base + the gradient through the activation at x */
__device__ __forceinline__ float activation_grad(float base, float dy, float x, int act)
{
    if (act == TFTX_ACT_RELU) return base + (x > 0.0f ? dy : 0.0f);
    return base + dy * (act == TFTX_ACT_GELU_TANH ? gelu_tanh_grad(x) : gelu_erf_grad(x));
}

/* out[i] = f(inp[i]), by vectors (vec_for); in place allowed */
template <class A, class F> __device__ __forceinline__ void map_for(A *out, const A *inp, size_t n, F f)
{
    vec_for<A>(
        n, vec_aligned(out) && vec_aligned(inp), VEC_GRID,
        [&](size_t i) {
            float x[ACT_VEC(A)];
            ld_vec(inp, i, x);
            CUDA_UNROLL
            for (int k = 0; k < ACT_VEC(A); k++) x[k] = f(x[k]);
            st_vec(out, i, x);
        },
        [&](size_t i) { st(out, i, f(ld(inp, i))); });
}

/* dinp[i] = g(base, dout[i], x[i]), base = dinp[i] when add, else 0
 * (dinp written, not read: the bits of adding to zeros); by vectors */
template <class A, class G>
__device__ __forceinline__ void grad_for(A *dinp, const A *dout, const A *x, size_t n, int add, G g)
{
    vec_for<A>(
        n, vec_aligned(dinp) && vec_aligned(dout) && vec_aligned(x), VEC_GRID,
        [&](size_t i) {
            float xv[ACT_VEC(A)], dy[ACT_VEC(A)], d[ACT_VEC(A)];
            ld_vec(x, i, xv);
            ld_vec(dout, i, dy);
            if (add) ld_vec(dinp, i, d);
            CUDA_UNROLL
            for (int k = 0; k < ACT_VEC(A); k++) d[k] = g(add ? d[k] : 0.0f, dy[k], xv[k]);
            st_vec(dinp, i, d);
        },
        [&](size_t i) { st(dinp, i, g(add ? ld(dinp, i) : 0.0f, ld(dout, i), ld(x, i))); });
}

template <class A> __global__ void activation_forward_kernel(A *out, const A *inp, size_t n, int act)
{
    map_for(out, inp, n, [&](float x) { return activation(x, act); });
}

template <class A>
__global__ void activation_backward_kernel(A *dinp, const A *dout, const A *inp, size_t n, int act, int add)
{
    grad_for(dinp, dout, inp, n, add, [&](float base, float dy, float x) { return activation_grad(base, dy, x, act); });
}

template <class A> __global__ void tanh_forward_kernel(A *out, const A *inp, size_t n)
{
    map_for(out, inp, n, [](float x) { return tanhf(x); });
}

/* dinp += dout * (1 - y^2), y the forward's output */
template <class A> __global__ void tanh_backward_kernel(A *dinp, const A *dout, const A *out, size_t n)
{
    grad_for(dinp, dout, out, n, 1, [](float base, float dy, float y) { return base + dy * (1.0f - y * y); });
}

/* out = a + b * f(offset + i), f the dropout factor (1 when !dropping) */
template <class A>
__global__ void residual_forward_kernel(A *out, const A *a, const A *b, size_t n, tftx_dropout drop, uint64_t offset,
                                        float scale, int dropping)
{
    const uint64_t stream = dropping ? TFTX_DROPOUT_STREAM(drop) : 0;
    drop_vec_for<A>(
        n, vec_aligned(out) && vec_aligned(a) && vec_aligned(b), offset, DROP_GRID_FIRST, DROP_GRID_STEP, drop, stream,
        scale, dropping, [&](size_t i, const float *f) { add_dropped_vec(out, a, b, i, f); },
        [&](size_t i, float f) { st(out, i, ld(a, i) + ld(b, i) * f); });
}

template <class A> __global__ void residual_backward_kernel(A *da, A *db, const A *dout, size_t n)
{
    auto add = [&](A *to, size_t i, const float *d) {
        float x[ACT_VEC(A)];
        ld_vec(to, i, x);
        CUDA_UNROLL
        for (int k = 0; k < ACT_VEC(A); k++) x[k] += d[k];
        st_vec(to, i, x);
    };
    vec_for<A>(
        n, (!da || vec_aligned(da)) && (!db || vec_aligned(db)) && vec_aligned(dout), VEC_GRID,
        [&](size_t i) {
            float d[ACT_VEC(A)];
            ld_vec(dout, i, d);
            if (da) add(da, i, d);
            if (db) add(db, i, d);
        },
        [&](size_t i) {
            float d = ld(dout, i);
            if (da) st(da, i, ld(da, i) + d);
            if (db) st(db, i, ld(db, i) + d);
        });
}

/* out[i] = inp[i] * f(offset + i); in place allowed */
template <class A>
__global__ void dropout_forward_kernel(A *out, const A *inp, size_t n, tftx_dropout drop, uint64_t offset, float scale)
{
    const uint64_t stream = TFTX_DROPOUT_STREAM(drop);
    drop_vec_for<A>(
        n, vec_aligned(out) && vec_aligned(inp), offset, DROP_GRID_FIRST, DROP_GRID_STEP, drop, stream, scale, 1,
        [&](size_t i, const float *f) {
            float x[ACT_VEC(A)];
            ld_vec(inp, i, x);
            CUDA_UNROLL
            for (int k = 0; k < ACT_VEC(A); k++) x[k] *= f[k];
            st_vec(out, i, x);
        },
        [&](size_t i, float f) { st(out, i, ld(inp, i) * f); });
}

/* dinp[i] += dout[i] * f(offset + i) (f = 1 when p == 0) */
template <class A>
__global__ void dropout_backward_kernel(A *dinp, const A *dout, size_t n, tftx_dropout drop, uint64_t offset,
                                        float scale, int dropping, int add)
{
    const uint64_t stream = dropping ? TFTX_DROPOUT_STREAM(drop) : 0;
    drop_vec_for<A>(
        n, vec_aligned(dinp) && vec_aligned(dout), offset, DROP_GRID_FIRST, DROP_GRID_STEP, drop, stream, scale,
        dropping,
        [&](size_t i, const float *f) {
            float d[ACT_VEC(A)], x[ACT_VEC(A)];
            ld_vec(dout, i, d);
            if (add) ld_vec(dinp, i, x);
            CUDA_UNROLL
            for (int k = 0; k < ACT_VEC(A); k++) x[k] = (add ? x[k] : 0.0f) + d[k] * f[k];
            st_vec(dinp, i, x);
        },
        [&](size_t i, float f) { st(dinp, i, (add ? ld(dinp, i) : 0.0f) + ld(dout, i) * f); });
}

__global__ void scale_kernel(float *x, size_t n, float s)
{
    CUDA_FOR(i, n) x[i] *= s;
}

/* Partial sums of squares in double: block k sums the elements of its
 * grid-stride sequence in order, then its threads in a fixed tree. */
__global__ void sum_squares_partial_kernel(double *partial, const float *x, size_t n)
{
    __shared__ double warp_sums[CUDA_THREADS / 32];
    double s = 0.0;
    CUDA_FOR(i, n) s += (double)x[i] * (double)x[i];
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < CUDA_THREADS / 32; w++) t += warp_sums[w];
        partial[blockIdx.x] = t;
    }
}

/* total = sum of the partials, in order, by one thread */
__global__ void sum_partials_kernel(double *total, const double *partial, unsigned n)
{
    double t = 0.0;
    for (unsigned k = 0; k < n; k++) t += partial[k];
    *total = t;
}

/* *bad = 1 when an element's exponent bits are all ones (Inf or NaN) */
__global__ void nonfinite_kernel(int *bad, const float *x, size_t n)
{
    CUDA_FOR(i, n)
    {
        if ((__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u) *bad = 1;
    }
}

/* ------------------------------------------------------------ launchers */

extern "C" {

void cuda_activation_forward(void *self, float *out, const float *inp, size_t N, tftx_activation act)
{
    cuda_backend *be = cuda_of(self);
    if (!N) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_vec_blocks(be, N), CUDA_THREADS, be->stream,
                                  activation_forward_kernel<A>)((A *)out, (const A *)inp, N, (int)act));
    CUDA_LAUNCHED(be);
}

void cuda_activation_backward(void *self, float *dinp, const float *dout, const float *inp, size_t N,
                              tftx_activation act, int dinp_add)
{
    cuda_backend *be = cuda_of(self);
    if (!N || !dinp) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_vec_blocks(be, N), CUDA_THREADS, be->stream, activation_backward_kernel<A>)(
                     (A *)dinp, (const A *)dout, (const A *)inp, N, (int)act, dinp_add));
    CUDA_LAUNCHED(be);
}

void cuda_tanh_forward(void *self, float *out, const float *inp, size_t N)
{
    cuda_backend *be = cuda_of(self);
    if (!N) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_vec_blocks(be, N), CUDA_THREADS, be->stream,
                                  tanh_forward_kernel<A>)((A *)out, (const A *)inp, N));
    CUDA_LAUNCHED(be);
}

void cuda_tanh_backward(void *self, float *dinp, const float *dout, const float *out, size_t N)
{
    cuda_backend *be = cuda_of(self);
    if (!N || !dinp) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_vec_blocks(be, N), CUDA_THREADS, be->stream,
                                  tanh_backward_kernel<A>)((A *)dinp, (const A *)dout, (const A *)out, N));
    CUDA_LAUNCHED(be);
}

void cuda_residual_forward(void *self, float *out, const float *a, const float *b, size_t N, tftx_dropout drop,
                           uint64_t offset)
{
    cuda_backend *be = cuda_of(self);
    if (!N) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(drop_vec_blocks(be, N, offset), CUDA_THREADS, be->stream, residual_forward_kernel<A>)(
                     (A *)out, (const A *)a, (const A *)b, N, drop, offset, cuda_dropout_scale(drop.p), drop.p > 0.0f));
    CUDA_LAUNCHED(be);
}

void cuda_residual_backward(void *self, float *da, float *db, const float *dout, size_t N)
{
    cuda_backend *be = cuda_of(self);
    if (!N || (!da && !db)) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_vec_blocks(be, N), CUDA_THREADS, be->stream,
                                  residual_backward_kernel<A>)((A *)da, (A *)db, (const A *)dout, N));
    CUDA_LAUNCHED(be);
}

void cuda_dropout_forward(void *self, float *out, const float *inp, size_t N, tftx_dropout drop, uint64_t offset)
{
    cuda_backend *be = cuda_of(self);
    if (!N) return;
    if (!(drop.p > 0.0f)) {
        if (out != inp)
            CUDA_OK(be, cudaMemcpyAsync(out, inp, N * cuda_act_size(be), cudaMemcpyDeviceToDevice, be->stream));
        return;
    }
    ACT_CALL(be, TFTX_CUDA_LAUNCH(drop_vec_blocks(be, N, offset), CUDA_THREADS, be->stream, dropout_forward_kernel<A>)(
                     (A *)out, (const A *)inp, N, drop, offset, cuda_dropout_scale(drop.p)));
    CUDA_LAUNCHED(be);
}

void cuda_dropout_backward(void *self, float *dinp, const float *dout, size_t N, tftx_dropout drop, uint64_t offset,
                           int dinp_add)
{
    cuda_backend *be = cuda_of(self);
    if (!N || !dinp) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(drop_vec_blocks(be, N, offset), CUDA_THREADS, be->stream, dropout_backward_kernel<A>)(
                     (A *)dinp, (const A *)dout, N, drop, offset, cuda_dropout_scale(drop.p), drop.p > 0.0f, dinp_add));
    CUDA_LAUNCHED(be);
}

void cuda_scale(void *self, float *x, size_t n, float s)
{
    cuda_backend *be = cuda_of(self);
    if (!n) return;
    TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, scale_kernel)(x, n, s);
    CUDA_LAUNCHED(be);
}

/* A fixed number of partial sums for a given n (the grid depends on n
 * only), so the result is the same every run. */
#define SUMSQ_BLOCKS 1024u

double cuda_sum_squares(void *self, const float *x, size_t n)
{
    cuda_backend *be = cuda_of(self);
    if (be->failed) return NAN;
    if (!n) return 0.0;
    unsigned blocks = cuda_blocks(n);
    if (blocks > SUMSQ_BLOCKS) blocks = SUMSQ_BLOCKS;
    double *partial = (double *)cuda_work(be, (SUMSQ_BLOCKS + 1) * sizeof(double));
    if (!partial) return NAN;
    TFTX_CUDA_LAUNCH(blocks, CUDA_THREADS, be->stream, sum_squares_partial_kernel)(partial, x, n);
    CUDA_LAUNCHED(be);
    TFTX_CUDA_LAUNCH(1, 1, be->stream, sum_partials_kernel)(partial + SUMSQ_BLOCKS, partial, blocks);
    CUDA_LAUNCHED(be);
    double total = NAN;
    CUDA_OK(be, cudaMemcpyAsync(&total, partial + SUMSQ_BLOCKS, sizeof total, cudaMemcpyDeviceToHost, be->stream));
    CUDA_OK(be, cudaStreamSynchronize(be->stream));
    return be->failed ? NAN : total;
}

int cuda_all_finite(void *self, const float *x, size_t n)
{
    cuda_backend *be = cuda_of(self);
    if (be->failed) return 0;
    if (!n) return 1;
    int *bad = (int *)cuda_work(be, sizeof(int));
    if (!bad) return 0;
    CUDA_OK(be, cudaMemsetAsync(bad, 0, sizeof *bad, be->stream));
    TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, nonfinite_kernel)(bad, x, n);
    CUDA_LAUNCHED(be);
    int host_bad = 1;
    CUDA_OK(be, cudaMemcpyAsync(&host_bad, bad, sizeof host_bad, cudaMemcpyDeviceToHost, be->stream));
    CUDA_OK(be, cudaStreamSynchronize(be->stream));
    return !be->failed && !host_bad;
}

} /* extern "C" */
