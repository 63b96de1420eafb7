/*
 * cuda_layers.cu -- embedding, layer norm, pooling and softmax
 * cross-entropy (the formulas are those of the cpu backend, cpu_layers.c).
 *
 * Gradients that sum over rows take a fixed order: layer norm weight and
 * bias summed by the backward kernel's warps, then its blocks' sums by
 * the last block (colsum_finish, cuda_device.cuh; rows wider than 1024:
 * colsum), embedding tables with one owner thread per (table row bucket,
 * column) adding rows in order (colsum for the segment table when no
 * segments are given).
 * Row statistics (layer norm, softmax) take one warp per row. Activations
 * are float or bfloat16 (cuda_device.cuh), statistics and tables float.
 */
#include "cuda_device.cuh"

/* ---------------------------------------------------------- embedding */

/* out[b,t,c] = wte[tokens[b,t], c] + wpe[t, c] + wse[segments[b,t], c] */
template <class A>
__global__ void embedding_forward_kernel(A *out, const int32_t *tokens, const int32_t *segments, const float *wte,
                                         const float *wpe, const float *wse, int T, int C, size_t n)
{
    CUDA_FOR(i, n)
    {
        size_t bt = i / (size_t)C;
        int c = (int)(i % (size_t)C);
        float v = wte[(size_t)tokens[bt] * C + c];
        if (wpe) v += wpe[(bt % (size_t)T) * C + c];
        if (wse) v += wse[(size_t)(segments ? segments[bt] : 0) * C + c];
        st(out, i, v);
    }
}

/* dwte[tokens[bt], c] += dout[bt, c] and dwse likewise. Rows of the
 * tables collide (tokens repeat), so each (table row, column) has one
 * owner, which adds its rows' contributions in the order bt = 0..BT-1:
 * the lane of column c in the warp of bucket k = row % EMB_BUCKETS (a
 * warp: 32 columns of one bucket). The tokens pass through shared memory
 * a tile at a time; a warp reads 32 of them at once and a ballot gives
 * the ones of its bucket, which it then takes in order (a thread looking
 * at every token in turn spent 1.2 ms of GPT-2 124M's step on an H100),
 * loading the gradients of up to EMB_LOADS of them before adding them
 * (one wait for memory, not one each: the batch's padding token, and
 * segment 0 of nearly every row, give one bucket thousands of rows). A
 * lane keeps the table row it adds to in a register and stores it when
 * another row comes. */
#define EMB_BUCKETS 256
#define EMB_WARPS 8 /* buckets a block */
#define EMB_TILE 1024
#define EMB_LOADS 16

struct emb_acc {
    float *table;
    int row; /* -1: none held */
    float v;
    __device__ void add(int r, int C, int c, float d)
    {
        if (r != row) {
            flush(C, c);
            row = r, v = table[(size_t)r * C + c];
        }
        v += d;
    }
    __device__ void flush(int C, int c)
    {
        if (row >= 0) table[(size_t)row * C + c] = v;
    }
};

template <class A>
__global__ void embedding_table_backward_kernel(float *dwte, float *dwse, const A *dout, const int32_t *tokens,
                                                const int32_t *segments, int BT, int C)
{
    __shared__ int32_t tok[EMB_TILE], seg[EMB_TILE];
    const int lane = threadIdx.x, c = blockIdx.x * 32 + lane, k = blockIdx.y * EMB_WARPS + threadIdx.y;
    const int tid = threadIdx.y * 32 + lane, in = c < C; /* the whole warp takes part in its ballots */
    emb_acc te = {dwte, -1, 0.0f}, se = {dwse, -1, 0.0f};
    for (int t0 = 0; t0 < BT; t0 += EMB_TILE) {
        const int n = min(EMB_TILE, BT - t0);
        __syncthreads();
        for (int j = tid; j < n; j += 32 * EMB_WARPS) {
            tok[j] = tokens[t0 + j];
            seg[j] = segments ? segments[t0 + j] : 0;
        }
        __syncthreads();
        for (int j0 = 0; j0 < n; j0 += 32) {
            const int j = j0 + lane;
            const unsigned mte = __ballot_sync(0xffffffffu, dwte && j < n && tok[j] % EMB_BUCKETS == k);
            const unsigned mse = dwse ? __ballot_sync(0xffffffffu, j < n && seg[j] % EMB_BUCKETS == k) : 0u;
            unsigned m = mte | mse; /* the same in every lane: the branches below are the warp's */
            while (m) {
                int at[EMB_LOADS];
                float d[EMB_LOADS];
                CUDA_UNROLL
                for (int u = 0; u < EMB_LOADS; u++) {
                    at[u] = m ? __ffs(m) - 1 : -1;
                    m &= m - 1;
                    d[u] = at[u] >= 0 && in ? ld(dout, (size_t)(t0 + j0 + at[u]) * C + c) : 0.0f;
                }
                CUDA_UNROLL
                for (int u = 0; u < EMB_LOADS; u++) {
                    if (at[u] < 0 || !in) break;
                    const int r = j0 + at[u];
                    if (mte >> at[u] & 1u) te.add(tok[r], C, c, d[u]);
                    if (mse >> at[u] & 1u) se.add(seg[r], C, c, d[u]);
                }
            }
        }
    }
    if (in) te.flush(C, c), se.flush(C, c);
}

