/*
 * cuda_attention.cu -- multi-head scaled dot-product attention with padding
 * and causal masks and dropout on the probabilities (the math of the cpu
 * backend, cpu_attention.c):
 *
 *   S  = Q K^T / sqrt(HS);  S[t,s] = -inf where key s is padding or, when
 *        causal, s > t;  P = softmax(S) by rows (a row with no visible key
 *        is all zeros);  Pd = P * M/(1-p) with M[t,s] = 1 when
 *        uniform(seed, stream, ((b*NH + h)*T + t)*T + s) >= p;  O = Pd V.
 *   backward: dV += Pd^T dO;  dPd = dO V^T;  dP = dPd * M/(1-p);
 *             dS = P * (dP - rowsum(P*dP));  dQ += dS K / sqrt(HS);
 *             dK += dS^T Q / sqrt(HS).
 *
 * Products are one batched cuBLAS call each over every (sequence b, head
 * h), with pointer arrays (one small kernel fills them): head h of q, k, v
 * is the column block h*HS of the packed rows (stride 3C), so consecutive
 * heads are HS floats apart, sequences T*3C apart, and consecutive (T,T)
 * blocks of att T*T apart. As in cuda_matmul.cu each
 * row-major product is done as its column-major transpose:
 *   S^T  = K . Q^T          (T,T)   K^T lies there -> op T
 *   O^T  = V^T . Pd^T       (HS,T)  both as they lie
 *   dV^T += dO^T . Pd       (HS,T)  Pd^T lies there -> op T
 *   dPd^T = V . dO^T        (T,T)   V^T lies there -> op T
 *   dQ^T += K^T . dS^T      (HS,T)  both as they lie
 *   dK^T += Q^T . dS        (HS,T)  dS^T lies there -> op T
 * The full T x T square is computed even when causal (hidden entries get
 * P = 0 from the softmax); skipping the upper triangle is a speed-up left
 * for later. With dropout the forward needs Pd somewhere: the instance's
 * working memory (B*NH*T*T floats); backward builds it in `scratch`.
 *
 * With attention = "fused" (and a head size of 32 or 64), the kernels of
 * cuda_flash.cuh do it all instead, on tf32 products (bf16 ones at
 * precision bf16): `att` keeps each row's log-sum-exp and a copy of the
 * output, `scratch` the backward's row sums.
 */
#include "cuda_device.cuh"
#include "cuda_flash.cuh"

/* One warp per row r = (b*NH + h)*T + t of att, in place: masked softmax;
 * with pd, also pd = P * M/(1-p) (the dropped probabilities, same pass). */
__global__ void attention_softmax_kernel(float *att, const uint8_t *mask, int causal, int NH, int T, size_t rows,
                                         float *pd, tftx_dropout drop, float keep_scale)
{
    size_t r = blockIdx.x * (size_t)CUDA_ROWS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const uint64_t stream = pd ? TFTX_DROPOUT_STREAM(drop) : 0;
    const int t = (int)(r % T), b = (int)(r / ((size_t)NH * T));
    const int lim = causal ? t + 1 : T;
    const uint8_t *m = mask ? mask + (size_t)b * T : NULL;
    float *row = att + r * T;
    /* the maximum is subtracted before exp: every exponent <= 0, the
       largest term is 1, so the sum is >= 1 */
    float mx = -INFINITY;
    for (int s = lane; s < lim; s += 32)
        if (!m || m[s]) mx = fmaxf(mx, row[s]);
    mx = warp_max(mx);
    float *pdrow = pd ? pd + r * T : NULL;
    if (mx == -INFINITY) { /* no visible key */
        for (int s = lane; s < T; s += 32) {
            row[s] = 0.0f;
            if (pdrow) pdrow[s] = 0.0f;
        }
        return;
    }
    float sum = 0.0f;
    for (int s = lane; s < lim; s += 32) {
        float e = (!m || m[s]) ? expf(row[s] - mx) : 0.0f;
        row[s] = e;
        sum += e;
    }
    const float inv = 1.0f / warp_sum(sum);
    __syncwarp(); /* the lanes' exponentials, read by others below */
    drop_for((size_t)T, r * T, lane, 32, drop, stream, keep_scale, pdrow != NULL, [&](size_t s, float f) {
        const float P = (int)s < lim ? row[s] * inv : 0.0f;
        row[s] = P;
        if (pdrow) pdrow[s] = P * f;
    });
}

