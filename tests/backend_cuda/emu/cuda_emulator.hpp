/*
 * cuda_emulator.hpp -- runs CUDA kernels on the CPU, so their logic is
 * tested where there is no GPU. Included before a kernel source compiled
 * by a C++ compiler (the emulated plugins force-include it; the fused
 * attention test includes it first); launches go through
 * TFTX_CUDA_LAUNCH (tftx/cuda_launch.cuh), which calls tftx_emu_kernel.
 *
 * What a kernel may use: threadIdx, blockIdx, blockDim, gridDim (x and y),
 * static __shared__ arrays, __syncthreads(), __threadfence(), atomicAdd on
 * unsigned, __ldcg, __syncwarp, __fmul_rn, __ballot_sync, __ffs, __shfl_sync
 * and __shfl_xor_sync (on 4- or 8-byte values), min and max, __float_as_uint
 * and __uint_as_float,
 * emu_mma_tf32 and emu_mma_bf16 (the m16n8k8 tf32 and m16n8k16 bf16
 * tensor-core products, fragments laid out as the PTX ISA specifies),
 * emu_ldmatrix_x4 (ldmatrix .x4, plain or .trans) and emu_cp_async with
 * its commit and wait (cp.async, the copy done at the wait that covers it,
 * so a read before that wait sees the old bytes); the fused attention
 * header routes its inline PTX here under TFTX_EMULATED_CUDA. Every thread of a block must reach every barrier and
 * warp operation the same number of times (no thread returns early while
 * others wait): the emulator stops with a message otherwise.
 *
 * How: each CUDA thread of a block is a fiber (ucontext) with its own stack;
 * the fibers of a block run one at a time, each until its next barrier, so
 * a round of the scheduler moves every thread to the next barrier. Warp
 * operations are barriers too: every lane posts its operands, all lanes
 * read what they need. Blocks run one after another, so a kernel's
 * __shared__ arrays (made `static` here) serve each block in turn.
 *
 * emu_tf32_round chooses what the tensor-core product does with its fp32
 * inputs: 1 rounds them to tf32 (10-bit mantissa, to nearest, ties away, as
 * cvt.rna.tf32.f32), 0 keeps them whole, so a test can check the kernel's
 * logic to fp32 rounding and, separately, at tf32.
 */
#ifndef TFTX_TESTS_CUDA_EMULATOR_HPP
#define TFTX_TESTS_CUDA_EMULATOR_HPP

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>
#include <type_traits>

#include "include/cuda_runtime_api.h"

#define TFTX_EMULATED_CUDA 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct emu_dim3 {
    unsigned x, y, z;
};
extern emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
extern int emu_tf32_round;

void __syncthreads(void);
/* the calling thread's lane in its warp */
unsigned emu_lane(void);
/* the value `v` of lane src_lane of the calling thread's warp */
uint64_t emu_shfl(uint64_t v, int src_lane);
template <class T> static inline T __shfl_sync(unsigned mask, T v, int src_lane)
{
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffle of 4 or 8 bytes");
    (void)mask;
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = emu_shfl(bits, src_lane);
    memcpy(&v, &bits, sizeof v);
    return v;
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask)
{
    return __shfl_sync(mask, v, (int)(emu_lane() ^ (unsigned)lane_mask));
}
/* bit i: lane i's pred */
unsigned emu_ballot(int pred);
static inline unsigned __ballot_sync(unsigned mask, int pred)
{
    (void)mask;
    return emu_ballot(pred);
}
static inline int __ffs(unsigned x)
{
    return __builtin_ffs((int)x);
}
/* a warp barrier: every lane's writes before it are seen after it */
static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    (void)__shfl_sync(mask, 0u, 0);
}
/* d (16x8, 4 per lane) += a (16x8, tf32, 4 per lane) * b (8x8, tf32, 2 per lane) */
void emu_mma_tf32(float d[4], const uint32_t a[4], const uint32_t b[2]);
/* d (16x8) += a (16x16, 8 bf16 per lane, two a register) * b (16x8, 4 per lane) */
void emu_mma_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]);
/* ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: lane L gives the
 * address of row L%8 of 8x8 matrix L/8 (16 bytes, 16-byte aligned); r[i]
 * gets matrix i's (row L/4, columns 2(L%4), 2(L%4)+1), or with trans its
 * (rows 2(L%4), 2(L%4)+1, column L/4), the lower in the low half. */
void emu_ldmatrix_x4(uint32_t r[4], const void *row, int trans);
/* cp.async of `bytes` bytes to shared dst: src_bytes of them from src, the
 * rest zeros. Queued by the calling thread; emu_cp_async_commit closes a
 * group of them; emu_cp_async_wait(n) does the copies of every closed
 * group but the n newest, as cp.async.wait_group n. A block that ends with
 * copies never done stops with a message. */
void emu_cp_async(void *dst, const void *src, unsigned bytes, unsigned src_bytes);
void emu_cp_async_commit(void);
void emu_cp_async_wait(int n);
/* cvt.rna.tf32.f32, or the bits unchanged when emu_tf32_round is 0 */
uint32_t emu_to_tf32(float x);
/* float to bfloat16, to nearest, ties to even (finite inputs) */
uint16_t emu_to_bf16(float x);

static inline int min(int a, int b)
{
    return a < b ? a : b;
}
static inline int max(int a, int b)
{
    return a > b ? a : b;
}
/* Blocks run one after another and a block's threads one at a time,
 * switching only at barriers: an atomic is a plain update, a fence and a
 * load past L1 nothing special. */
static inline unsigned atomicAdd(unsigned *p, unsigned v)
{
    unsigned old = *p;
    *p = old + v;
    return old;
}
static inline void __threadfence(void) {}
template <class T> static inline T __ldcg(const T *p)
{
    return *p;
}
static inline float __fmul_rn(float a, float b)
{
    return a * b;
}
static inline unsigned __float_as_uint(float x)
{
    unsigned u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float __uint_as_float(unsigned u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Run `kernel` (a call of the kernel with its arguments) over a grid of
 * grid.x * grid.y blocks of block.x * block.y threads (at most 1024), now. */
void emu_launch(dim3 grid, dim3 block, const std::function<void()> &kernel);

/* The runtime's side (emu_runtime.cc): run `work` on `stream` (now, or
 * into the graph being captured); a bad launch shape is the next
 * cudaGetLastError(). */
void emu_stream_launch(cudaStream_t stream, dim3 grid, dim3 block, std::function<void()> work);

/* What TFTX_CUDA_LAUNCH(grid, block, stream, kernel) expands to: an object
 * whose call with the kernel's arguments copies them and submits the
 * launch. */
template <class K> struct emu_kernel_call {
    dim3 grid, block;
    cudaStream_t stream;
    K kernel;
    template <class... A> void operator()(A... args) const
    {
        K k = kernel;
        emu_stream_launch(stream, grid, block, [k, args...]() { k(args...); });
    }
};
template <class K> static inline emu_kernel_call<K> tftx_emu_kernel(dim3 grid, dim3 block, cudaStream_t stream, K k)
{
    return emu_kernel_call<K>{grid, block, stream, k};
}

#endif /* TFTX_TESTS_CUDA_EMULATOR_HPP */
