/*
 * tftx/cuda_launch.cuh -- how plugins launch CUDA kernels.
 *
 *   TFTX_CUDA_LAUNCH(grid, block, stream, kernel)(arguments...);
 *
 * is `kernel<<<grid, block, 0, stream>>>(arguments...)` under nvcc. Compiled
 * by a C++ compiler with TFTX_EMULATED_CUDA defined (tests/cuda_emu: a CUDA
 * runtime, cuBLAS and kernel emulator for machines without a GPU), it
 * hands the kernel and a copy of its arguments to that emulator instead,
 * which runs it on the CPU, or records it while the stream is being
 * captured into a graph. Writing launches this way lets one source be
 * tested both ways. `kernel` comes last because a template's arguments
 * may contain commas. Kernels use static __shared__ arrays only (no
 * dynamic shared memory argument).
 */
#ifndef TFTX_CUDA_LAUNCH_CUH
#define TFTX_CUDA_LAUNCH_CUH

#ifdef TFTX_EMULATED_CUDA
#define TFTX_CUDA_LAUNCH(grid, block, stream, ...)                                                                     \
    tftx_emu_kernel((grid), (block), (stream), [](auto... tftx_arg_) { __VA_ARGS__(tftx_arg_...); })
#else
#define TFTX_CUDA_LAUNCH(grid, block, stream, ...) __VA_ARGS__<<<(grid), (block), 0, (stream)>>>
#endif

#endif /* TFTX_CUDA_LAUNCH_CUH */