/* One warp per row r, in place on d (dPd on entry, dS on return):
 * dP = dPd * M/(1-p), dS = P * (dP - sum_s P*dP). */
__global__ void attention_softmax_backward_kernel(float *d, const float *att, int T, size_t rows, tftx_dropout drop,
                                                  float scale, int dropping)
{
    size_t r = blockIdx.x * (size_t)CUDA_ROWS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    float *row = d + r * T;
    const float *p = att + r * T;
    const uint64_t stream = dropping ? TFTX_DROPOUT_STREAM(drop) : 0;
    float dot = 0.0f;
    drop_for((size_t)T, r * T, lane, 32, drop, stream, scale, dropping, [&](size_t s, float f) {
        const float dp = row[s] * f;
        row[s] = dp;
        dot += p[s] * dp;
    });
    dot = warp_sum(dot);
    __syncwarp(); /* row's dP, written by other lanes */
    for (int s = lane; s < T; s += 32) row[s] = p[s] * (row[s] - dot);
}

/* pd[i] = att[i] * M[i]/(1-p), i over the whole (B,NH,T,T) array */
__global__ void attention_dropout_kernel(float *pd, const float *att, size_t n, tftx_dropout drop, float scale)
{
    const uint64_t stream = TFTX_DROPOUT_STREAM(drop);
    drop_vec_for<float>(
        n, vec_aligned(pd) && vec_aligned(att), 0, DROP_GRID_FIRST, DROP_GRID_STEP, drop, stream, scale, 1,
        [&](size_t i, const float *f) {
            float x[4];
            ld_vec(att, i, x);
            CUDA_UNROLL
            for (int k = 0; k < 4; k++) x[k] *= f[k];
            st_vec(pd, i, x);
        },
        [&](size_t i, float f) { pd[i] = att[i] * f; });
}

/* Operand pointers of every (sequence b, head h) product, for the batched
 * cuBLAS calls: arrays j = 0..n-1 of B*NH pointers each,
 * ptr[j][b*NH + h] = base[j] + b*sb[j] + h*sh[j]. One launch fills all. */
#define ATT_MAX_ARRAYS 12
struct att_operands {
    const float *base[ATT_MAX_ARRAYS];
    long long sb[ATT_MAX_ARRAYS], sh[ATT_MAX_ARRAYS];
    int n;
};

__global__ void attention_pointers_kernel(const float **ptrs, att_operands ops, int NH, int count)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    const int b = i / NH, h = i % NH;
    for (int j = 0; j < ops.n; j++) ptrs[(size_t)j * count + i] = ops.base[j] + b * ops.sb[j] + h * ops.sh[j];
}

/* The pointer arrays of `ops` in device memory (the instance's pointer
 * area), or NULL when out of memory. */
static const float **attention_pointers(cuda_backend *be, const att_operands &ops, int B, int NH)
{
    const int count = B * NH;
    const size_t bytes = (size_t)ops.n * count * sizeof(float *);
    const float **ptrs =
        (const float **)cuda_grow(be, &be->ptrs, &be->ptrs_bytes, bytes, "cudaMalloc of attention pointers");
    if (!ptrs) return NULL;
    TFTX_CUDA_LAUNCH((count + 127) / 128, 128, be->stream, attention_pointers_kernel)(ptrs, ops, NH, count);
    CUDA_LAUNCHED(be);
    return ptrs;
}