/* dwpe[t, c] += sum_b dout[b, t, c], b in order */
template <class A> __global__ void embedding_position_backward_kernel(float *dwpe, const A *dout, int B, int T, int C)
{
    CUDA_FOR(i, (size_t)T * C)
    {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += ld(dout, (size_t)b * T * C + i);
        dwpe[i] += s;
    }
}

/* --------------------------------------------------------- layer norm */

/* One warp per row: mean = sum(x)/C, var = sum((x-mean)^2)/C (biased),
 * rstd = 1/sqrt(var + eps), out = (x-mean)*rstd*weight + bias; 16 bytes
 * at a time where the rows are aligned (vec_for). */
template <class A>
__device__ __forceinline__ void layernorm_row(A *o, float *mean, float *rstd, const A *x, const float *weight,
                                              const float *bias, int row, int C, float eps, int lane)
{
    constexpr int V = ACT_VEC(A);
    const bool aligned = vec_aligned(x) && vec_aligned(o);
    float s = 0.0f;
    vec_for<A>((size_t)C, aligned, lane, 32,
               [&](size_t c) {
                   float xv[V];
                   ld_vec(x, c, xv);
                   CUDA_UNROLL
                   for (int k = 0; k < V; k++) s += xv[k];
               },
               [&](size_t c) { s += ld(x, c); });
    const float m = warp_sum(s) / (float)C;
    float v = 0.0f;
    vec_for<A>((size_t)C, aligned, lane, 32,
               [&](size_t c) {
                   float xv[V];
                   ld_vec(x, c, xv);
                   CUDA_UNROLL
                   for (int k = 0; k < V; k++) v += (xv[k] - m) * (xv[k] - m);
               },
               [&](size_t c) { v += (ld(x, c) - m) * (ld(x, c) - m); });
    const float r = 1.0f / sqrtf(warp_sum(v) / (float)C + eps);
    auto out = [&](float xc, int c) { return (xc - m) * r * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f); };
    vec_for<A>((size_t)C, aligned, lane, 32,
               [&](size_t c) {
                   float xv[V];
                   ld_vec(x, c, xv);
                   CUDA_UNROLL
                   for (int k = 0; k < V; k++) xv[k] = out(xv[k], (int)c + k);
                   st_vec(o, c, xv);
               },
               [&](size_t c) { st(o, c, out(ld(x, c), (int)c)); });
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

template <class A>
__global__ void layernorm_forward_kernel(A *out, float *mean, float *rstd, const A *inp, const float *weight,
                                         const float *bias, int N, int C, float eps)
{
    int row = blockIdx.x * CUDA_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const size_t at = (size_t)row * C;
    layernorm_row(out + at, mean, rstd, inp + at, weight, bias, row, C, eps, lane);
}

/* out = a + dropout(b) as residual_forward_kernel computes it, then the
 * layer norm of out's row, read back (from cache): one warp per row, one
 * launch instead of two. */
