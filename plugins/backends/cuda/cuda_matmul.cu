/*
 * cuda_matmul.cu -- linear layers on cuBLAS.
 *
 *   forward:   out  = inp @ weight^T + bias      out (N,OC), inp (N,C),
 *                                                weight (OC,C), bias (OC)
 *   backward:  dinp    += dout @ weight          (N,C)
 *              dweight += dout^T @ inp           (OC,C)
 *              dbias   += sum_n dout[n,:]        (OC)
 *
 * cuBLAS is column-major: a row-major (R,K) matrix is, as it lies, the
 * column-major (K,R) matrix, its transpose. So each row-major product
 * X = A B is computed as the column-major X^T = B^T A^T, with the operands
 * read where they lie (no copies):
 *   out^T  (OC,N) = W (OC,C) . inp^T (C,N)      : W^T lies there -> op T
 *   dinp^T (C,N) += W^T (C,OC) . dout^T (OC,N)  : both as they lie
 *   dW^T   (C,OC) += inp^T (C,N) . dout (N,OC)  : dout^T lies there -> op T
 * Precision: fp32 and tf32 are the products' compute type
 * (cuda_compute_type) on the fp32 operands. bf16: activations are
 * bfloat16 already (inputs, outputs, their gradients: cuda_device.cuh);
 * the weights are rounded to a bfloat16 copy (the instance's bf16 area,
 * once per call), and cuBLAS multiplies on the bf16 tensor cores with fp32
 * accumulation, rounding the result to bfloat16 for activations and
 * keeping it fp32 for the weight gradients.
 */
#include <cuda_bf16.h>

#include "cuda_device.cuh"

/* dst = src rounded to bfloat16 (to nearest, ties to even) */
__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n)
{
    CUDA_FOR(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

/* The instance's bf16 area, at least `elems` long (grown, never shrunk). */
static __nv_bfloat16 *bf16_area(cuda_backend *be, size_t elems)
{
    return (__nv_bfloat16 *)cuda_grow(be, &be->half, &be->half_bytes, elems * sizeof(__nv_bfloat16),
                                      "cudaMalloc of the bf16 operands");
}

/* dst := bf16(src), n floats; returns dst */
static const __nv_bfloat16 *to_bf16(cuda_backend *be, __nv_bfloat16 *dst, const float *src, size_t n)
{
    TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, to_bf16_kernel)(dst, src, n);
    CUDA_LAUNCHED(be);
    return dst;
}

/* C = alpha op(A) op(B) + beta C with bf16 A and B; C bf16 (c16) or fp32 */
static void gemm_bf16(cuda_backend *be, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                      const float *alpha, const bf16 *A, int lda, const bf16 *B, int ldb, const float *beta, void *C,
                      int c16, int ldc)
{
    CUBLAS_OK(be, cublasGemmEx(be->blas, ta, tb, m, n, k, alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, beta, C,
                               c16 ? CUDA_R_16BF : CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* out[n,o] = bias[o] */
template <class A> __global__ void bias_broadcast_kernel(A *out, const float *bias, int OC, size_t n)
{
    CUDA_FOR(i, n) st(out, i, bias[i % OC]);
}

/* C = alpha op(A) op(B) + beta C, column-major, fp32 in memory */
static void gemm(cuda_backend *be, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *alpha,
                 const float *A, int lda, const float *B, int ldb, const float *beta, float *C, int ldc)
{
    CUBLAS_OK(be, cublasGemmEx(be->blas, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C,
                               CUDA_R_32F, ldc, cuda_compute_type(be), CUBLAS_GEMM_DEFAULT));
}

extern "C" {

void cuda_matmul_forward(void *self, float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                         int OC)
{
    cuda_backend *be = cuda_of(self);
    if (N <= 0 || OC <= 0) return;
    size_t n = (size_t)N * OC;
    float beta = 0.0f, one = 1.0f;
    if (bias) { /* out starts as the bias (beta = 1 adds the product) */
        ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, bias_broadcast_kernel<A>)(
                         (A *)out, bias, OC, n));
        CUDA_LAUNCHED(be);
        beta = 1.0f;
    }
    if (C <= 0) {
        if (!bias) CUDA_OK(be, cudaMemsetAsync(out, 0, n * cuda_act_size(be), be->stream));
        return;
    }
    if (be->act16) {
        __nv_bfloat16 *h = bf16_area(be, (size_t)OC * C);
        if (!h) return;
        const __nv_bfloat16 *w16 = to_bf16(be, h, weight, (size_t)OC * C);
        gemm_bf16(be, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, w16, C, (const bf16 *)inp, C, &beta, out, 1, OC);
        return;
    }
    gemm(be, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, weight, C, inp, C, &beta, out, OC);
}

void cuda_matmul_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC)
{
    cuda_backend *be = cuda_of(self);
    if (N <= 0 || OC <= 0) return;
    const float one = 1.0f;
    if (dbias) ACT_CALL(be, colsum(be, dbias, NULL, col_of<A>{(const A *)dout, OC}, N, OC));
    if (C <= 0) return;
    if (be->act16) {
        const bf16 *d16 = (const bf16 *)dout;
        if (dinp) {
            __nv_bfloat16 *h = bf16_area(be, (size_t)OC * C);
            if (!h) return;
            const __nv_bfloat16 *w16 = to_bf16(be, h, weight, (size_t)OC * C);
            gemm_bf16(be, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, w16, C, d16, OC, &one, dinp, 1, C);
        }
        if (dweight)
            gemm_bf16(be, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, (const bf16 *)inp, C, d16, OC, &one, dweight, 0, C);
        return;
    }
    if (dinp) gemm(be, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, weight, C, dout, OC, &one, dinp, C);
    if (dweight) gemm(be, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC, &one, dweight, C);
}

} /* extern "C" */
