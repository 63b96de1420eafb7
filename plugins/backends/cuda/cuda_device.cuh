/*
 * cuda_device.cuh -- what the cuda backend's .cu files share: launch shapes,
 * deterministic warp and block reductions, dropout masks four elements a draw.
 *
 * Reductions here always combine the same partial sums in the same order
 * (a fixed shuffle tree over a fixed assignment of elements to lanes), so
 * they give the same bits on every run; they differ from the CPU backend's
 * order, so results agree with it to rounding, not bit for bit.
 */
#ifndef TFTX_CUDA_DEVICE_CUH
#define TFTX_CUDA_DEVICE_CUH

#include <cuda_bf16.h>
#include <math.h>
#include <tftx/cuda_launch.cuh>
#include <tftx/random.h>

#include "cuda.h"

#define CUDA_THREADS 256           /* threads per block of the element-wise kernels */
#define CUDA_ROWS_PER_BLOCK 8      /* warp-per-row kernels: 8 warps of 32 */
#define CUDA_MAX_BLOCKS (1u << 20) /* grid-stride loops beyond this */

static inline cuda_backend *cuda_of(void *self)
{
    return (cuda_backend *)self;
}

/* Blocks for a grid-stride loop over n elements. */
static inline unsigned cuda_blocks(size_t n)
{
    size_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    if (b < 1) b = 1;
    return b > CUDA_MAX_BLOCKS ? CUDA_MAX_BLOCKS : (unsigned)b;
}

/* Blocks for one warp per row. */
static inline unsigned cuda_row_blocks(size_t rows)
{
    return (unsigned)((rows + CUDA_ROWS_PER_BLOCK - 1) / CUDA_ROWS_PER_BLOCK);
}

/* ------------------------------------------------------- activations
 *
 * Activation tensors (tftx/backend.h, "act") are float, or bfloat16 at
 * precision bf16 (be->act16). Kernels that touch them are templates on
 * the element type A, read with ld() (to float) and write with st() (from
 * float, rounded to nearest even); arithmetic is float either way.
 * ACT_CALL(be, stmt) runs stmt with A the instance's type; launchers cast
 * the SDK's float pointers to A there. */
typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ld(const float *p, size_t i)
{
    return p[i];
}
__device__ __forceinline__ float ld(const bf16 *p, size_t i)
{
    return __bfloat162float(p[i]);
}
__device__ __forceinline__ void st(float *p, size_t i, float v)
{
    p[i] = v;
}
__device__ __forceinline__ void st(bf16 *p, size_t i, float v)
{
    p[i] = __float2bfloat16_rn(v);
}
/* v as st() then ld() would give it back (the pointer only picks the type) */
__device__ __forceinline__ float as_stored(const float *, float v)
{
    return v;
}
__device__ __forceinline__ float as_stored(const bf16 *, float v)
{
    return __bfloat162float(__float2bfloat16_rn(v));
}

/* Sixteen bytes of activations at once, from and to a 16-byte aligned
 * address (vec_aligned): ACT_VEC(A) elements, 8 bfloat16 or 4 floats, as
 * floats, written back each rounded as st() rounds it. A thread has eight
 * times the bytes of a bfloat16 ld() in flight: the element-wise kernels
 * are bound by how many bytes are in flight, not by their arithmetic. */
#define ACT_VEC(A) ((int)(16 / sizeof(A)))
__device__ __forceinline__ bool vec_aligned(const void *p)
{
    return (uintptr_t)p % 16 == 0;
}
__device__ __forceinline__ void ld_vec(const float *p, size_t i, float v[4])
{
    const float4 x = *(const float4 *)(p + i);
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
}
__device__ __forceinline__ void ld_vec(const bf16 *p, size_t i, float v[8])
{
    const uint4 x = *(const uint4 *)(p + i);
    const unsigned w[4] = {x.x, x.y, x.z, x.w};
    for (int k = 0; k < 4; k++)
        v[2 * k] = __uint_as_float(w[k] << 16), v[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
}
__device__ __forceinline__ void st_vec(float *p, size_t i, const float v[4])
{
    *(float4 *)(p + i) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void st_vec(bf16 *p, size_t i, const float v[8])
{
    unsigned w[4];
    for (int k = 0; k < 4; k++)
        w[k] = (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * k])) |
               (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * k + 1])) << 16;
    *(uint4 *)(p + i) = make_uint4(w[0], w[1], w[2], w[3]);
}

