/*
 * tftx/optimizer_cuda.cuh -- an optimizer's fused CUDA step from its rule.
 *
 * An optimizer plugin writes its update once, as a TFTX_OPT_RULE function
 * (tftx/optimizer.h), in a header that its C file and a .cu file both
 * include. In the .cu file, compiled by nvcc into the same shared object,
 *
 *   TFTX_OPT_CUDA_STEP(fn, rule, NSLOTS)
 *
 * defines the C-linkage function
 *
 *   tftx_status fn(const void *self, const tftx_opt_step *st, size_t n,
 *                  float *w, const float *g, float *const *slots,
 *                  void *stream, tftx_error *err)
 *
 * with the signature of tftx_optimizer_ops.step_cuda: one kernel launch
 * on `stream` (a cudaStream_t) over elements [0, n), each thread loading
 * w[i], g[i] and the NSLOTS slot values, applying `rule` and storing w and
 * the slots back. The step's scalars travel by value as kernel arguments.
 * It returns without waiting for the kernel (the backend's stream orders
 * what follows); a launch error comes back as TFTX_ERR_INTERNAL.
 *
 * The C file declares fn with TFTX_OPT_CUDA_DECLARE(fn) and sets
 * .step_cuda (directly, or through a function that picks among several
 * rules by the instance's settings).
 *
 * Built with nvcc --fmad=false (and its default IEEE division and square
 * root), the kernel does the same float operations as the CPU loop, so the
 * two steps agree bit for bit.
 */
#ifndef TFTX_OPTIMIZER_CUDA_CUH
#define TFTX_OPTIMIZER_CUDA_CUH

#include <cuda_runtime_api.h>
#include <stdio.h>

#include "optimizer.h"

/* The slot pointers, by value into the kernel. */
typedef struct tftx_opt_cuda_slots {
    float *p[TFTX_OPT_MAX_SLOTS];
} tftx_opt_cuda_slots;

#define TFTX_OPT_CUDA_THREADS 256
#define TFTX_OPT_CUDA_MAX_BLOCKS 65536u /* a grid-stride loop beyond */

#define TFTX_OPT_CUDA_STEP(fn, rule, NSLOTS)                                                                  \
    static __global__ void fn##_kernel(tftx_opt_step st, size_t n, float *w, const float *g,                  \
                                       tftx_opt_cuda_slots sp)                                                \
    {                                                                                                         \
        for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;                                 \
             i += (size_t)gridDim.x * blockDim.x) {                                                           \
            float s[(NSLOTS) > 0 ? (NSLOTS) : 1];                                                             \
            for (int k = 0; k < (NSLOTS); k++) s[k] = sp.p[k][i];                                             \
            float wi = w[i];                                                                                  \
            rule(&wi, g[i], s, &st);                                                                          \
            w[i] = wi;                                                                                        \
            for (int k = 0; k < (NSLOTS); k++) sp.p[k][i] = s[k];                                             \
        }                                                                                                     \
    }                                                                                                         \
    extern "C" tftx_status fn(const void *self, const tftx_opt_step *st, size_t n, float *w, const float *g, \
                              float *const *slots, void *stream, tftx_error *err)                             \
    {                                                                                                         \
        (void)self;                                                                                           \
        if (n == 0) return TFTX_OK;                                                                           \
        tftx_opt_cuda_slots sp = {};                                                                          \
        for (int k = 0; k < (NSLOTS); k++) sp.p[k] = slots[k];                                                \
        size_t blocks = (n + TFTX_OPT_CUDA_THREADS - 1) / TFTX_OPT_CUDA_THREADS;                              \
        if (blocks > TFTX_OPT_CUDA_MAX_BLOCKS) blocks = TFTX_OPT_CUDA_MAX_BLOCKS;                             \
        fn##_kernel<<<(unsigned)blocks, TFTX_OPT_CUDA_THREADS, 0, (cudaStream_t)stream>>>(*st, n, w, g, sp);  \
        cudaError_t rc = cudaGetLastError();                                                                  \
        if (rc == cudaSuccess) return TFTX_OK;                                                                \
        err->status = TFTX_ERR_INTERNAL;                                                                      \
        snprintf(err->message, sizeof err->message, "%s: CUDA kernel launch failed: %s", #fn,                 \
                 cudaGetErrorString(rc));                                                                     \
        return TFTX_ERR_INTERNAL;                                                                             \
    }

#endif /* TFTX_OPTIMIZER_CUDA_CUH */
