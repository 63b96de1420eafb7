/*
 * cuda_matmul.cu -- linear layers on cuBLAS.
 *
 *   forward:   out  = inp @ weight^T + bias      out (N,OC), inp (N,C),
 *                                                weight (OC,C), bias (OC)
 *   backward:  dinp    += dout @ weight          (N,C)  (or =, dinp_add 0)
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
 * the weights (and the bias) are rounded to a bfloat16 copy (the
 * instance's bf16 area, once per call), and cuBLAS multiplies on the bf16
 * tensor cores with fp32 accumulation, rounding the result to bfloat16 for
 * activations and keeping it fp32 for the weight gradients.
 *
 * The forward's bias: with fuse_bias (the default), cuBLASLt adds it in
 * the product's epilogue (out = W x + b in one pass over out, the bias in
 * fp32 before the output is rounded). The backward's bias gradient: the
 * weight gradient's product sums dout's columns as it reads them
 * (cuBLASLt's BGRADB epilogue), into working memory, since the epilogue
 * stores where the backend adds; one small kernel adds that to dbias.
 * Plans (descriptors and the algorithm cuBLASLt's heuristic picked) are
 * kept per product, shape and operand alignment. Where cuBLASLt has no
 * algorithm, or fuse_bias is off: a kernel first writes the bias into out
 * and cuBLAS's product adds to it (beta = 1), two more passes over out;
 * the bias gradient is a column sum of its own (two kernels reading dout).
 */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_device.cuh"

