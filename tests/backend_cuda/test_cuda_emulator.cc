/*
 * test_cuda_emulator.cc -- the CUDA emulator of tests/backend_cuda/emu,
 * on which the *_emulated tests rely, against what CUDA promises:
 *
 *   - kernels: grid and block indices (2D blocks), a shared-memory tree
 *     reduction across __syncthreads, warp shuffles (xor and indexed, on
 *     floats and doubles), threads that return early not holding up a
 *     barrier, a bad launch shape reported by cudaGetLastError;
 *   - tensor cores: ldmatrix (plain and .trans) gives the B fragments of
 *     the m16n8k16 bf16 product as the fused attention kernels take them
 *     (the products against double ones); cp.async copies land at the
 *     wait that covers their group, zeros past a short source;
 *   - memory: fresh device memory reads as NaN, allocations past
 *     TFTX_EMU_DEVICE_MEMORY fail with cudaErrorMemoryAllocation and leave
 *     nothing allocated, copies refuse host pointers where device ones
 *     are due;
 *   - capture: launches, memsets and products recorded, not run, until
 *     the graph is launched (and run again on every launch, reading their
 *     operands then); a synchronisation, an allocation or a host copy
 *     during capture is refused and spoils the capture;
 *   - cuBLAS: the four transpose combinations and leading dimensions
 *     against a double-precision product, beta = 0 not reading C (NaN
 *     there), tf32 rounding of the inputs, bf16 inputs, a batched product.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <vector>

#include "cuda_emulator.hpp"
// (after the emulator)
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <tftx/cuda_launch.cuh>

static int failures;

static void expect(bool ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

/* out[block] = sum of in over the block's 2D threads, by a shared tree */
__global__ void block_sum_kernel(float *out, const float *in)
{
    __shared__ float sh[256];
    const unsigned t = threadIdx.x + threadIdx.y * blockDim.x, n = blockDim.x * blockDim.y;
    const unsigned b = blockIdx.x + blockIdx.y * gridDim.x;
    sh[t] = in[b * n + t];
    __syncthreads();
    for (unsigned half = n / 2; half > 0; half /= 2) {
        if (t < half) sh[t] += sh[t + half];
        __syncthreads();
    }
    if (t == 0) out[b] = sh[0];
}

/* out[warp] = sum over the warp by xor shuffles (double), and each lane's
 * neighbour's value by an indexed shuffle; threads past n return first */
__global__ void warp_kernel(double *sums, float *next, const float *in, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i / 32 * 32 >= n) return; /* whole warps past the end */
    double v = in[i];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    next[i] = __shfl_sync(0xffffffffu, in[i], (int)((threadIdx.x + 1) & 31u));
    if (threadIdx.x % 32 == 0) sums[i / 32] = v;
}

__global__ void add_kernel(float *x, float v, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += v;
}

static float *dev(size_t n)
{
    void *p = NULL;
    if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) abort();
    return (float *)p;
}

static void test_kernels(cudaStream_t s)
{
    const unsigned blocks = 6, n = 256;
    std::vector<float> h(blocks * n);
    for (size_t i = 0; i < h.size(); i++) h[i] = (float)(i % 97);
    float *in = dev(h.size()), *out = dev(blocks);
    cudaMemcpyAsync(in, h.data(), h.size() * 4, cudaMemcpyHostToDevice, s);
    TFTX_CUDA_LAUNCH(dim3(3, 2), dim3(32, 8), s, block_sum_kernel)(out, in);
    std::vector<float> got(blocks);
    cudaMemcpyAsync(got.data(), out, blocks * 4, cudaMemcpyDeviceToHost, s);
    bool ok = true;
    for (unsigned b = 0; b < blocks; b++) {
        double want = 0;
        for (unsigned t = 0; t < n; t++) want += h[b * n + t];
        ok = ok && got[b] == (float)want;
    }
    expect(ok, "2D blocks of (32, 8) threads: a shared-memory tree sum across __syncthreads");

    const int N = 200; /* 7 warps: the last one's 24 lanes past N still take part */
    double *sums;
    cudaMalloc((void **)&sums, 8 * sizeof(double));
    float *next = dev(256);
    TFTX_CUDA_LAUNCH(2, 128, s, warp_kernel)(sums, next, in, N);
    std::vector<double> hs(8);
    std::vector<float> hn(256);
    cudaMemcpyAsync(hs.data(), sums, 7 * sizeof(double), cudaMemcpyDeviceToHost, s);
    cudaMemcpyAsync(hn.data(), next, 224 * 4, cudaMemcpyDeviceToHost, s);
    ok = true;
    for (int w = 0; w < 7; w++) {
        double want = 0;
        for (int l = 0; l < 32; l++) want += h[w * 32 + l];
        ok = ok && hs[w] == want;
        for (int l = 0; l < 32; l++) ok = ok && hn[w * 32 + l] == h[w * 32 + (l + 1) % 32];
    }
    expect(ok, "warp shuffles: xor sum of doubles, indexed exchange; warps that return do not hold others");

    cudaGetLastError();
    TFTX_CUDA_LAUNCH(1, 2048, s, add_kernel)(out, 1.0f, 1);
    expect(cudaGetLastError() == cudaErrorInvalidConfiguration && cudaGetLastError() == cudaSuccess,
           "a block of 2048 threads: cudaErrorInvalidConfiguration, once");
    cudaFree(in), cudaFree(out), cudaFree(sums), cudaFree(next);
}

