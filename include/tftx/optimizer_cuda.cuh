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
 *   tftx_status fn(const void *self, const tftx_opt_step *st,
 *                  const tftx_opt_range *ranges, size_t n_ranges,
 *                  float *w, const float *g, float *const *slots,
 *                  void *stream, tftx_error *err)
 *
 * with the signature of tftx_optimizer_ops.step_cuda: one kernel launch
 * on `stream` (a cudaStream_t) for the whole step, one block per range
 * (ranges in device memory, none longer than TFTX_OPT_CUDA_RANGE
 * elements), each thread loading w[i], g[i] and the NSLOTS slot values
 * of TFTX_OPT_CUDA_ILP elements (its loads in flight together), then
 * applying `rule` to each with its range's group st[group] (taken by a
 * branch per group, with no copy of the groups in local memory) and
 * storing w and the slots back. The groups' scalars travel by value as kernel arguments.
 * It returns without waiting for the kernel (the backend's stream orders
 * what follows); a launch error comes back as TFTX_ERR_INTERNAL.
 *
 * The C file declares fn with TFTX_OPT_CUDA_DECLARE(fn) and sets
 * .step_cuda (directly, or through a function that picks among several
 * rules by the instance's settings).
 *
 * The launch goes through TFTX_CUDA_LAUNCH (tftx/cuda_launch.cuh), so the
 * same .cu file also builds, with g++, against the CUDA emulator of this
 * project's tests (tests/backend_cuda/emu), where the step runs on the CPU.
 *
 * Built with nvcc --fmad=false (and its default IEEE division and square
 * root), the kernel does the same float operations as the CPU loop, so the
 * two steps agree bit for bit.
 */
#ifndef TFTX_OPTIMIZER_CUDA_CUH
#define TFTX_OPTIMIZER_CUDA_CUH

#include <cuda_runtime_api.h>
#include <stdio.h>

#include "cuda_launch.cuh"
#include "optimizer.h"

/* The slot pointers, by value into the kernel. */
typedef struct tftx_opt_cuda_slots {
    float *p[TFTX_OPT_MAX_SLOTS];
} tftx_opt_cuda_slots;

/* The groups' scalars, by value into the kernel. */
typedef struct tftx_opt_cuda_groups {
    tftx_opt_step st[TFTX_OPT_GROUPS];
} tftx_opt_cuda_groups;

#define TFTX_OPT_CUDA_THREADS 256 /* each thread of a block: TFTX_OPT_CUDA_RANGE / 256 = 32 elements at most */
#define TFTX_OPT_CUDA_ILP 4       /* elements a thread loads before it updates them (loads in flight) */

/* The kernel takes its range's group by a constant index (a branch per
 * group): indexed at run time, the groups' argument would be copied to
 * local memory by every thread first. */
static_assert(TFTX_OPT_GROUPS == 2, "a branch per group");
#define TFTX_OPT_CUDA_STEP(fn, rule, NSLOTS)                                                                           \
    static __device__ __forceinline__ void fn##_range(const tftx_opt_step &st, size_t offset, size_t n, float *w,      \
                                                      const float *g, const tftx_opt_cuda_slots &sp)                   \
    {                                                                                                                  \
        const size_t end = offset + n, step = blockDim.x;                                                              \
        for (size_t i0 = offset + threadIdx.x; i0 < end; i0 += TFTX_OPT_CUDA_ILP * step) {                             \
            float wv[TFTX_OPT_CUDA_ILP], gv[TFTX_OPT_CUDA_ILP], s[TFTX_OPT_CUDA_ILP][(NSLOTS) > 0 ? (NSLOTS) : 1];     \
            for (int u = 0; u < TFTX_OPT_CUDA_ILP; u++) {                                                              \
                const size_t i = i0 + u * step;                                                                        \
                wv[u] = i < end ? w[i] : 0.0f, gv[u] = i < end ? g[i] : 0.0f;                                          \
                for (int k = 0; k < (NSLOTS); k++) s[u][k] = i < end ? sp.p[k][i] : 0.0f;                              \
            }                                                                                                          \
            for (int u = 0; u < TFTX_OPT_CUDA_ILP; u++) {                                                              \
                const size_t i = i0 + u * step;                                                                        \
                if (i >= end) break;                                                                                   \
                rule(&wv[u], gv[u], s[u], &st);                                                                        \
                w[i] = wv[u];                                                                                          \
                for (int k = 0; k < (NSLOTS); k++) sp.p[k][i] = s[u][k];                                               \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    static __global__ void fn##_kernel(tftx_opt_cuda_groups gr, const tftx_opt_range *ranges, float *w,                \
                                       const float *g, tftx_opt_cuda_slots sp)                                         \
    {                                                                                                                  \
        const tftx_opt_range r = ranges[blockIdx.x];                                                                   \
        if (r.group == 0)                                                                                              \
            fn##_range(gr.st[0], r.offset, r.n, w, g, sp);                                                             \
        else                                                                                                           \
            fn##_range(gr.st[1], r.offset, r.n, w, g, sp);                                                             \
    }                                                                                                                  \
    extern "C" tftx_status fn(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges,                 \
                              size_t n_ranges, float *w, const float *g, float *const *slots, void *stream,            \
                              tftx_error *err)                                                                         \
    {                                                                                                                  \
        (void)self;                                                                                                    \
        if (n_ranges == 0) return TFTX_OK;                                                                             \
        tftx_opt_cuda_slots sp = {};                                                                                   \
        for (int k = 0; k < (NSLOTS); k++) sp.p[k] = slots[k];                                                         \
        tftx_opt_cuda_groups gr;                                                                                       \
        for (int k = 0; k < TFTX_OPT_GROUPS; k++) gr.st[k] = st[k];                                                    \
        cudaError_t rc = n_ranges > 0x7fffffffu ? cudaErrorInvalidConfiguration : cudaSuccess;                         \
        if (rc == cudaSuccess) {                                                                                       \
            TFTX_CUDA_LAUNCH((unsigned)n_ranges, TFTX_OPT_CUDA_THREADS, (cudaStream_t)stream, fn##_kernel)             \
            (gr, ranges, w, g, sp);                                                                                    \
            rc = cudaGetLastError();                                                                                   \
        }                                                                                                              \
        if (rc == cudaSuccess) return TFTX_OK;                                                                         \
        err->status = TFTX_ERR_INTERNAL;                                                                               \
        snprintf(err->message, sizeof err->message, "%s: CUDA kernel launch failed: %s", #fn, cudaGetErrorString(rc)); \
        return TFTX_ERR_INTERNAL;                                                                                      \
    }

#endif /* TFTX_OPTIMIZER_CUDA_CUH */