/* dst = src rounded to bfloat16 (to nearest, ties to even) */
__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n)
{
    CUDA_FOR(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

/* dst[0, nw) = bf16(w); dst[b_at, b_at + nb) = bf16(b): a weight and its
 * bias in one launch */
__global__ void to_bf16_pair_kernel(__nv_bfloat16 *dst, const float *w, size_t nw, size_t b_at, const float *b, size_t nb)
{
    CUDA_FOR(i, nw + nb) dst[i < nw ? i : b_at + (i - nw)] = __float2bfloat16_rn(i < nw ? w[i] : b[i - nw]);
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

/* p's n floats in the arena's bf16 copy (cuda.h), or NULL */
static const __nv_bfloat16 *shadow_at(const cuda_backend *be, const float *p, size_t n)
{
    if (!be->shadow_ok || p < be->shadow_of || p + n > be->shadow_of + be->shadow_n) return NULL;
    return (const __nv_bfloat16 *)be->shadow + (p - be->shadow_of);
}

/* A weight (OC*C floats) in bfloat16: its place in the arena's copy, or a
 * conversion into the bf16 area; NULL when out of memory. */
static const __nv_bfloat16 *weight_bf16(cuda_backend *be, const float *weight, size_t n)
{
    const __nv_bfloat16 *w16 = shadow_at(be, weight, n);
    if (w16) return w16;
    __nv_bfloat16 *h = bf16_area(be, n);
    return h ? to_bf16(be, h, weight, n) : NULL;
}

extern "C" void cuda_shadow_refresh(cuda_backend *be, const float *w, size_t n)
{
    const size_t bytes = n * sizeof(__nv_bfloat16);
    if (!n || be->shadow_off) return;
    int changed = !be->shadow_ok || be->shadow_of != w || be->shadow_n != n;
    if (bytes > be->shadow_bytes) { /* once: the arena keeps its size; kernels may still read the old copy */
        CUDA_OK(be, cudaStreamSynchronize(be->stream));
        if (be->shadow) cudaFree(be->shadow);
        be->shadow = NULL, be->shadow_bytes = 0, be->shadow_ok = 0, changed = 1;
        if (cudaMalloc(&be->shadow, bytes) != cudaSuccess) { /* no room: convert each call, as before */
            cudaGetLastError();
            be->shadow = NULL, be->shadow_off = 1;
            be->host->log(TFTX_LOG_DEBUG, "cuda backend: no room for the weights' bf16 copy (%zu MiB)", bytes >> 20);
            return;
        }
        be->shadow_bytes = bytes;
    }
    to_bf16(be, (__nv_bfloat16 *)be->shadow, w, n);
    be->shadow_ok = 1, be->shadow_of = w, be->shadow_n = n;
    if (changed) be->moves++; /* graphs recorded before read the weights elsewhere */
}

extern "C" void cuda_shadow_forget(cuda_backend *be, const void *dst, size_t bytes)
{
    const char *d = (const char *)dst, *lo = (const char *)be->shadow_of;
    if (!be->shadow_ok || d + bytes <= lo || d >= lo + be->shadow_n * sizeof(float)) return;
    be->shadow_ok = 0;
    be->moves++; /* graphs that read the copy convert the new weights instead */
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

/* ------------------------------------------------------------ cuBLASLt */

/* One product with an epilogue, for one shape and the alignments of its
 * pointers (cuBLASLt picks kernels that assume them):
 *   LT_BIAS   forward:  out^T (m = OC, n = N) = W (m, k = C) x^T + bias
 *   LT_GELU, LT_GELU_BIAS: the same (+ bias), then aux = that (the GELU's
 *             input, (N, OC) as out) and out = GELU(that), tanh form
 *   LT_BGRADB backward: dW^T (m = C, n = OC) += x^T (m, k = N) dout,
 *                       bgrad[j] = sum over k of dout[., j]
 *   LT_DGELU  backward: dinp^T (m = C, n = N) = W^T (m, k = OC) dout^T,
 *                       times GELU'(aux), aux the GELU's input (N, C)
 * ok = 0: cuBLASLt had no algorithm. */
enum { LT_BIAS, LT_BGRADB, LT_GELU, LT_GELU_BIAS, LT_DGELU };
typedef struct lt_plan {
    int kind, m, n, k, ok;
    unsigned align; /* log2 of the alignment of A, B, D, bias and aux, 4 bits each */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

/* Batches trimmed to their longest sequence make many shapes: past this
 * many, plans are replaced oldest first. */
#define LT_PLANS 256

struct cuda_lt {
    cublasLtHandle_t handle;
    int n, next; /* plans made; the one to replace next when full */
    lt_plan plan[LT_PLANS];
};

extern "C" int cuda_lt_create(cuda_backend *be)
{
    struct cuda_lt *lt = (struct cuda_lt *)calloc(1, sizeof *lt);
    cublasStatus_t st = lt ? cublasLtCreate(&lt->handle) : CUBLAS_STATUS_ALLOC_FAILED;
    if (st != CUBLAS_STATUS_SUCCESS) {
        be->host->log(TFTX_LOG_WARN, "cuda backend: no cuBLASLt (%s): biases take a kernel of their own",
                      cublasGetStatusString(st));
        free(lt);
        return 0;
    }
    be->lt = lt;
    return 1;
}

static void plan_release(lt_plan *p)
{
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->d) cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

extern "C" void cuda_lt_destroy(cuda_backend *be)
{
    if (!be->lt) return;
    for (int i = 0; i < be->lt->n; i++) plan_release(&be->lt->plan[i]);
    cublasLtDestroy(be->lt->handle);
    free(be->lt);
    be->lt = NULL;
}

/* log2 of the largest power of two (up to 256) dividing the address */
static unsigned align_log2(const void *p)
{
    uintptr_t u = (uintptr_t)p;
    unsigned l = 0;
    while (l < 8 && !(u & ((uintptr_t)1 << l))) l++;
    return l;
}

static int lt_aux(int kind)
{
    return kind == LT_GELU || kind == LT_GELU_BIAS || kind == LT_DGELU;
}

/* Descriptors and the heuristic's algorithm for plan p (its key set). */
static void plan_make(cuda_backend *be, lt_plan *p, const void *bias, const void *aux)
{
    static const int32_t EPI[] = {CUBLASLT_EPILOGUE_BIAS, CUBLASLT_EPILOGUE_BGRADB, CUBLASLT_EPILOGUE_GELU_AUX,
                                  CUBLASLT_EPILOGUE_GELU_AUX_BIAS, CUBLASLT_EPILOGUE_DGELU};
    static const char *const WHAT[] = {"bias", "bias gradient", "GELU", "bias and GELU", "GELU gradient"};
    const cudaDataType t = be->act16 ? CUDA_R_16BF : CUDA_R_32F;
    const cudaDataType dt = p->kind == LT_BGRADB ? CUDA_R_32F : t; /* weight gradients are fp32 */
    const int32_t aux_type = (int32_t)t;                           /* the GELU's input is an activation */
    const int64_t aux_ld = p->m;
    const cublasComputeType_t ct = be->act16 ? CUBLAS_COMPUTE_32F : cuda_compute_type(be);
    const int fwd = p->kind != LT_BGRADB && p->kind != LT_DGELU;
    const int32_t ta = fwd ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p->kind == LT_BGRADB ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int32_t epi = EPI[p->kind];
    /* A and B as they lie (column-major views of the row-major tensors) */
    const uint64_t a_rows = ta == CUBLAS_OP_N ? p->m : p->k, a_cols = ta == CUBLAS_OP_N ? p->k : p->m;
    const uint64_t b_rows = tb == CUBLAS_OP_N ? p->k : p->n, b_cols = tb == CUBLAS_OP_N ? p->n : p->k;
    const uint64_t ws = CUDA_BLAS_WORKSPACE;
    cublasLtMatmulPreference_t pref = NULL;
    int ok =
        cublasLtMatmulDescCreate(&p->op, ct, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == 0 &&
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == 0 &&
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == 0 &&
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) == 0 &&
        (!lt_aux(p->kind) ||
         (cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux) == 0 &&
          cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld) == 0 &&
          cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &aux_type,
                                         sizeof aux_type) == 0)) &&
        cublasLtMatrixLayoutCreate(&p->a, t, a_rows, a_cols, (int64_t)a_rows) == 0 &&
        cublasLtMatrixLayoutCreate(&p->b, t, b_rows, b_cols, (int64_t)b_rows) == 0 &&
        cublasLtMatrixLayoutCreate(&p->d, dt, (uint64_t)p->m, (uint64_t)p->n, p->m) == 0 &&
        cublasLtMatmulPreferenceCreate(&pref) == 0 &&
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) == 0;
    static const cublasLtMatmulPreferenceAttributes_t ALIGN[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; ok && i < 4; i++) { /* C is D */
        const uint32_t bytes = 1u << ((p->align >> (4 * (i < 3 ? i : 2))) & 15u);
        ok = cublasLtMatmulPreferenceSetAttribute(pref, ALIGN[i], &bytes, sizeof bytes) == 0;
    }
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    ok = ok && cublasLtMatmulAlgoGetHeuristic(be->lt->handle, p->op, p->a, p->b, p->d, p->d, pref, 1, &res, &found) ==
                   CUBLAS_STATUS_SUCCESS &&
         found > 0 && res.workspaceSize <= CUDA_BLAS_WORKSPACE;
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ok) p->algo = res.algo;
    p->ok = ok;
    if (!ok)
        be->host->log(TFTX_LOG_DEBUG, "cuda backend: no cuBLASLt %s epilogue for %d x %d x %d: a kernel of its own",
                      WHAT[p->kind], p->m, p->n, p->k);
}