template <class A>
__global__ void residual_layernorm_forward_kernel(A *out, A *ln, float *mean, float *rstd, const A *a, const A *b,
                                                  const float *weight, const float *bias, int N, int C, float eps,
                                                  tftx_dropout drop, float scale, int dropping)
{
    int row = blockIdx.x * CUDA_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const uint64_t stream = dropping ? TFTX_DROPOUT_STREAM(drop) : 0;
    const size_t at = (size_t)row * C;
    A *r = out + at;
    const A *x = a + at, *y = b + at;
    tftx_dropout d = drop; /* this row's mask: at its place (drop.row = C), or the next C elements */
    const uint64_t mask_at = d.row ? row * d.row_stride : at;
    d.row = 0;
    drop_vec_for<A>((size_t)C, vec_aligned(r) && vec_aligned(x) && vec_aligned(y), mask_at, lane, 32, d, stream, scale,
                    dropping, [&](size_t c, const float *f) { add_dropped_vec(r, x, y, c, f); },
                    [&](size_t c, float f) { st(r, c, ld(x, c) + ld(y, c) * f); });
    __syncwarp(); /* the row's sum, written by other lanes, read by all below */
    layernorm_row(ln + at, mean, rstd, (const A *)r, weight, bias, row, C, eps, lane);
}

/* One warp per row, xhat = (x-mean)*rstd, g = dout*weight:
 * dinp += rstd * (g - mean_c(g) - xhat * mean_c(g*xhat)) (0 + that, dinp
 * not read, when !add) */
template <class A>
__global__ void layernorm_backward_kernel(A *dinp, const A *dout, const A *inp, const float *weight, const float *mean,
                                          const float *rstd, int N, int C, int add)
{
    int row = blockIdx.x * CUDA_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const A *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    A *dx = dinp + (size_t)row * C;
    const float m = mean[row], s = rstd[row];
    const bool aligned = vec_aligned(x) && vec_aligned(dy) && vec_aligned(dx);
    constexpr int V = ACT_VEC(A);
    float gs = 0.0f, gxs = 0.0f;
    auto sums = [&](float d, float xc, int c) {
        const float g = d * (weight ? weight[c] : 1.0f);
        gs += g;
        gxs += g * (xc - m) * s;
    };
    vec_for<A>((size_t)C, aligned, lane, 32,
               [&](size_t c) {
                   float d[V], xv[V];
                   ld_vec(dy, c, d);
                   ld_vec(x, c, xv);
                   CUDA_UNROLL
                   for (int k = 0; k < V; k++) sums(d[k], xv[k], (int)c + k);
               },
               [&](size_t c) { sums(ld(dy, c), ld(x, c), (int)c); });
    const float g_mean = warp_sum(gs) / (float)C, gx_mean = warp_sum(gxs) / (float)C;
    auto grad = [&](float base, float d, float xc, int c) {
        const float g = d * (weight ? weight[c] : 1.0f);
        return base + s * (g - g_mean - (xc - m) * s * gx_mean);
    };
    vec_for<A>((size_t)C, aligned, lane, 32,
               [&](size_t c) {
                   float d[V], xv[V], o[V];
                   ld_vec(dy, c, d);
                   ld_vec(x, c, xv);
                   if (add) ld_vec(dx, c, o);
                   CUDA_UNROLL
                   for (int k = 0; k < V; k++) o[k] = grad(add ? o[k] : 0.0f, d[k], xv[k], (int)c + k);
                   st_vec(dx, c, o);
               },
               [&](size_t c) { st(dx, c, grad(add ? ld(dx, c) : 0.0f, ld(dy, c), ld(x, c), (int)c)); });
}

/* (dout*xhat, dout) at row n, column c: summed over rows (colsum) into
 * dweight and dbias */
template <class A> struct layernorm_param_grads {
    const A *dout, *inp;
    const float *mean, *rstd;
    int C;
    __device__ float2 operator()(int n, int c) const
    {
        size_t i = (size_t)n * C + c;
        float dy = ld(dout, i);
        return make_float2(dy * ((ld(inp, i) - mean[n]) * rstd[n]), dy);
    }
};

/* Layer norm backward and its parameter gradients in one kernel, for
 * C <= 32*CPL: a warp per row keeps the row's xhat and dout in registers
 * (lane l holds columns l, l+32, ...), writes dinp as the kernel above
 * does, and adds dout*xhat and dout into per-lane sums of its columns.
 * Block p takes the rows of chunk p, its warp w rows r0+w, r0+w+LN_WARPS,
 * ... in order; the warps' sums are added in warp order into partial[p],
 * and colsum_finish adds the chunks in order into dweight and dbias. One
 * pass over dout and inp instead of two (the column sum read them again),
 * one launch instead of three. */