/* D (16 x 8) = A (16 x 16) B for two B fragments from one ldmatrix of
 * a 16 x 32 bf16 tile: plain, B0(k, n) = t[n][k] and B1(k, n) = t[n][16+k]
 * (rows 0..7); trans, B0(k, n) = t[k][n] and B1(k, n) = t[k][8+n]. a: the
 * A fragments (4 a lane), out: each lane's 8 results. */
__global__ void ldmatrix_kernel(float *out, const uint16_t *tile, const uint32_t *a, int trans)
{
    struct alignas(16) rows {
        uint16_t t[16][32];
    };
    __shared__ rows sh;
    const unsigned lane = threadIdx.x;
    for (unsigned i = lane; i < 16 * 32; i += 32) sh.t[i / 32][i % 32] = tile[i];
    __syncthreads();
    uint32_t r[4];
    if (trans)
        emu_ldmatrix_x4(r, &sh.t[lane & 15][(lane >> 4) * 8], 1);
    else
        emu_ldmatrix_x4(r, &sh.t[lane & 7][(lane >> 3) * 8], 0);
    for (int f = 0; f < 2; f++) {
        float d[4] = {0, 0, 0, 0};
        emu_mma_bf16(d, a + 4 * lane, r + 2 * f);
        for (int q = 0; q < 4; q++) out[lane * 8 + f * 4 + q] = d[q];
    }
}

/* lane's words: before any wait (the old bytes), after waiting for all but
 * the two newest groups, after waiting for all */
__global__ void cp_async_kernel(float *out, const float *in)
{
    __shared__ float sh[3][32];
    const unsigned lane = threadIdx.x;
    for (int g = 0; g < 3; g++) sh[g][lane] = -1.0f;
    for (int g = 0; g < 3; g++) {
        emu_cp_async(&sh[g][lane], &in[g * 32 + lane], 4, g == 1 && lane % 2 ? 0 : 4);
        emu_cp_async_commit();
    }
    out[lane] = sh[0][lane];
    emu_cp_async_wait(2);
    out[32 + lane] = sh[0][lane], out[64 + lane] = sh[1][lane];
    emu_cp_async_wait(0);
    out[96 + lane] = sh[1][lane], out[128 + lane] = sh[2][lane];
}

