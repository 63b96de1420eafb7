/*
 * cuda_device.cuh -- what the cuda backend's .cu files share: launch shapes,
 * deterministic warp and block reductions, the dropout factor.
 *
 * Reductions here always combine the same partial sums in the same order
 * (a fixed shuffle tree over a fixed assignment of elements to lanes), so
 * they give the same bits on every run; they differ from the CPU backend's
 * order, so results agree with it to rounding, not bit for bit.
 */
#ifndef TFTX_CUDA_DEVICE_CUH
#define TFTX_CUDA_DEVICE_CUH

#include <math.h>
#include <tftx/random.h>

#include "cuda.h"

#define CUDA_THREADS 256          /* threads per block of the element-wise kernels */
#define CUDA_ROWS_PER_BLOCK 8     /* warp-per-row kernels: 8 warps of 32 */
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

#define CUDA_FOR(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

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

/* Keep factor of dropout element i: 1/(1-p) when uniform(seed, stream, i)
 * >= p (tftx_uniform_at, the same draw as every backend), else 0. */
__device__ __forceinline__ float dropout_factor(uint64_t seed, uint64_t stream, uint64_t i, float p, float scale)
{
    return tftx_uniform_at(seed, stream, i) >= p ? scale : 0.0f;
}

#endif /* TFTX_CUDA_DEVICE_CUH */