#define LN_WARPS 8
#define LN_MAX_CPL 16    /* columns per lane: C up to 512 */
#define LN_MAX_CHUNKS 96 /* not tuned on a GPU yet */
/* What a layer norm's backward reads and writes (A * as float *: the
 * kernel casts) */
struct ln_back {
    float *dinp, *dweight, *dbias;
    const float *dout, *inp, *weight, *mean, *rstd;
    int N, C, dinp_add, dparam_add;
};
template <class A, int CPL>
__global__ void layernorm_backward_fused_kernel(ln_back k, float2 *partial, unsigned *ticket, int rows_per_chunk)
{
    __shared__ float2 sh[32 * CPL];
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, C = k.C;
    const int r0 = blockIdx.x * rows_per_chunk, r1 = min(k.N, r0 + rows_per_chunk);
    const float *weight = k.weight;
    float sum_dx[CPL], sum_d[CPL];
    CUDA_UNROLL
    for (int j = 0; j < CPL; j++) sum_dx[j] = 0.0f, sum_d[j] = 0.0f;
    for (int row = r0 + w; row < r1; row += LN_WARPS) {
        const A *x = (const A *)k.inp + (size_t)row * C, *dy = (const A *)k.dout + (size_t)row * C;
        const float m = k.mean[row], s = k.rstd[row];
        float xhat[CPL], d[CPL], gs = 0.0f, gxs = 0.0f;
        CUDA_UNROLL
        for (int j = 0; j < CPL; j++) {
            const int c = lane + 32 * j;
            d[j] = c < C ? ld(dy, c) : 0.0f;
            xhat[j] = c < C ? (ld(x, c) - m) * s : 0.0f;
            const float g = d[j] * (weight && c < C ? weight[c] : 1.0f);
            gs += g;
            gxs += g * xhat[j];
        }
        const float g_mean = warp_sum(gs) / (float)C, gx_mean = warp_sum(gxs) / (float)C;
        A *dx = k.dinp ? (A *)k.dinp + (size_t)row * C : NULL;
        CUDA_UNROLL
        for (int j = 0; j < CPL; j++) {
            const int c = lane + 32 * j;
            if (c >= C) continue;
            if (dx) {
                const float g = d[j] * (weight ? weight[c] : 1.0f);
                st(dx, c, (k.dinp_add ? ld(dx, c) : 0.0f) + s * (g - g_mean - xhat[j] * gx_mean));
            }
            sum_dx[j] += d[j] * xhat[j];
            sum_d[j] += d[j];
        }
    }
    if (!k.dweight && !k.dbias) return; /* the same for every thread */
    for (int v = 0; v < LN_WARPS; v++) {
        if (w == v) {
            CUDA_UNROLL
            for (int j = 0; j < CPL; j++) {
                const int c = lane + 32 * j;
                if (c >= C) continue;
                float2 t = v ? sh[c] : make_float2(0.0f, 0.0f);
                sh[c] = make_float2(t.x + sum_dx[j], t.y + sum_d[j]);
            }
        }
        __syncthreads();
    }
    for (int c = threadIdx.x; c < C; c += blockDim.x) partial[(size_t)blockIdx.x * C + c] = sh[c];
    colsum_finish(k.dweight, k.dbias, partial, gridDim.x, C, ticket, k.dparam_add);
}

template <class A, int CPL> static void layernorm_backward_fused(cuda_backend *be, const ln_back &k)
{
    int P = (k.N + LN_WARPS - 1) / LN_WARPS;
    if (P > LN_MAX_CHUNKS) P = LN_MAX_CHUNKS;
    const int R = (k.N + P - 1) / P;
    P = (k.N + R - 1) / R;
    float2 *partial = NULL;
    if ((k.dweight || k.dbias) && !(partial = (float2 *)cuda_work(be, (size_t)P * k.C * sizeof(float2)))) return;
    TFTX_CUDA_LAUNCH(P, LN_WARPS * 32, be->stream, layernorm_backward_fused_kernel<A, CPL>)(k, partial, be->ticket, R);
    CUDA_LAUNCHED(be);
}

/* The fused kernel with the fewest columns per lane that holds C; 0 when C
 * is too wide for it. */