static void test_tensor_cores(cudaStream_t s)
{
    /* small integers: every bf16 value and sum exact */
    std::vector<uint16_t> tile(16 * 32);
    std::vector<float> tv(16 * 32), A(16 * 16);
    for (size_t i = 0; i < tile.size(); i++) {
        tv[i] = (float)((int)(i * 7 % 11) - 5);
        tile[i] = __float2bfloat16_rn(tv[i]).bits;
    }
    for (size_t i = 0; i < A.size(); i++) A[i] = (float)((int)(i * 5 % 7) - 3);
    /* A fragment: (g, 2t..2t+1) (g+8, 2t..) (g, 2t+8..) (g+8, 2t+8..) */
    std::vector<uint32_t> af(32 * 4);
    auto bf = [&](int r, int c) { return (uint32_t)__float2bfloat16_rn(A[r * 16 + c]).bits; };
    for (int l = 0; l < 32; l++)
        for (int q = 0; q < 4; q++) {
            const int r = l / 4 + (q & 1) * 8, c = 2 * (l % 4) + (q >> 1) * 8;
            af[l * 4 + q] = bf(r, c) | bf(r, c + 1) << 16;
        }
    uint16_t *dt;
    uint32_t *da;
    cudaMalloc((void **)&dt, tile.size() * 2);
    cudaMalloc((void **)&da, af.size() * 4);
    float *dout = dev(32 * 8);
    cudaMemcpyAsync(dt, tile.data(), tile.size() * 2, cudaMemcpyHostToDevice, s);
    cudaMemcpyAsync(da, af.data(), af.size() * 4, cudaMemcpyHostToDevice, s);
    for (int trans = 0; trans < 2; trans++) {
        TFTX_CUDA_LAUNCH(1, 32, s, ldmatrix_kernel)(dout, dt, da, trans);
        std::vector<float> got(32 * 8);
        cudaMemcpyAsync(got.data(), dout, got.size() * 4, cudaMemcpyDeviceToHost, s);
        bool ok = true;
        for (int l = 0; l < 32; l++)
            for (int f = 0; f < 2; f++)
                for (int q = 0; q < 4; q++) {
                    const int row = l / 4 + (q >> 1) * 8, col = 2 * (l % 4) + (q & 1);
                    double want = 0;
                    for (int k = 0; k < 16; k++) {
                        const double b = trans ? tv[k * 32 + f * 8 + col] : tv[col * 32 + f * 16 + k];
                        want += (double)A[row * 16 + k] * b;
                    }
                    ok = ok && got[l * 8 + f * 4 + q] == (float)want;
                }
        expect(ok, trans ? "ldmatrix .x4 .trans: B fragments of tile[k][n], tile[k][8+n] for mma m16n8k16"
                         : "ldmatrix .x4: B fragments of tile[n][k], tile[n][16+k] for mma m16n8k16");
    }

    std::vector<float> in(96);
    for (int i = 0; i < 96; i++) in[i] = (float)i;
    float *din = dev(96), *dres = dev(160);
    cudaMemcpyAsync(din, in.data(), 96 * 4, cudaMemcpyHostToDevice, s);
    TFTX_CUDA_LAUNCH(1, 32, s, cp_async_kernel)(dres, din);
    std::vector<float> res(160);
    cudaMemcpyAsync(res.data(), dres, 160 * 4, cudaMemcpyDeviceToHost, s);
    bool ok = true;
    for (int l = 0; l < 32; l++) {
        const float g1 = l % 2 ? 0.0f : in[32 + l];
        ok = ok && res[l] == -1.0f && res[32 + l] == in[l] && res[64 + l] == -1.0f && res[96 + l] == g1 &&
             res[128 + l] == in[64 + l];
    }
    expect(ok, "cp.async: done at the wait that covers its group (wait 2 of 3 groups: the first), zeros past a "
               "short source");
    cudaFree(dt), cudaFree(da), cudaFree(dout), cudaFree(din), cudaFree(dres);
}

static void test_memory(cudaStream_t s)
{
    float *p = dev(5), h[5];
    cudaMemcpyAsync(h, p, sizeof h, cudaMemcpyDeviceToHost, s);
    expect(isnan(h[0]) && isnan(h[4]), "fresh device memory reads as NaN");
    const size_t before = tftx_emu_memory_in_use();
    void *big = NULL;
    cudaError_t e = cudaMalloc(&big, (size_t)1 << 40);
    expect(e == cudaErrorMemoryAllocation && !big && tftx_emu_memory_in_use() == before,
           "an allocation past the device's size: cudaErrorMemoryAllocation, nothing allocated");
    cudaGetLastError();
    e = cudaMemcpyAsync(h, p, sizeof h, cudaMemcpyDeviceToDevice, s);
    expect(e == cudaErrorInvalidValue, "a device-to-device copy to host memory is refused");
    e = cudaMemcpyAsync(p, h, 6 * sizeof(float), cudaMemcpyHostToDevice, s);
    expect(e == cudaErrorInvalidValue, "a copy past the end of an allocation is refused");
    cudaGetLastError();
    cudaFree(p);
}