/* One batched product over every (b, h): arrays a, b, c of ptrs. */
static void batched(cuda_backend *be, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const float *alpha, const float **ptrs, int ia, int lda, int ib, int ldb, const float *beta, int ic,
                    int ldc, int count)
{
    const void *const *A = (const void *const *)(ptrs + (size_t)ia * count);
    const void *const *B = (const void *const *)(ptrs + (size_t)ib * count);
    void *const *C = (void *const *)(ptrs + (size_t)ic * count);
    CUBLAS_OK(be, cublasGemmBatchedEx(be->blas, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C,
                                      CUDA_R_32F, ldc, count, cuda_compute_type(be), CUBLAS_GEMM_DEFAULT));
}

/* The fused kernels apply: asked for, a head size they are built for, a
 * grid they fit, and room in `att` (B*NH*T*T floats when the model does
 * not ask attention_sizes) for the log-sum-exps (B*NH*T), the copy of the
 * output (B*T*C) and the keep bits (B*NH*T*FL_WORDS(T)), which needs
 * NH*T >= NH + C + NH*FL_WORDS(T). */
static int fused(const cuda_backend *be, int B, int T, int C, int NH)
{
    const int HS = C / NH;
    return be->fused_attention && C % NH == 0 && (HS == 32 || HS == 64) && (long long)B * NH <= 65535 &&
           (long long)NH * T >= (long long)NH + C + (long long)NH * FL_WORDS(T);
}

/* Where the fused kernels' record lies in att: log-sum-exps, the output's
 * copy, the keep bits. */
struct fused_record {
    float *lse, *ocopy;
    uint32_t *bits;
};
static fused_record record_of(const float *att, int B, int T, int C, int NH)
{
    const size_t rows = (size_t)B * NH * T;
    float *a = (float *)att;
    return {a, a + rows, (uint32_t *)(a + rows + (size_t)B * T * C)};
}

/* The fused kernels read rows of qkv and dout 16 bytes at a time: from a
 * 16-byte aligned start (the backend's allocations are 256-byte aligned,
 * the transformer's activation slots 64). Else the instance fails, with
 * the reason logged. */
static int fused_aligned(cuda_backend *be, const float *qkv, const float *dout)
{
    return cuda_report(be, ((uintptr_t)qkv | (uintptr_t)dout) % 16 == 0, "fused attention",
                       "qkv or dout is not 16-byte aligned", __FILE__, __LINE__);
}

/* The fused kernels read and write activations of type A (bfloat16 at
 * precision bf16) where they lie; their own record (att) is float. */
template <int HS, class P, class A>
static void fused_forward(cuda_backend *be, float *out, float *att, const float *qkv, const uint8_t *mask, int causal,
                          int B, int T, int C, int NH, tftx_dropout drop)
{
    if (!fused_aligned(be, qkv, qkv)) return;
    const dim3 grid((unsigned)((T + FL_ROWS - 1) / FL_ROWS), (unsigned)(B * NH));
    const fused_record r = record_of(att, B, T, C, NH);
    TFTX_CUDA_LAUNCH(grid, FL_THREADS, be->stream, flash_forward_kernel<HS, P, A>)
    ((A *)out, r.lse, r.ocopy, r.bits, (const A *)qkv, mask, causal, T, C, NH, drop, cuda_dropout_scale(drop.p),
     1.0f / sqrtf((float)HS));
    CUDA_LAUNCHED(be);
}

template <int HS, class P, class A>
static void fused_backward(cuda_backend *be, float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, const uint8_t *mask, int causal, int B, int T, int C, int NH,
                           tftx_dropout drop, int add)
{
    if (!fused_aligned(be, qkv, dout)) return;
    const size_t rows = (size_t)B * NH * T;
    const fused_record r = record_of(att, B, T, C, NH);
    const float keep = cuda_dropout_scale(drop.p), scale = 1.0f / sqrtf((float)HS);
    float *delta = scratch;
    TFTX_CUDA_LAUNCH((unsigned)((rows + FL_WARPS - 1) / FL_WARPS), FL_THREADS, be->stream, flash_delta_kernel<A>)
    (delta, (const A *)dout, r.ocopy, rows, T, C, NH, HS);
    CUDA_LAUNCHED(be);
    const dim3 grid((unsigned)((T + FL_ROWS - 1) / FL_ROWS), (unsigned)(B * NH));
    TFTX_CUDA_LAUNCH(grid, FL_THREADS, be->stream, flash_backward_kv_kernel<HS, P, A>)
    ((A *)dqkv, (const A *)dout, (const A *)qkv, r.lse, delta, r.bits, mask, causal, T, C, NH, drop, keep, scale, add);
    CUDA_LAUNCHED(be);
    TFTX_CUDA_LAUNCH(grid, FL_THREADS, be->stream, flash_backward_q_kernel<HS, P, A>)
    ((A *)dqkv, (const A *)dout, (const A *)qkv, r.lse, delta, r.bits, mask, causal, T, C, NH, drop, keep, scale, add);
    CUDA_LAUNCHED(be);
}

