/*
 * cuda_emulator.hpp -- runs CUDA kernels written for plugins/backends/cuda
 * on the CPU, so their logic is tested where there is no GPU.
 *
 * What a kernel may use: threadIdx, blockIdx, blockDim, gridDim (x and y),
 * __shared__ arrays declared in the kernel, __syncthreads(), and the
 * warp-level operations the kernel header routes through
 * TFTX_EMULATED_CUDA: __shfl_sync, __shfl_xor_sync, emu_mma_tf32 and
 * emu_mma_bf16 (the m16n8k8 tf32 and m16n8k16 bf16 tensor-core products,
 * fragments laid out as the PTX ISA specifies). Every thread of a block must reach every barrier and warp
 * operation the same number of times (no thread returns early): the
 * emulator stops with a message otherwise.
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
#include <ucontext.h>

#include <functional>
#include <vector>

#define TFTX_EMULATED_CUDA 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct emu_dim3 {
    unsigned x, y, z;
};
extern emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
extern int emu_tf32_round;

void __syncthreads(void);
float __shfl_sync(unsigned mask, float v, int src_lane);
float __shfl_xor_sync(unsigned mask, float v, int lane_mask);
/* d (16x8, 4 per lane) += a (16x8, tf32, 4 per lane) * b (8x8, tf32, 2 per lane) */
void emu_mma_tf32(float d[4], const uint32_t a[4], const uint32_t b[2]);
/* d (16x8) += a (16x16, 8 bf16 per lane, two a register) * b (16x8, 4 per lane) */
void emu_mma_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]);
/* cvt.rna.tf32.f32, or the bits unchanged when emu_tf32_round is 0 */
uint32_t emu_to_tf32(float x);
/* float to bfloat16, to nearest, ties to even (finite inputs) */
uint16_t emu_to_bf16(float x);

/* Run `kernel` (a call of the kernel with its arguments) over a grid of
 * grid_x * grid_y blocks of `threads` threads. */
void emu_launch(unsigned grid_x, unsigned grid_y, unsigned threads, const std::function<void()> &kernel);

#endif /* TFTX_TESTS_CUDA_EMULATOR_HPP */