static void test_capture(cudaStream_t s)
{
    float *x = dev(4), h[4];
    cudaMemsetAsync(x, 0, 4 * sizeof(float), s);
    cudaGraph_t g = NULL;
    cudaGraphExec_t ex = NULL;
    expect(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess, "capture begins");
    TFTX_CUDA_LAUNCH(1, 32, s, add_kernel)(x, 2.0f, 4);
    cudaMemsetAsync(x + 3, 0, sizeof(float), s);
    cudaStreamEndCapture(s, &g);
    cudaMemcpyAsync(h, x, sizeof h, cudaMemcpyDeviceToHost, s);
    expect(h[0] == 0 && h[3] == 0, "captured work does not run at capture");
    cudaGraphInstantiate(&ex, g, 0);
    cudaGraphLaunch(ex, s);
    cudaGraphLaunch(ex, s);
    cudaMemcpyAsync(h, x, sizeof h, cudaMemcpyDeviceToHost, s);
    expect(h[0] == 4 && h[2] == 4 && h[3] == 0, "each graph launch runs the captured work in order");
    cudaGraphExecDestroy(ex), cudaGraphDestroy(g);

    static const char *const what[] = {"cudaStreamSynchronize", "cudaMalloc", "a host copy"};
    for (int k = 0; k < 3; k++) {
        cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
        void *p = NULL;
        cudaError_t e = k == 0   ? cudaStreamSynchronize(s)
                        : k == 1 ? cudaMalloc(&p, 16)
                                 : cudaMemcpyAsync(x, h, 4, cudaMemcpyHostToDevice, s);
        cudaError_t end = cudaStreamEndCapture(s, &g);
        char msg[160];
        snprintf(msg, sizeof msg, "%s during capture: refused, and the capture ends invalidated", what[k]);
        expect(e == cudaErrorStreamCaptureUnsupported && end == cudaErrorStreamCaptureInvalidated && !g && !p, msg);
        cudaGetLastError();
    }
    cudaFree(x);
}

/* C (m,n) = op(A) op(B) in double, column-major, as cuBLAS reads them */
static double ref_at(const std::vector<float> &M, cublasOperation_t op, int r, int c, int ld)
{
    return op == CUBLAS_OP_N ? M[(size_t)r + (size_t)c * ld] : M[(size_t)c + (size_t)r * ld];
}