template <class A> static int layernorm_backward_try_fused(cuda_backend *be, const ln_back &k)
{
    if (k.C <= 32 * 4)
        layernorm_backward_fused<A, 4>(be, k);
    else if (k.C <= 32 * 8)
        layernorm_backward_fused<A, 8>(be, k);
    else if (k.C <= 32 * LN_MAX_CPL)
        layernorm_backward_fused<A, LN_MAX_CPL>(be, k);
    else /* on an H100, GPT-2 124M's 768-wide rows took 0.49 ms a call here, 0.17 the two kernels' way */
        return 0;
    return 1;
}

/* ------------------------------------------------------------ pooling */

template <class A> __global__ void pool_first_forward_kernel(A *out, const A *inp, int T, int C, size_t n)
{
    CUDA_FOR(i, n) out[i] = inp[(i / C) * (size_t)T * C + i % C]; /* a copy, of either type */
}

template <class A> __global__ void pool_first_backward_kernel(A *dinp, const A *dout, int T, int C, size_t n)
{
    CUDA_FOR(i, n)
    {
        const size_t j = (i / C) * (size_t)T * C + i % C;
        st(dinp, j, ld(dinp, j) + ld(dout, i));
    }
}

/* Tokens of sequence b that count: mask[b,t] != 0, or all T. */
__device__ int pool_count(const uint8_t *mask, int b, int T)
{
    if (!mask) return T;
    int n = 0;
    for (int t = 0; t < T; t++) n += mask[(size_t)b * T + t] != 0;
    return n;
}

/* out[b,c] = mean of inp[b,t,c] over counted t; 0 when none count */
template <class A>
__global__ void pool_mean_forward_kernel(A *out, const A *inp, const uint8_t *mask, int T, int C, size_t n)
{
    CUDA_FOR(i, n)
    {
        int b = (int)(i / C), c = (int)(i % C);
        int count = pool_count(mask, b, T);
        float s = 0.0f;
        for (int t = 0; t < T; t++)
            if (!mask || mask[(size_t)b * T + t]) s += ld(inp, ((size_t)b * T + t) * C + c);
        st(out, i, count ? s * (1.0f / (float)count) : 0.0f);
    }
}

/* dinp[b,t,c] += dout[b,c] / count for counted t */
template <class A>
__global__ void pool_mean_backward_kernel(A *dinp, const A *dout, const uint8_t *mask, int T, int C, size_t n)
{
    CUDA_FOR(i, n) /* over (B,T,C) */
    {
        size_t bt = i / C;
        int b = (int)(bt / T), c = (int)(i % C);
        if (mask && !mask[bt]) continue;
        int count = pool_count(mask, b, T);
        if (count) st(dinp, i, ld(dinp, i) + ld(dout, (size_t)b * C + c) * (1.0f / (float)count));
    }
}

/* ------------------------------------------------------ cross-entropy */

/* Threads of a cross-entropy block (a power of two: the reduction's
 * tree). A row's second pass reads it again: with blocks of 1024 an SM
 * holds two rows at a time, so a row's passes are a few microseconds
 * apart and the second read mostly comes from L2 (GPT-2 124M: 264 rows of
 * 100 KB in flight, 27 MB, where eight blocks of 256 an SM would have 105
 * MB in flight, twice the L2). Narrower rows take 256 (gpt-small's 8192
 * bf16 logits, 16 KB a row, fit in L2 at eight blocks an SM: its
 * measured step ran them that way). */
#define CE_THREADS_MAX 1024
static inline unsigned ce_threads(int V)
{
    return V >= 32768 ? CE_THREADS_MAX : 256;
}

/* One block per row: probs = softmax(logits), loss = log(sum) - (l[target]
 * - max), 0 for target < 0. Two passes over the logits instead of three:
 * each thread keeps a running maximum m and sum s = sum exp(l - m) (in
 * double), rescaling s when m grows (online softmax); the threads' (m, s)
 * pairs are merged in a fixed order, then one pass writes the
 * probabilities. Every exponent is <= 0, so nothing overflows. */
__device__ __forceinline__ void ms_merge(float &m, double &s, float m2, double s2)
{
    if (m2 == -INFINITY) return;
    if (m2 > m) {
        s = s * (double)expf(m - m2) + s2;
        m = m2;
    } else {
        s += s2 * (double)expf(m2 - m);
    }
}