#define ACT_CALL(be, stmt)                                                                                             \
    do {                                                                                                               \
        if ((be)->act16) {                                                                                             \
            typedef bf16 A;                                                                                            \
            stmt;                                                                                                      \
        } else {                                                                                                       \
            typedef float A;                                                                                           \
            stmt;                                                                                                      \
        }                                                                                                              \
    } while (0)

/* A loop over a template's constant to unroll (register arrays stay in
 * registers); the emulator's C++ compiler unrolls what it likes. */
#ifdef TFTX_EMULATED_CUDA
#define CUDA_UNROLL
#else
#define CUDA_UNROLL _Pragma("unroll")
#endif

#define CUDA_FOR(i, n)                                                                                                 \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* A loop over n elements of A by vectors (ld_vec, st_vec): vec(i) for
 * i = 0, N, 2N, ... below n rounded down to N = ACT_VEC(A), then one(i)
 * for each element after those; every element by one() when !aligned.
 * This thread takes the vectors (and then the elements) first,
 * first + step, ...: the grid's threads (VEC_GRID; launch with
 * cuda_vec_blocks) or a block's. */
template <class A, class Vec, class One>
__device__ __forceinline__ void vec_for(size_t n, bool aligned, size_t first, size_t step, Vec vec, One one)
{
    const size_t nv = aligned ? n / ACT_VEC(A) : 0;
    for (size_t j = first; j < nv; j += step) vec(j * ACT_VEC(A));
    for (size_t k = first; k < n - nv * ACT_VEC(A); k += step) one(nv * ACT_VEC(A) + k);
}
#define VEC_GRID (blockIdx.x * (size_t)blockDim.x + threadIdx.x), ((size_t)gridDim.x * blockDim.x)
static inline unsigned cuda_vec_blocks(const cuda_backend *be, size_t n)
{
    const size_t v = be->act16 ? 8 : 4; /* ACT_VEC of the instance's activations */
    return cuda_blocks((n + v - 1) / v);
}

/* Sum and maximum over the 32 lanes of a warp (every lane gets the result). */
__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Dropout group g: elements 4g..4g+3 of the stream, one Philox call
 * (drawing them one by one would make four, and a call is about a hundred
 * integer instructions: the masks of GPT-2 124M's attention are 3.6
 * billion elements a step). op(i0 + e - lo, f) for each of them, e, in
 * [lo, hi), f its keep factor: 1/(1-p) where tftx_uniform_at(seed,
 * stream, e) >= p (the draw of every backend), else 0; 1 when !dropping. */
__device__ __forceinline__ void drop_factors(float f[4], uint64_t g, const tftx_dropout &drop, uint64_t stream,
                                             float scale, int dropping)
{
    if (!dropping) {
        f[0] = f[1] = f[2] = f[3] = 1.0f;
        return;
    }
    const tftx_u32x4 w = tftx_philox(g, stream, drop.seed);
    CUDA_UNROLL
    for (int k = 0; k < 4; k++) f[k] = tftx_u24(w.v[k]) >= drop.p ? scale : 0.0f;
}
template <class Op>
__device__ __forceinline__ void drop_group(uint64_t g, uint64_t lo, uint64_t hi, size_t i0, const tftx_dropout &drop,
                                           uint64_t stream, float scale, int dropping, Op &op)
{
    float f[4];
    drop_factors(f, g, drop, stream, scale, dropping);
    for (int k = 0; k < 4; k++) {
        const uint64_t e = 4 * g + (uint64_t)k;
        if (e >= lo && e < hi) op(i0 + (size_t)(e - lo), f[k]);
    }
}

/* op(i, f) for the elements i < n of a tensor whose dropout mask starts
 * at `offset` of the stream (rows at their own places when drop.row is
 * set, backend.h), a group of four elements at a time (drop_group).
 * Thread `first` of `step` threads takes groups first, first+step, ...:
 * a grid's threads (DROP_GRID_FIRST, DROP_GRID_STEP), or a warp's lanes
 * over a row. */
template <class Op>
__device__ __forceinline__ void drop_for(size_t n, uint64_t offset, uint64_t first, uint64_t step,
                                         const tftx_dropout &drop, uint64_t stream, float scale, int dropping, Op op)
{
    if (dropping && drop.row) { /* row r of drop.row elements from offset + r*row_stride */
        const uint64_t L = drop.row, per_row = (L + 7) / 4; /* the groups a row can touch */
        for (uint64_t t = first; t < n / L * per_row; t += step) {
            const uint64_t r = t / per_row, start = offset + r * drop.row_stride, g = (start >> 2) + t % per_row;
            if (4 * g < start + L) drop_group(g, start, start + L, (size_t)(r * L), drop, stream, scale, 1, op);
        }
        return;
    }
    for (uint64_t g = (offset >> 2) + first; 4 * g < offset + n; g += step)
        drop_group(g, offset, offset + n, 0, drop, stream, scale, dropping, op);
}