/* The fused kernels for the head size and the precision: bf16 products on
 * bfloat16 activations at precision bf16, tf32 on float ones otherwise. */
struct fused_kernels {
    void (*forward)(cuda_backend *, float *, float *, const float *, const uint8_t *, int, int, int, int, int,
                    tftx_dropout);
    void (*backward)(cuda_backend *, float *, float *, const float *, const float *, const float *, const uint8_t *,
                     int, int, int, int, int, tftx_dropout, int);
};

template <int HS, class P, class A> static fused_kernels kernels_of()
{
    return {fused_forward<HS, P, A>, fused_backward<HS, P, A>};
}

static fused_kernels pick(const cuda_backend *be, int HS)
{
    if (be->act16)
        return HS == 32 ? kernels_of<32, fl_bf16_mma, bf16>() : kernels_of<64, fl_bf16_mma, bf16>();
    return HS == 32 ? kernels_of<32, fl_tf32_mma, float>() : kernels_of<64, fl_tf32_mma, float>();
}

extern "C" {

void cuda_attention_sizes(void *self, int B, int T, int C, int NH, size_t *att, size_t *scratch)
{
    const cuda_backend *be = cuda_of(self);
    const size_t full = (size_t)B * NH * T * T;
    *att = *scratch = full;
    if (!fused(be, B, T, C, NH)) {
        if (be->fused_attention && be->host)
            be->host->log(TFTX_LOG_WARN,
                          "cuda backend: attention = \"fused\" does not apply to %d heads of size %d over %d tokens "
                          "(it takes head sizes 32 and 64, sequences of more than head size + 1 + tokens/32 "
                          "tokens, at most 65535 sequence-heads a batch): attention uses cuBLAS",
                          NH, NH ? C / NH : 0, T);
        return;
    }
    /* fused at these sizes: log-sum-exps, the output's copy and the keep
       bits (record_of), row sums;
       shorter sequences where the fused kernels do not apply (T at most
       the head size) take the cublas path, whose probabilities then fit
       in (B, NH, HS, HS) */
    const size_t HS = (size_t)(C / NH), t = (size_t)T < HS ? (size_t)T : HS, small = (size_t)B * NH * t * t;
    const size_t a = (size_t)B * NH * T * (1 + FL_WORDS(T)) + (size_t)B * T * C, s = (size_t)B * NH * T;
    *att = a > small ? a : small;
    *scratch = s > small ? s : small;
}

} /* extern "C" */

/* Attention through cuBLAS on float activations (the entry points below
 * convert bfloat16 ones). */
