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
 * Products are cuBLAS strided-batched calls, one per sequence b, batched
 * over the NH heads: head h of q, k, v is the column block h*HS of the
 * packed rows (stride 3C), so consecutive heads are HS floats apart and
 * consecutive (T,T) blocks of att T*T apart. As in cuda_matmul.cu each
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
 */
#include "cuda_device.cuh"

/* One warp per row r = (b*NH + h)*T + t of att, in place: masked softmax. */
__global__ void attention_softmax_kernel(float *att, const uint8_t *mask, int causal, int NH, int T, size_t rows)
{
    size_t r = blockIdx.x * (size_t)CUDA_ROWS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
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
    if (mx == -INFINITY) { /* no visible key */
        for (int s = lane; s < T; s += 32) row[s] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int s = lane; s < lim; s += 32) {
        float e = (!m || m[s]) ? expf(row[s] - mx) : 0.0f;
        row[s] = e;
        sum += e;
    }
    const float inv = 1.0f / warp_sum(sum);
    for (int s = lane; s < T; s += 32) row[s] = s < lim ? row[s] * inv : 0.0f;
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
    float dot = 0.0f;
    for (int s = lane; s < T; s += 32) {
        float dp = row[s];
        if (dropping) dp *= dropout_factor(drop.seed, drop.stream, r * T + s, drop.p, scale);
        row[s] = dp;
        dot += p[s] * dp;
    }
    dot = warp_sum(dot);
    for (int s = lane; s < T; s += 32) row[s] = p[s] * (row[s] - dot);
}

/* pd[i] = att[i] * M[i]/(1-p), i over the whole (B,NH,T,T) array */
__global__ void attention_dropout_kernel(float *pd, const float *att, size_t n, tftx_dropout drop, float scale)
{
    CUDA_FOR(i, n) pd[i] = att[i] * dropout_factor(drop.seed, drop.stream, i, drop.p, scale);
}

extern "C" {

void cuda_attention_forward(void *self, float *out, float *att, const float *qkv, const uint8_t *mask, int causal,
                            int B, int T, int C, int NH, tftx_dropout drop)
{
    cuda_backend *be = cuda_of(self);
    if (B <= 0 || T <= 0 || C <= 0 || NH <= 0) return;
    const int HS = C / NH, C3 = 3 * C;
    const long long TT = (long long)T * T;
    const float qk_scale = 1.0f / sqrtf((float)HS), one = 1.0f, zero = 0.0f;
    const size_t rows = (size_t)B * NH * T, n = rows * T;

    /* S^T = K . Q^T / sqrt(HS) for every head of sequence b */
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * C3, *k = q + C;
        CUBLAS_OK(be, cublasSgemmStridedBatched(be->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, HS, &qk_scale, k, C3, HS,
                                                q, C3, HS, &zero, att + (size_t)b * NH * TT, T, TT, NH));
    }
    attention_softmax_kernel<<<cuda_row_blocks(rows), CUDA_ROWS_PER_BLOCK * 32, 0, be->stream>>>(att, mask, causal, NH,
                                                                                               T, rows);
    CUDA_LAUNCHED(be);

    const float *pd = att;
    if (drop.p > 0.0f) {
        float *work = (float *)cuda_work(be, n * sizeof(float));
        if (!work) return;
        attention_dropout_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, be->stream>>>(work, att, n, drop,
                                                                                  cuda_dropout_scale(drop.p));
        CUDA_LAUNCHED(be);
        pd = work;
    }
    /* O^T = V^T . Pd^T into the head's columns of out (row stride C) */
    for (int b = 0; b < B; b++) {
        const float *v = qkv + (size_t)b * T * C3 + 2 * C;
        CUBLAS_OK(be, cublasSgemmStridedBatched(be->blas, CUBLAS_OP_N, CUBLAS_OP_N, HS, T, T, &one, v, C3, HS,
                                                pd + (size_t)b * NH * TT, T, TT, &zero, out + (size_t)b * T * C, C,
                                                HS, NH));
    }
}

void cuda_attention_backward(void *self, float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, const uint8_t *mask, int causal, int B, int T, int C, int NH,
                             tftx_dropout drop)
{
    (void)mask, (void)causal; /* hidden entries have P = 0: see the top */
    cuda_backend *be = cuda_of(self);
    if (!dqkv || B <= 0 || T <= 0 || C <= 0 || NH <= 0) return;
    const int HS = C / NH, C3 = 3 * C;
    const long long TT = (long long)T * T;
    const float qk_scale = 1.0f / sqrtf((float)HS), one = 1.0f, zero = 0.0f;
    const size_t rows = (size_t)B * NH * T, n = rows * T;
    const int dropping = drop.p > 0.0f;
    const float keep_scale = cuda_dropout_scale(drop.p);

    /* dV^T += dO^T . Pd, with Pd in scratch when dropping */
    const float *pd = att;
    if (dropping) {
        attention_dropout_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, be->stream>>>(scratch, att, n, drop, keep_scale);
        CUDA_LAUNCHED(be);
        pd = scratch;
    }
    for (int b = 0; b < B; b++) {
        const float *dO = dout + (size_t)b * T * C;
        float *dv = dqkv + (size_t)b * T * C3 + 2 * C;
        CUBLAS_OK(be, cublasSgemmStridedBatched(be->blas, CUBLAS_OP_N, CUBLAS_OP_T, HS, T, T, &one, dO, C, HS,
                                                pd + (size_t)b * NH * TT, T, TT, &one, dv, C3, HS, NH));
    }
    /* dPd^T = V . dO^T into scratch (after the dV products read Pd there) */
    for (int b = 0; b < B; b++) {
        const float *v = qkv + (size_t)b * T * C3 + 2 * C, *dO = dout + (size_t)b * T * C;
        CUBLAS_OK(be, cublasSgemmStridedBatched(be->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, HS, &one, v, C3, HS, dO, C,
                                                HS, &zero, scratch + (size_t)b * NH * TT, T, TT, NH));
    }
    attention_softmax_backward_kernel<<<cuda_row_blocks(rows), CUDA_ROWS_PER_BLOCK * 32, 0, be->stream>>>(
        scratch, att, T, rows, drop, keep_scale, dropping);
    CUDA_LAUNCHED(be);
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * C3, *k = q + C;
        float *dq = dqkv + (size_t)b * T * C3, *dk = dq + C;
        const float *dS = scratch + (size_t)b * NH * TT;
        /* dQ^T += K^T . dS^T / sqrt(HS) */
        CUBLAS_OK(be, cublasSgemmStridedBatched(be->blas, CUBLAS_OP_N, CUBLAS_OP_N, HS, T, T, &qk_scale, k, C3, HS,
                                                dS, T, TT, &one, dq, C3, HS, NH));
        /* dK^T += Q^T . dS / sqrt(HS) */
        CUBLAS_OK(be, cublasSgemmStridedBatched(be->blas, CUBLAS_OP_N, CUBLAS_OP_T, HS, T, T, &qk_scale, q, C3, HS,
                                                dS, T, TT, &one, dk, C3, HS, NH));
    }
}

} /* extern "C" */