/* drop_for by vectors of V = ACT_VEC(A) elements (ld_vec, st_vec):
 * vec(i, f) for i = 0, V, 2V, ... below n rounded down to V, f[V] the
 * factors of elements i .. i+V-1 (V/4 Philox calls), then op(i, f) for
 * each element after those. All by drop_for (op) when !aligned, or when a
 * vector's mask would not start a group of four: an offset or a row's
 * stride (drop.row) off a multiple of 4, or rows not a multiple of V. The
 * same factors as drop_for's: the same bits. */
template <class A, class Vec, class Op>
__device__ __forceinline__ void drop_vec_for(size_t n, bool aligned, uint64_t offset, uint64_t first, uint64_t step,
                                             const tftx_dropout &drop, uint64_t stream, float scale, int dropping,
                                             Vec vec, Op op)
{
    constexpr int V = ACT_VEC(A);
    const bool rows = dropping && drop.row;
    const bool whole = offset % 4 == 0 && (!rows || (drop.row % V == 0 && drop.row_stride % 4 == 0));
    const size_t nv = aligned && whole ? n / V : 0;
    for (size_t j = first; j < nv; j += step) {
        const size_t i = j * V;
        const uint64_t at = offset + (rows ? i / drop.row * drop.row_stride + i % drop.row : i); /* i's mask element */
        float f[V];
        CUDA_UNROLL
        for (int q = 0; q < V / 4; q++) drop_factors(f + 4 * q, (at >> 2) + q, drop, stream, scale, dropping);
        vec(i, f);
    }
    const size_t done = nv * V; /* n when rows were vectors: nothing left */
    drop_for(n - done, offset + done, first, step, drop, stream, scale, dropping,
             [&](size_t i, float f) { op(done + i, f); });
}

/* out = a + b * f over the vector at i (drop_vec_for's vec, f its
 * factors): a residual sum with its branch's dropout */
template <class A>
__device__ __forceinline__ void add_dropped_vec(A *out, const A *a, const A *b, size_t i, const float *f)
{
    float x[ACT_VEC(A)], y[ACT_VEC(A)];
    ld_vec(a, i, x);
    ld_vec(b, i, y);
    CUDA_UNROLL
    for (int k = 0; k < ACT_VEC(A); k++) x[k] += y[k] * f[k];
    st_vec(out, i, x);
}
#define DROP_GRID_FIRST (blockIdx.x * (uint64_t)blockDim.x + threadIdx.x)
#define DROP_GRID_STEP ((uint64_t)gridDim.x * blockDim.x)

/* Blocks for drop_for over n elements from offset, a group a thread
 * (rows: a few more, grid-stride). */
static inline unsigned drop_blocks(size_t n, uint64_t offset)
{
    return cuda_blocks((size_t)(((offset + n + 3) >> 2) - (offset >> 2)));
}

/* Blocks for drop_vec_for: a vector a thread where the offset lets the
 * vectors start groups, else as drop_blocks (grid-stride beyond). */
static inline unsigned drop_vec_blocks(const cuda_backend *be, size_t n, uint64_t offset)
{
    return offset % 4 == 0 ? cuda_vec_blocks(be, n) : drop_blocks(n, offset);
}

/* ------------------------------------------------ column sums, one kernel
 *
 * out[c] += sum_{r<N} f(r, c) for c < C, with f giving two values at once
 * (float2: a layer norm's weight and bias gradients; bias gradients use x
 * only). Blocks of 32 columns x 8 row-lanes, chunk p of the rows per grid
 * row; lane ty adds rows r0+ty, r0+ty+8, ... in order, then the 8 lanes
 * are added in order into partial[p][c]. Then colsum_finish: the last
 * block of the grid to finish adds partial[0..P-1][c] in order for every
 * column. The grid depends on N and C only, so the result is the same
 * every run. */
#define COLSUM_LANES 8
#define COLSUM_LOADS 8 /* rows (chunks' sums in the last block) loaded at a time */
static inline int colsum_chunks(int N, int C)
{
    int col_blocks = (C + 31) / 32;
    int p = 1024 / col_blocks; /* a few waves of blocks on a large GPU */
    int most = (N + 63) / 64;  /* at least 64 rows a chunk */
    if (p > most) p = most;
    return p < 1 ? 1 : p;
}

