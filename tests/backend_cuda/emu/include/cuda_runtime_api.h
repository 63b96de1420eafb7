/*
 * cuda_runtime_api.h (emulated) -- the part of the CUDA runtime API that the
 * cuda backend and the optimizers' CUDA steps use, implemented on the CPU
 * by emu_runtime.cc (library tftx_cuda_emu). Only the emulated plugins of
 * tests/backend_cuda see this header: it stands in for the toolkit's.
 *
 * "Device" memory is host memory from the emulator's allocator, filled
 * with 0xFF bytes (NaN floats) as it comes, so code that reads memory it
 * never wrote shows up. Streams run their work at once, in issue order,
 * unless they are being captured: then kernels, cuBLAS calls, memsets and
 * device-to-device copies are recorded into a graph and run on each
 * cudaGraphLaunch, and what the real runtime refuses during a capture
 * (synchronising, allocating, freeing, copying to or from host memory)
 * fails with cudaErrorStreamCaptureUnsupported and spoils the capture.
 *
 * TFTX_EMU_DEVICE_MEMORY (bytes, default 16 GiB) is the device's size:
 * allocations past it fail with cudaErrorMemoryAllocation, as on a full GPU.
 */
#ifndef TFTX_EMU_CUDA_RUNTIME_API_H
#define TFTX_EMU_CUDA_RUNTIME_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureWrongThread = 908
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
} cudaMemcpyKind;

typedef enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2
} cudaStreamCaptureMode;

typedef enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2
} cudaStreamCaptureStatus;

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;
typedef struct CUgraphNode_st *cudaGraphNode_t;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
};

typedef struct float2 {
    float x, y;
} float2;

static inline float2 make_float2(float x, float y)
{
    float2 r = {x, y};
    return r;
}

/* CUDA's 16-byte vector types (aligned as CUDA's) and their make_ */
#define EMU_VEC4(T, name)                                                                                              \
    typedef struct __attribute__((aligned(16))) name {                                                                 \
        T x, y, z, w;                                                                                                  \
    } name;                                                                                                            \
    static inline name make_##name(T x, T y, T z, T w)                                                                 \
    {                                                                                                                  \
        name r = {x, y, z, w};                                                                                         \
        return r;                                                                                                      \
    }
EMU_VEC4(float, float4)
EMU_VEC4(unsigned, uint4)

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaMemset(void *ptr, int value, size_t bytes);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status);

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
/* the count only: nodes must be NULL here */
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *numNodes);

cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

/* not CUDA: how much emulated device memory is in use (tests) */
size_t tftx_emu_memory_in_use(void);

#ifdef __cplusplus
}

/* vector_types.h's dim3, for launch shapes */
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
#endif

#endif /* TFTX_EMU_CUDA_RUNTIME_API_H */