/* The plan for this product (made on first sight), or NULL when cuBLASLt
 * has no algorithm for it. */
static lt_plan *lt_plan_of(cuda_backend *be, int kind, int m, int n, int k, const void *A, const void *B, const void *D,
                           const void *bias, const void *aux = NULL)
{
    struct cuda_lt *lt = be->lt;
    if (!lt) return NULL;
    const unsigned align =
        align_log2(A) | align_log2(B) << 4 | align_log2(D) << 8 | align_log2(bias) << 12 | align_log2(aux) << 16;
    lt_plan *p = NULL;
    for (int i = 0; i < lt->n && !p; i++) {
        lt_plan *q = &lt->plan[i];
        if (q->kind == kind && q->m == m && q->n == n && q->k == k && q->align == align) p = q;
    }
    if (!p) {
        if (lt->n < LT_PLANS) {
            p = &lt->plan[lt->n++];
        } else {
            p = &lt->plan[lt->next];
            lt->next = (lt->next + 1) % LT_PLANS;
            plan_release(p);
        }
        p->kind = kind, p->m = m, p->n = n, p->k = k, p->align = align;
        plan_make(be, p, bias, aux);
    }
    return p->ok ? p : NULL;
}

/* D (m, n) (+)= op(A) op(B) with plan p's epilogue (see lt_plan); 0 when
 * cuBLASLt refuses it after all (the plan is off from then on, and the
 * caller does it another way). beta: 0 or 1. */
static int lt_run(cuda_backend *be, lt_plan *p, const void *A, const void *B, void *D, const void *bias, float beta,
                  const void *aux = NULL)
{
    const float one = 1.0f;
    cublasStatus_t st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (st == CUBLAS_STATUS_SUCCESS && lt_aux(p->kind))
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmul(be->lt->handle, p->op, &one, A, p->a, B, p->b, &beta, D, p->d, D, p->d, &p->algo,
                            be->blas_work, CUDA_BLAS_WORKSPACE, be->stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
        be->host->log(TFTX_LOG_DEBUG, "cuda backend: cuBLASLt refused a %d x %d x %d product (%s): a kernel of its own",
                      p->m, p->n, p->k, cublasGetStatusString(st));
        p->ok = 0;
        return 0;
    }
    return 1;
}

/* out^T (OC, N) = W x^T + bias through cuBLASLt, with kind's epilogue
 * (LT_BIAS; LT_GELU(_BIAS): aux takes the GELU's input); 0 when it has no
 * plan for it (the caller does it another way). At bf16 the weight and
 * the bias go through bfloat16 copies, made only when there is a plan. */