/* The end of a kernel whose blocks each wrote their part of partial (P
 * rows of C column sums, every row written by the time every block is
 * here): the last block to arrive adds the P rows in order into out_x and
 * out_y (either NULL; written, 0.0f + the sum, when !add). *ticket
 * (be->ticket) counts the blocks that have arrived and is 0 again when
 * the kernel ends: kernels on the one stream never overlap, so they all
 * share it. Every thread of every block must call it. */
__device__ __forceinline__ void colsum_finish(float *out_x, float *out_y, const float2 *partial, int P, int C,
                                              unsigned *ticket, int add)
{
    __shared__ int last;
    __threadfence(); /* this thread's partials, before the block counts itself */
    __syncthreads();
    const int tid = threadIdx.y * blockDim.x + threadIdx.x, threads = blockDim.x * blockDim.y;
    if (tid == 0) last = atomicAdd(ticket, 1u) == gridDim.x * gridDim.y - 1;
    __syncthreads();
    if (!last) return;
    for (int c = tid; c < C; c += threads) {
        float2 t = __ldcg(partial + c); /* past L1: other blocks wrote them */
        for (int p0 = 1; p0 < P; p0 += COLSUM_LOADS) {
            float2 v[COLSUM_LOADS]; /* loaded together, added in order: one wait for memory, not one a chunk */
            CUDA_UNROLL
            for (int u = 0; u < COLSUM_LOADS; u++)
                v[u] = p0 + u < P ? __ldcg(partial + (size_t)(p0 + u) * C + c) : make_float2(0.0f, 0.0f);
            CUDA_UNROLL
            for (int u = 0; u < COLSUM_LOADS && p0 + u < P; u++) t.x += v[u].x, t.y += v[u].y;
        }
        if (out_x) out_x[c] = (add ? out_x[c] : 0.0f) + t.x;
        if (out_y) out_y[c] = (add ? out_y[c] : 0.0f) + t.y;
    }
    if (tid == 0) *ticket = 0;
}

template <class F>
static __global__ void colsum_kernel(float *out_x, float *out_y, float2 *partial, unsigned *ticket, F f, int N, int C,
                                     int rows_per_chunk, int add)
{
    __shared__ float2 sh[COLSUM_LANES][33];
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx, p = blockIdx.y;
    const int r0 = p * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
    float2 s = make_float2(0.0f, 0.0f);
    if (c < C)
        for (int r = r0 + ty; r < r1; r += COLSUM_LANES * COLSUM_LOADS) {
            float2 v[COLSUM_LOADS]; /* COLSUM_LOADS rows read together, added in order */
            CUDA_UNROLL
            for (int u = 0; u < COLSUM_LOADS; u++)
                v[u] = r + u * COLSUM_LANES < r1 ? f(r + u * COLSUM_LANES, c) : make_float2(0.0f, 0.0f);
            CUDA_UNROLL
            for (int u = 0; u < COLSUM_LOADS && r + u * COLSUM_LANES < r1; u++) s.x += v[u].x, s.y += v[u].y;
        }
    sh[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && c < C) {
        float2 t = sh[0][tx];
        for (int k = 1; k < COLSUM_LANES; k++) t.x += sh[k][tx].x, t.y += sh[k][tx].y;
        partial[(size_t)p * C + c] = t;
    }
    colsum_finish(out_x, out_y, partial, gridDim.y, C, ticket, add);
}

/* f for a plain column sum of a (N, C) matrix: a bias's gradient, the
 * segment-0 row of an embedding table when no segments are given. */
template <class A> struct col_of {
    const A *x;
    int C;
    __device__ float2 operator()(int r, int c) const
    {
        return make_float2(ld(x, (size_t)r * C + c), 0.0f);
    }
};

/* out_x[c] (+)= sum_r f(r,c).x, out_y[c] (+)= sum_r f(r,c).y (either
 * NULL; written when !add) */
template <class F> static void colsum(cuda_backend *be, float *out_x, float *out_y, F f, int N, int C, int add = 1)
{
    if (C <= 0 || (!out_x && !out_y) || (N <= 0 && add)) return;
    if (N < 0) N = 0; /* no rows, written: zeros */
    const int P = colsum_chunks(N, C), R = (N + P - 1) / P;
    float2 *partial = (float2 *)cuda_work(be, (size_t)P * C * sizeof(float2));
    if (!partial) return;
    TFTX_CUDA_LAUNCH(dim3((C + 31) / 32, P), dim3(32, COLSUM_LANES), be->stream, colsum_kernel)
    (out_x, out_y, partial, be->ticket, f, N, C, R, add);
    CUDA_LAUNCHED(be);
}

#endif /* TFTX_CUDA_DEVICE_CUH */