static void attention_forward32(cuda_backend *be, float *out, float *att, const float *qkv, const uint8_t *mask,
                                int causal, int B, int T, int C, int NH, tftx_dropout drop)
{
    const int HS = C / NH, C3 = 3 * C;
    const long long TT = (long long)T * T;
    const float qk_scale = 1.0f / sqrtf((float)HS), one = 1.0f, zero = 0.0f;
    const size_t rows = (size_t)B * NH * T, n = rows * T;

    const int count = B * NH;
    const long long sq = (long long)T * C3, so = (long long)T * C, sa = (long long)NH * TT;
    float *work = NULL;
    if (drop.p > 0.0f && !(work = (float *)cuda_work(be, n * sizeof(float)))) return;
    const float *pd = work ? work : att; /* what multiplies V */
    /* arrays: 0 q, 1 k, 2 v, 3 att, 4 out, 5 pd */
    att_operands ops = {
        {qkv, qkv + C, qkv + 2 * C, att, out, pd}, {sq, sq, sq, sa, so, sa}, {HS, HS, HS, TT, HS, TT}, 6};
    const float **ptrs = attention_pointers(be, ops, B, NH);
    if (!ptrs) return;

    /* S^T = K . Q^T / sqrt(HS) for every (b, h) */
    batched(be, CUBLAS_OP_T, CUBLAS_OP_N, T, T, HS, &qk_scale, ptrs, 1, C3, 0, C3, &zero, 3, T, count);
    TFTX_CUDA_LAUNCH(cuda_row_blocks(rows), CUDA_ROWS_PER_BLOCK * 32, be->stream, attention_softmax_kernel)
    (att, mask, causal, NH, T, rows, work, drop, cuda_dropout_scale(drop.p));
    CUDA_LAUNCHED(be);
    /* O^T = V^T . Pd^T into the head's columns of out (row stride C) */
    batched(be, CUBLAS_OP_N, CUBLAS_OP_N, HS, T, T, &one, ptrs, 2, C3, 5, T, &zero, 4, C, count);
}

static void attention_backward32(cuda_backend *be, float *dqkv, float *scratch, const float *dout, const float *qkv,
                                 const float *att, const uint8_t *mask, int causal, int B, int T, int C, int NH,
                                 tftx_dropout drop, int add)
{
    (void)mask, (void)causal; /* hidden entries have P = 0: see the top */
    const int HS = C / NH, C3 = 3 * C;
    const long long TT = (long long)T * T;
    const float qk_scale = 1.0f / sqrtf((float)HS), one = 1.0f, zero = 0.0f;
    const float beta = add ? 1.0f : 0.0f; /* d(qkv): added to, or written (beta 0 reads nothing) */
    const size_t rows = (size_t)B * NH * T, n = rows * T;
    const int dropping = drop.p > 0.0f;
    const float keep_scale = cuda_dropout_scale(drop.p);

    const int count = B * NH;
    const long long sq = (long long)T * C3, so = (long long)T * C, sa = (long long)NH * TT;
    /* arrays: 0 q, 1 k, 2 v, 3 dq, 4 dk, 5 dv, 6 dout, 7 att or Pd, 8 scratch (dPd, then dS) */
    att_operands ops = {
        {qkv, qkv + C, qkv + 2 * C, dqkv, dqkv + C, dqkv + 2 * C, dout, dropping ? scratch : att, scratch},
        {sq, sq, sq, sq, sq, sq, so, sa, sa},
        {HS, HS, HS, HS, HS, HS, HS, TT, TT},
        9};
    const float **ptrs = attention_pointers(be, ops, B, NH);
    if (!ptrs) return;

    /* dV^T += dO^T . Pd, with Pd in scratch when dropping */
    if (dropping) {
        TFTX_CUDA_LAUNCH(cuda_blocks((n + 3) / 4), CUDA_THREADS, be->stream, attention_dropout_kernel)
        (scratch, att, n, drop, keep_scale);
        CUDA_LAUNCHED(be);
    }
    batched(be, CUBLAS_OP_N, CUBLAS_OP_T, HS, T, T, &one, ptrs, 6, C, 7, T, &beta, 5, C3, count);
    /* dPd^T = V . dO^T into scratch (after the dV products read Pd there) */
    batched(be, CUBLAS_OP_T, CUBLAS_OP_N, T, T, HS, &one, ptrs, 2, C3, 6, C, &zero, 8, T, count);
    TFTX_CUDA_LAUNCH(cuda_row_blocks(rows), CUDA_ROWS_PER_BLOCK * 32, be->stream, attention_softmax_backward_kernel)
    (scratch, att, T, rows, drop, keep_scale, dropping);
    CUDA_LAUNCHED(be);
    /* dQ^T += K^T . dS^T / sqrt(HS) */
    batched(be, CUBLAS_OP_N, CUBLAS_OP_N, HS, T, T, &qk_scale, ptrs, 1, C3, 8, T, &beta, 3, C3, count);
    /* dK^T += Q^T . dS / sqrt(HS) */
    batched(be, CUBLAS_OP_N, CUBLAS_OP_T, HS, T, T, &qk_scale, ptrs, 0, C3, 8, T, &beta, 4, C3, count);
}