static int lt_forward(cuda_backend *be, int kind, float *out, float *aux, const float *inp, const float *weight,
                      const float *bias, int N, int C, int OC)
{
    if (!be->act16) {
        lt_plan *p = lt_plan_of(be, kind, OC, N, C, weight, inp, out, bias, aux);
        return p && lt_run(be, p, weight, inp, out, bias, 0.0f, aux);
    }
    const size_t nw = (size_t)OC * C, b_at = (nw + 7) / 8 * 8; /* the bias 16-byte aligned */
    const __nv_bfloat16 *w16 = shadow_at(be, weight, nw), *b16 = bias ? shadow_at(be, bias, (size_t)OC) : NULL;
    if (w16 && (b16 || !bias)) { /* in the arena's copy */
        lt_plan *p = lt_plan_of(be, kind, OC, N, C, w16, inp, out, b16, aux);
        if (p) return lt_run(be, p, w16, inp, out, b16, 0.0f, aux);
    }
    const size_t nb = bias ? (size_t)OC : 0;
    __nv_bfloat16 *h = bf16_area(be, b_at + nb), *hb = h && bias ? h + b_at : NULL;
    lt_plan *p = h ? lt_plan_of(be, kind, OC, N, C, h, inp, out, hb, aux) : NULL;
    if (!p) return 0;
    TFTX_CUDA_LAUNCH(cuda_blocks(nw + nb), CUDA_THREADS, be->stream, to_bf16_pair_kernel)
    (h, weight, nw, b_at, bias, nb);
    CUDA_LAUNCHED(be);
    return lt_run(be, p, h, inp, out, hb, 0.0f, aux);
}

/* dinp^T (C, N) = (W^T dout^T) * GELU'(pre) through cuBLASLt (written); 0
 * when it has no plan for it. */
static int lt_dgelu(cuda_backend *be, float *dinp, const float *dout, const float *weight, const float *pre, int N,
                    int C, int OC)
{
    const void *w = weight;
    if (be->act16 && !(w = weight_bf16(be, weight, (size_t)OC * C))) return 0;
    lt_plan *p = lt_plan_of(be, LT_DGELU, C, N, OC, w, dout, dinp, NULL, pre);
    return p && lt_run(be, p, w, dout, dinp, NULL, 0.0f, pre);
}

__global__ void add_kernel(float *y, const float *x, int n)
{
    CUDA_FOR(i, (size_t)n) y[i] += x[i];
}

/* dweight (+)= dout^T inp and dbias (+)= sum_n dout in one product:
 * written (add = 0), the epilogue stores the column sums into dbias;
 * added, or where cuBLASLt has no algorithm for dbias's alignment, into
 * working memory, then added (or copied). 0 when cuBLASLt has no
 * algorithm for it. */
static int lt_weight_and_bias_backward(cuda_backend *be, float *dweight, float *dbias, const void *dout,
                                       const void *inp, int N, int C, int OC, int add)
{
    const float beta = add ? 1.0f : 0.0f;
    lt_plan *p = add ? NULL : lt_plan_of(be, LT_BGRADB, C, OC, N, inp, dout, dweight, dbias);
    if (p) return lt_run(be, p, inp, dout, dweight, dbias, beta);
    float *sums = (float *)cuda_work(be, (size_t)OC * sizeof(float));
    p = sums ? lt_plan_of(be, LT_BGRADB, C, OC, N, inp, dout, dweight, sums) : NULL;
    if (!p || !lt_run(be, p, inp, dout, dweight, sums, beta)) return 0;
    if (add) {
        TFTX_CUDA_LAUNCH(cuda_blocks((size_t)OC), CUDA_THREADS, be->stream, add_kernel)(dbias, sums, OC);
        CUDA_LAUNCHED(be);
    } else {
        CUDA_OK(be, cudaMemcpyAsync(dbias, sums, (size_t)OC * sizeof(float), cudaMemcpyDeviceToDevice, be->stream));
    }
    return 1;
}

extern "C" {

void cuda_matmul_forward(void *self, float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                         int OC)
{
    cuda_backend *be = cuda_of(self);
    if (N <= 0 || OC <= 0) return;
    size_t n = (size_t)N * OC;
    float beta = 0.0f, one = 1.0f;
    if (bias && C > 0 && be->fuse_bias && lt_forward(be, LT_BIAS, out, NULL, inp, weight, bias, N, C, OC)) return;
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
        const __nv_bfloat16 *w16 = weight_bf16(be, weight, (size_t)OC * C);
        if (w16)
            gemm_bf16(be, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, w16, C, (const bf16 *)inp, C, &beta, out, 1, OC);
        return;
    }
    gemm(be, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, weight, C, inp, C, &beta, out, OC);
}