static void test_cublas(cudaStream_t s)
{
    cublasHandle_t h;
    cublasCreate(&h);
    cublasSetStream(h, s);
    const int m = 7, n = 5, k = 9, ld = 11;
    std::vector<float> A(ld * 11), B(ld * 11), C(ld * n);
    for (size_t i = 0; i < A.size(); i++) A[i] = (float)((int)(i * 37 % 23) - 11) / 7.0f + 1e-4f;
    for (size_t i = 0; i < B.size(); i++) B[i] = (float)((int)(i * 53 % 19) - 9) / 5.0f;
    float *dA = dev(A.size()), *dB = dev(B.size()), *dC = dev(C.size()); /* dC: NaN */
    cudaMemcpyAsync(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice, s);
    cudaMemcpyAsync(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice, s);
    const float one = 1, zero = 0;
    double worst = 0;
    for (int t = 0; t < 4; t++) {
        cublasOperation_t ta = t & 1 ? CUBLAS_OP_T : CUBLAS_OP_N, tb = t & 2 ? CUBLAS_OP_T : CUBLAS_OP_N;
        cublasStatus_t st = cublasGemmEx(h, ta, tb, m, n, k, &one, dA, CUDA_R_32F, ld, dB, CUDA_R_32F, ld, &zero, dC,
                                         CUDA_R_32F, ld, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        cudaMemcpyAsync(C.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost, s);
        if (st != CUBLAS_STATUS_SUCCESS) worst = INFINITY;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double want = 0;
                for (int p = 0; p < k; p++) want += ref_at(A, ta, i, p, ld) * ref_at(B, tb, p, j, ld);
                double d = fabs(C[(size_t)i + (size_t)j * ld] - want) / (1 + fabs(want));
                if (!(d <= worst)) worst = d;
            }
    }
    expect(worst < 1e-5, "cublasGemmEx fp32, all four transposes, beta = 0 over NaN, against double");

    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_32F, ld, dB, CUDA_R_32F, ld, &zero, dC,
                 CUDA_R_32F, ld, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    std::vector<float> exact(C.size()), tf(C.size());
    cudaMemcpyAsync(exact.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost, s);
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_32F, ld, dB, CUDA_R_32F, ld, &zero, dC,
                 CUDA_R_32F, ld, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
    cudaMemcpyAsync(tf.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost, s);
    double most = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double d = fabs(exact[i + j * ld] - tf[i + j * ld]) / (1 + fabs(exact[i + j * ld]));
            if (d > most) most = d;
        }
    expect(most > 1e-6 && most < 5e-3, "CUBLAS_COMPUTE_32F_FAST_TF32 rounds the inputs (differs, within tf32)");

    std::vector<__nv_bfloat16> hb(A.size());
    for (size_t i = 0; i < A.size(); i++) hb[i] = __float2bfloat16_rn(A[i]);
    void *dH = NULL;
    cudaMalloc(&dH, hb.size() * 2);
    cudaMemcpyAsync(dH, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice, s);
    /* A (bf16) times itself: against the double product of the rounded values */
    cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dH, CUDA_R_16BF, ld, dH, CUDA_R_16BF,
                                     ld, &zero, dC, CUDA_R_32F, ld, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cudaMemcpyAsync(C.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost, s);
    worst = st == CUBLAS_STATUS_SUCCESS ? 0 : INFINITY;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double want = 0;
            for (int p = 0; p < k; p++)
                want += (double)__bfloat162float(hb[p + i * ld]) * __bfloat162float(hb[p + j * ld]);
            double d = fabs(C[i + j * ld] - want) / (1 + fabs(want));
            if (!(d <= worst)) worst = d;
        }
    expect(worst < 1e-5, "cublasGemmEx on bf16 inputs: the product of the rounded values");

    /* batched: two products through device pointer arrays, read when run */
    const void *ha[2] = {dA, dA + 1}, *hbp[2] = {dB, dB + 2};
    void *hc[2] = {dC, dC + ld * 2};
    void **arr = NULL;
    cudaMalloc((void **)&arr, 6 * sizeof(void *));
    cudaMemcpyAsync(arr, ha, sizeof ha, cudaMemcpyHostToDevice, s);
    cudaMemcpyAsync(arr + 2, hbp, sizeof hbp, cudaMemcpyHostToDevice, s);
    cudaMemcpyAsync(arr + 4, hc, sizeof hc, cudaMemcpyHostToDevice, s);
    st = cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 3, 2, 4, &one, (const void *const *)arr, CUDA_R_32F, ld,
                             (const void *const *)(arr + 2), CUDA_R_32F, ld, &zero, (void *const *)(arr + 4),
                             CUDA_R_32F, ld, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cudaMemcpyAsync(C.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost, s);
    worst = st == CUBLAS_STATUS_SUCCESS ? 0 : INFINITY;
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 3; i++) {
                double want = 0;
                for (int p = 0; p < 4; p++) want += (double)A[b + i + p * ld] * B[2 * b + p + j * ld];
                double d = fabs(C[(size_t)b * ld * 2 + i + j * ld] - want) / (1 + fabs(want));
                if (!(d <= worst)) worst = d;
            }
    expect(worst < 1e-5, "cublasGemmBatchedEx through device pointer arrays");
    expect(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A.data(), CUDA_R_32F, ld, dB, CUDA_R_32F, ld, &zero,
                        dC, CUDA_R_32F, ld, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE,
           "a product on host memory is refused");
    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dH), cudaFree(arr);
    cublasDestroy(h);
}

int main(void)
{
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    test_kernels(s);
    test_tensor_cores(s);
    test_memory(s);
    test_capture(s);
    test_cublas(s);
    cudaStreamDestroy(s);
    expect(tftx_emu_memory_in_use() == 0, "everything allocated was freed");
    printf("%s: %d failure%s\n", failures ? "FAIL" : "PASS", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