/* The row's maximum and sum of exp(l - max), in every thread of the block. */
template <class A> __device__ void ce_row_stats(const A *l, int V, float *mx, double *sum)
{
    __shared__ float sm[CE_THREADS_MAX];
    __shared__ double ss[CE_THREADS_MAX];
    float m = -INFINITY;
    double s = 0.0;
    auto add = [&](float x) {
        if (x > m) {
            s = s * (double)expf(m - x) + 1.0;
            m = x;
        } else if (x != -INFINITY) { /* exp(-inf) = 0, and -inf - -inf is NaN */
            s += (double)expf(x - m);
        }
    };
    vec_for<A>((size_t)V, vec_aligned(l), threadIdx.x, blockDim.x,
               [&](size_t v) {
                   float x[ACT_VEC(A)];
                   ld_vec(l, v, x);
                   CUDA_UNROLL
                   for (int k = 0; k < ACT_VEC(A); k++) add(x[k]);
               },
               [&](size_t v) { add(ld(l, v)); });
    sm[threadIdx.x] = m, ss[threadIdx.x] = s;
    __syncthreads();
    for (int half = (int)blockDim.x / 2; half > 0; half >>= 1) { /* a fixed tree */
        if ((int)threadIdx.x < half) {
            float m1 = sm[threadIdx.x];
            double s1 = ss[threadIdx.x];
            ms_merge(m1, s1, sm[threadIdx.x + half], ss[threadIdx.x + half]);
            sm[threadIdx.x] = m1, ss[threadIdx.x] = s1;
        }
        __syncthreads();
    }
    *mx = sm[0], *sum = ss[0];
}

template <class A>
__global__ void crossentropy_forward_kernel(float *losses, A *probs, const A *logits, const int32_t *targets, int V,
                                            int stride)
{
    const int n = blockIdx.x;
    const A *l = logits + (size_t)n * stride;
    A *p = probs + (size_t)n * stride;
    float mx;
    double sum;
    ce_row_stats(l, V, &mx, &sum);
    const float inv = (float)(1.0 / sum);
    vec_for<A>((size_t)V, vec_aligned(l) && vec_aligned(p), threadIdx.x, blockDim.x,
               [&](size_t v) {
                   float x[ACT_VEC(A)];
                   ld_vec(l, v, x);
                   CUDA_UNROLL
                   for (int k = 0; k < ACT_VEC(A); k++) x[k] = expf(x[k] - mx) * inv;
                   st_vec(p, v, x);
               },
               [&](size_t v) { st(p, v, expf(ld(l, v) - mx) * inv); });
    if (threadIdx.x == 0) {
        int32_t tgt = targets[n];
        losses[n] = tgt < 0 ? 0.0f : (float)(log(sum) - (double)(ld(l, tgt) - mx));
    }
}

/* Forward and backward in one: the losses, then each logit replaced by
 * (p - [v == target]) * dloss, p as the forward stores it (rounded to A),
 * added to 0 as the backward adds to a zeroed gradient: the same bits; the
 * padding columns V..stride-1 set to 0. */
template <class A>
__global__ void crossentropy_fused_kernel(float *losses, A *logits, const int32_t *targets, const float *dloss_at, int V,
                                          int stride)
{
    const int n = blockIdx.x;
    A *l = logits + (size_t)n * stride;
    float mx;
    double sum;
    ce_row_stats(l, V, &mx, &sum);
    const float inv = (float)(1.0 / sum), dloss = *dloss_at;
    const int32_t tgt = targets[n];
    if (threadIdx.x == 0) losses[n] = tgt < 0 ? 0.0f : (float)(log(sum) - (double)(ld(l, tgt) - mx));
    __syncthreads(); /* l[tgt] is read before it is overwritten */
    /* __fmul_rn: p rounded as the forward stores it; a plain product could
       be contracted with the "- 1" below into one fused multiply-add, and
       the target's gradient then differ in its last bit from forward +
       backward */
    auto grad = [&](float x, size_t v) {
        const float p = as_stored(l, __fmul_rn(expf(x - mx), inv));
        return tgt < 0 ? 0.0f : 0.0f + (p - ((int)v == tgt ? 1.0f : 0.0f)) * dloss;
    };
    vec_for<A>((size_t)V, vec_aligned(l), threadIdx.x, blockDim.x,
               [&](size_t v) {
                   float x[ACT_VEC(A)];
                   ld_vec(l, v, x);
                   CUDA_UNROLL
                   for (int k = 0; k < ACT_VEC(A); k++) x[k] = grad(x[k], v + k);
                   st_vec(l, v, x);
               },
               [&](size_t v) { st(l, v, grad(ld(l, v), v)); });
    for (int v = V + threadIdx.x; v < stride; v += blockDim.x) st(l, v, 0.0f);
}