void cuda_matmul_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC, int dinp_add, int dparam_add)
{
    cuda_backend *be = cuda_of(self);
    if (C < 0 || OC < 0) return;
    if (N <= 0 || OC == 0) { /* an empty product: what is written is 0 */
        if (dinp && !dinp_add && N > 0 && C > 0)
            CUDA_OK(be, cudaMemsetAsync(dinp, 0, (size_t)N * C * cuda_act_size(be), be->stream));
        if (dweight && !dparam_add && C > 0)
            CUDA_OK(be, cudaMemsetAsync(dweight, 0, (size_t)OC * C * sizeof(float), be->stream));
        if (dbias && !dparam_add && OC > 0) CUDA_OK(be, cudaMemsetAsync(dbias, 0, OC * sizeof(float), be->stream));
        return;
    }
    /* beta 0: cuBLAS reads nothing of what it writes */
    const float one = 1.0f, beta_in = dinp_add ? 1.0f : 0.0f, beta_w = dparam_add ? 1.0f : 0.0f;
    if (dbias && dweight && C > 0 && be->fuse_bias &&
        lt_weight_and_bias_backward(be, dweight, dbias, dout, inp, N, C, OC, dparam_add))
        dbias = dweight = NULL; /* done: the input gradient is left */
    if (dbias) ACT_CALL(be, colsum(be, dbias, NULL, col_of<A>{(const A *)dout, OC}, N, OC, dparam_add));
    if (C == 0) return;
    if (be->act16) {
        const bf16 *d16 = (const bf16 *)dout;
        if (dinp) {
            const __nv_bfloat16 *w16 = weight_bf16(be, weight, (size_t)OC * C);
            if (!w16) return;
            gemm_bf16(be, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, w16, C, d16, OC, &beta_in, dinp, 1, C);
        }
        if (dweight)
            gemm_bf16(be, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, (const bf16 *)inp, C, d16, OC, &beta_w, dweight, 0,
                      C);
        return;
    }
    if (dinp) gemm(be, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, weight, C, dout, OC, &beta_in, dinp, C);
    if (dweight) gemm(be, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC, &beta_w, dweight, C);
}

/* The GELU (tanh form) in the products' epilogues where cuBLASLt has
 * them (fuse_bias), at precision tf32 and bf16; else, and for the other
 * activations, the two calls. cuBLASLt's GELU is an approximation of its
 * own: on an H100 its gradients were up to 0.6% off the cpu's at a few
 * elements (5 of 1480), beyond fp32's tolerance in test_cuda_kernels and
 * within what tf32's and bf16's rounded product inputs already carry. */
static int gelu_in_epilogue(const cuda_backend *be, tftx_activation act)
{
    return act == TFTX_ACT_GELU_TANH && be->fuse_bias && be->precision != CUDA_FP32;
}

void cuda_matmul_act_forward(void *self, float *out, float *pre, const float *inp, const float *weight,
                             const float *bias, int N, int C, int OC, tftx_activation act)
{
    cuda_backend *be = cuda_of(self);
    if (N <= 0 || OC <= 0) return;
    if (gelu_in_epilogue(be, act) && C > 0 &&
        lt_forward(be, bias ? LT_GELU_BIAS : LT_GELU, out, pre, inp, weight, bias, N, C, OC))
        return;
    cuda_matmul_forward(self, pre, inp, weight, bias, N, C, OC);
    cuda_activation_forward(self, out, pre, (size_t)N * OC, act);
}

void cuda_matmul_backward_act(void *self, float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *pre, int N, int C, int OC,
                              tftx_activation act, int dparam_add)
{
    cuda_backend *be = cuda_of(self);
    if (gelu_in_epilogue(be, act) && dinp && N > 0 && C > 0 && OC > 0) {
        cuda_matmul_backward(self, NULL, dweight, dbias, dout, inp, weight, N, C, OC, 0, dparam_add);
        if (lt_dgelu(be, dinp, dout, weight, pre, N, C, OC)) return;
        dweight = dbias = NULL; /* done: the input gradient is left */
    }
    /* the product's input gradient, then the activation's, in place */
    cuda_matmul_backward(self, dinp, dweight, dbias, dout, inp, weight, N, C, OC, 0, dparam_add);
    if (dinp && N > 0 && C > 0) cuda_activation_backward(self, dinp, dinp, pre, (size_t)N * C, act, 0);
}

} /* extern "C" */