/* bfloat16 activations through cuBLAS: attention computes on float copies
 * of qkv (and of dout and d(qkv) backward), in the instance's attention
 * area; the output is rounded back, d(qkv) added back. Its own record
 * (att) is float. The fused kernels read bfloat16 where it lies. */
__global__ void bf16_to_f32_kernel(float *dst, const bf16 *src, size_t n)
{
    CUDA_FOR(i, n) dst[i] = ld(src, i);
}

__global__ void f32_to_bf16_kernel(bf16 *dst, const float *src, size_t n, int add)
{
    CUDA_FOR(i, n) st(dst, i, add ? ld(dst, i) + src[i] : src[i]);
}

static float *attention_area(cuda_backend *be, size_t floats)
{
    return (float *)cuda_grow(be, &be->att32, &be->att32_bytes, floats * sizeof(float),
                              "cudaMalloc of attention's float copies");
}

static void widen(cuda_backend *be, float *dst, const float *src, size_t n)
{
    TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, bf16_to_f32_kernel)(dst, (const bf16 *)src, n);
    CUDA_LAUNCHED(be);
}

static void narrow(cuda_backend *be, float *dst, const float *src, size_t n, int add)
{
    TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, f32_to_bf16_kernel)((bf16 *)dst, src, n, add);
    CUDA_LAUNCHED(be);
}

extern "C" {

void cuda_attention_forward(void *self, float *out, float *att, const float *qkv, const uint8_t *mask, int causal,
                            int B, int T, int C, int NH, tftx_dropout drop)
{
    cuda_backend *be = cuda_of(self);
    if (B <= 0 || T <= 0 || C <= 0 || NH <= 0) return;
    if (fused(be, B, T, C, NH)) {
        pick(be, C / NH).forward(be, out, att, qkv, mask, causal, B, T, C, NH, drop);
        return;
    }
    if (!be->act16) {
        attention_forward32(be, out, att, qkv, mask, causal, B, T, C, NH, drop);
        return;
    }
    const size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *w = attention_area(be, nq + no);
    if (!w) return;
    widen(be, w, qkv, nq);
    attention_forward32(be, w + nq, att, w, mask, causal, B, T, C, NH, drop);
    narrow(be, out, w + nq, no, 0);
}

void cuda_attention_backward(void *self, float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, const uint8_t *mask, int causal, int B, int T, int C, int NH,
                             tftx_dropout drop, int dqkv_add)
{
    cuda_backend *be = cuda_of(self);
    if (!dqkv || B <= 0 || T <= 0 || C <= 0 || NH <= 0) return;
    if (fused(be, B, T, C, NH)) {
        pick(be, C / NH).backward(be, dqkv, scratch, dout, qkv, att, mask, causal, B, T, C, NH, drop, dqkv_add);
        return;
    }
    if (!be->act16) {
        attention_backward32(be, dqkv, scratch, dout, qkv, att, mask, causal, B, T, C, NH, drop, dqkv_add);
        return;
    }
    const size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *w = attention_area(be, 2 * nq + no);
    if (!w) return;
    float *q32 = w, *d32 = w + nq, *dq32 = w + nq + no;
    widen(be, q32, qkv, nq);
    widen(be, d32, dout, no);
    attention_backward32(be, dq32, scratch, d32, q32, att, mask, causal, B, T, C, NH, drop, 0); /* written */
    narrow(be, dqkv, dq32, nq, dqkv_add);
}

} /* extern "C" */