/* dlogits[n,v] += (probs[n,v] - [v == target]) * dloss for target >= 0;
 * element k of the (N,V) walk lies at n * stride + v */
template <class A>
__global__ void crossentropy_backward_kernel(A *dlogits, const A *probs, const int32_t *targets, const float *dloss_at,
                                             int V, int stride, size_t n)
{
    const float dloss = *dloss_at;
    CUDA_FOR(k, n)
    {
        const size_t row = k / V;
        int32_t tgt = targets[row];
        if (tgt < 0) continue;
        const int v = (int)(k % V);
        const size_t i = row * stride + v;
        st(dlogits, i, ld(dlogits, i) + (ld(probs, i) - (v == tgt ? 1.0f : 0.0f)) * dloss);
    }
}

/* ------------------------------------------------------------ launchers */

extern "C" {

void cuda_embedding_forward(void *self, float *out, const int32_t *tokens, const int32_t *segments, const float *wte,
                            const float *wpe, const float *wse, int B, int T, int C)
{
    cuda_backend *be = cuda_of(self);
    size_t n = (size_t)B * T * C;
    if (!n) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, embedding_forward_kernel<A>)(
                     (A *)out, tokens, segments, wte, wpe, wse, T, C, n));
    CUDA_LAUNCHED(be);
}

void cuda_embedding_backward(void *self, float *dwte, float *dwpe, float *dwse, const float *dout,
                             const int32_t *tokens, const int32_t *segments, int B, int T, int C)
{
    cuda_backend *be = cuda_of(self);
    if (B <= 0 || T <= 0 || C <= 0) return;
    /* Without segments every row is segment 0: its table row takes the
       column sum of dout, in parallel over rows instead of one thread per
       column adding all B*T rows in order (1 ms a step on bert-small). */
    if (dwse && !segments) {
        ACT_CALL(be, colsum(be, dwse, NULL, col_of<A>{(const A *)dout, C}, B * T, C));
        dwse = NULL;
    }
    if (dwte || dwse) {
        ACT_CALL(be, TFTX_CUDA_LAUNCH(dim3((C + 31) / 32, EMB_BUCKETS / EMB_WARPS), dim3(32, EMB_WARPS), be->stream,
                                      embedding_table_backward_kernel<A>)(dwte, dwse, (const A *)dout, tokens, segments,
                                                                          B * T, C));
        CUDA_LAUNCHED(be);
    }
    if (dwpe) {
        ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_blocks((size_t)T * C), CUDA_THREADS, be->stream,
                                      embedding_position_backward_kernel<A>)(dwpe, (const A *)dout, B, T, C));
        CUDA_LAUNCHED(be);
    }
}

void cuda_layernorm_forward(void *self, float *out, float *mean, float *rstd, const float *inp, const float *weight,
                            const float *bias, int N, int C, float eps)
{
    cuda_backend *be = cuda_of(self);
    if (N <= 0 || C <= 0) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_row_blocks((size_t)N), CUDA_ROWS_PER_BLOCK * 32, be->stream,
                                  layernorm_forward_kernel<A>)((A *)out, mean, rstd, (const A *)inp, weight, bias, N,
                                                               C, eps));
    CUDA_LAUNCHED(be);
}

void cuda_residual_layernorm_forward(void *self, float *out, float *ln, float *mean, float *rstd, const float *a,
                                     const float *b, const float *weight, const float *bias, int N, int C, float eps,
                                     tftx_dropout drop)
{
    cuda_backend *be = cuda_of(self);
    if (N <= 0 || C <= 0) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_row_blocks((size_t)N), CUDA_ROWS_PER_BLOCK * 32, be->stream,
                                  residual_layernorm_forward_kernel<A>)((A *)out, (A *)ln, mean, rstd, (const A *)a,
                                                                        (const A *)b, weight, bias, N, C, eps, drop,
                                                                        cuda_dropout_scale(drop.p), drop.p > 0.0f));
    CUDA_LAUNCHED(be);
}

void cuda_layernorm_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, const float *mean, const float *rstd, int N, int C, int dinp_add,
                             int dparam_add)
{
    cuda_backend *be = cuda_of(self);
    if (C <= 0) return;
    if (N <= 0) { /* no rows: written parameter gradients are 0 */
        if (dweight && !dparam_add) CUDA_OK(be, cudaMemsetAsync(dweight, 0, C * sizeof(float), be->stream));
        if (dbias && !dparam_add) CUDA_OK(be, cudaMemsetAsync(dbias, 0, C * sizeof(float), be->stream));
        return;
    }
    const ln_back k = {dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, dinp_add, dparam_add};
    int fused = 0;
    ACT_CALL(be, fused = layernorm_backward_try_fused<A>(be, k));
    if (fused) return;
    if (dinp) { /* wider rows: the row kernel, then a column sum */
        ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_row_blocks((size_t)N), CUDA_ROWS_PER_BLOCK * 32, be->stream,
                                      layernorm_backward_kernel<A>)((A *)dinp, (const A *)dout, (const A *)inp, weight,
                                                                    mean, rstd, N, C, dinp_add));
        CUDA_LAUNCHED(be);
    }
    if (dweight || dbias) {
        ACT_CALL(be,
                 colsum(be, dweight, dbias, layernorm_param_grads<A>{(const A *)dout, (const A *)inp, mean, rstd, C}, N,
                        C, dparam_add));
    }
}

void cuda_pool_first_forward(void *self, float *out, const float *inp, int B, int T, int C)
{
    cuda_backend *be = cuda_of(self);
    size_t n = (size_t)B * C;
    if (!n || T <= 0) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, pool_first_forward_kernel<A>)(
                     (A *)out, (const A *)inp, T, C, n));
    CUDA_LAUNCHED(be);
}

void cuda_pool_first_backward(void *self, float *dinp, const float *dout, int B, int T, int C)
{
    cuda_backend *be = cuda_of(self);
    size_t n = (size_t)B * C;
    if (!n || T <= 0 || !dinp) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, pool_first_backward_kernel<A>)(
                     (A *)dinp, (const A *)dout, T, C, n));
    CUDA_LAUNCHED(be);
}

void cuda_pool_mean_forward(void *self, float *out, const float *inp, const uint8_t *mask, int B, int T, int C)
{
    cuda_backend *be = cuda_of(self);
    size_t n = (size_t)B * C;
    if (!n) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, pool_mean_forward_kernel<A>)(
                     (A *)out, (const A *)inp, mask, T, C, n));
    CUDA_LAUNCHED(be);
}

void cuda_pool_mean_backward(void *self, float *dinp, const float *dout, const uint8_t *mask, int B, int T, int C)
{
    cuda_backend *be = cuda_of(self);
    size_t n = (size_t)B * T * C;
    if (!n || !dinp) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, pool_mean_backward_kernel<A>)(
                     (A *)dinp, (const A *)dout, mask, T, C, n));
    CUDA_LAUNCHED(be);
}

void cuda_crossentropy_forward(void *self, float *losses, float *probs, const float *logits, const int32_t *targets,
                               int N, int V, int stride)
{
    cuda_backend *be = cuda_of(self);
    if (N <= 0 || V <= 0) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH((unsigned)N, ce_threads(V), be->stream, crossentropy_forward_kernel<A>)(
                     losses, (A *)probs, (const A *)logits, targets, V, stride));
    CUDA_LAUNCHED(be);
}

void cuda_crossentropy_fused(void *self, float *losses, float *logits, float *probs, const int32_t *targets,
                             const float *dloss, int N, int V, int stride)
{
    (void)probs; /* not needed: one pass per row */
    cuda_backend *be = cuda_of(self);
    if (N <= 0 || V <= 0) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH((unsigned)N, ce_threads(V), be->stream,
                                  crossentropy_fused_kernel<A>)(losses, (A *)logits, targets, dloss, V, stride));
    CUDA_LAUNCHED(be);
}

void cuda_crossentropy_backward(void *self, float *dlogits, const float *probs, const int32_t *targets,
                                const float *dloss, int N, int V, int stride)
{
    cuda_backend *be = cuda_of(self);
    size_t n = (size_t)N * V;
    if (!n || !dlogits) return;
    ACT_CALL(be, TFTX_CUDA_LAUNCH(cuda_blocks(n), CUDA_THREADS, be->stream, crossentropy_backward_kernel<A>)(
                     (A *)dlogits, (const A *)probs, targets, dloss, V, stride, n));
    CUDA_LAUNCHED(be);
}

} /* extern "C" */
