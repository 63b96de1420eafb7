/*
 * emu_runtime.cc -- the CUDA runtime and cuBLAS calls of
 * include/cuda_runtime_api.h and include/cublas_v2.h on the CPU (see
 * there for what they promise), for the emulated plugins. One library,
 * shared by the emulated cuda backend and the emulated optimizers, as
 * libcudart is by the real ones.
 */
#include <math.h>
#include <time.h>

#include <map>
#include <vector>

#include "cuda_emulator.hpp"
#include "include/cublas_v2.h"
#include "include/cuda_bf16.h"

#define EMU_API extern "C" __attribute__((visibility("default")))

struct CUstream_st {
    int capturing;   /* a capture is open on this stream */
    int invalidated; /* ... and something it could not record happened */
    CUgraph_st *graph;
};
struct CUgraph_st {
    std::vector<std::function<void()>> nodes;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> nodes;
};
struct CUevent_st {
    double ms;
};
struct cublasContext {
    cudaStream_t stream;
};

namespace
{

CUstream_st default_stream;
cudaError_t last_error = cudaSuccess;
std::map<const char *, size_t> allocations; /* base -> bytes */
size_t in_use, limit;
CUstream_st *capturing; /* the stream being captured, if any (one at a time) */

CUstream_st *stream_of(cudaStream_t s)
{
    return s ? s : &default_stream;
}

cudaError_t fail(cudaError_t e)
{
    last_error = e;
    return e;
}

/* What a capture cannot record: the capture is spoilt (as the real
 * runtime's global capture mode does) and the call fails. */
cudaError_t refused_in_capture(CUstream_st *s)
{
    if (s && s->capturing) s->invalidated = 1;
    if (capturing) capturing->invalidated = 1;
    return fail(cudaErrorStreamCaptureUnsupported);
}

/* Run `work` now, or record it in the open capture of `s`. */
cudaError_t submit(cudaStream_t stream, std::function<void()> work)
{
    CUstream_st *s = stream_of(stream);
    if (!s->capturing) {
        work();
        return cudaSuccess;
    }
    if (s->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
    s->graph->nodes.push_back(std::move(work));
    return cudaSuccess;
}

/* [p, p + bytes) lies inside one allocation */
bool on_device(const void *p, size_t bytes)
{
    const char *c = (const char *)p;
    auto it = allocations.upper_bound(c);
    if (it == allocations.begin()) return false;
    --it;
    return c >= it->first && (size_t)(c - it->first) + bytes <= it->second;
}

size_t device_limit()
{
    if (!limit) {
        const char *e = getenv("TFTX_EMU_DEVICE_MEMORY");
        limit = e && *e ? strtoull(e, NULL, 10) : 0;
        if (!limit) limit = (size_t)16 << 30;
    }
    return limit;
}

double now_ms()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

} // namespace

/* ------------------------------------------------------------ launches */

void emu_stream_launch(cudaStream_t stream, dim3 grid, dim3 block, std::function<void()> work)
{
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z != 1 || grid.x == 0 || grid.y == 0 || grid.y > 65535 || grid.z != 1) {
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    submit(stream, [grid, block, work]() { emu_launch(grid, block, work); });
}

/* ------------------------------------------------------- device, errors */

EMU_API cudaError_t cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

EMU_API cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

EMU_API cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0) return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "CUDA emulator (CPU)");
    prop->totalGlobalMem = device_limit();
    prop->major = 9, prop->minor = 0, prop->multiProcessorCount = 1;
    return cudaSuccess;
}

EMU_API cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

EMU_API cudaError_t cudaPeekAtLastError(void)
{
    return last_error;
}

EMU_API const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
        return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer:
        return "cudaErrorInvalidDevicePointer";
    case cudaErrorNoDevice:
        return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
        return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
        return "cudaErrorInvalidResourceHandle";
    case cudaErrorStreamCaptureUnsupported:
        return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
        return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureWrongThread:
        return "cudaErrorStreamCaptureWrongThread";
    }
    return "cudaErrorUnknown";
}

EMU_API const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer:
        return "invalid device pointer";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
        return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureWrongThread:
        return "operation not permitted on an event last recorded in a capturing stream";
    }
    return "unknown error";
}

EMU_API cudaError_t cudaDeviceSynchronize(void)
{
    return capturing ? refused_in_capture(NULL) : cudaSuccess;
}

/* ------------------------------------------------------------- memory */

EMU_API size_t tftx_emu_memory_in_use(void)
{
    return in_use;
}

EMU_API cudaError_t cudaMalloc(void **ptr, size_t bytes)
{
    *ptr = NULL;
    if (capturing) return refused_in_capture(NULL);
    if (bytes > device_limit() || in_use > device_limit() - bytes) return fail(cudaErrorMemoryAllocation);
    const size_t rounded = (bytes + 255) / 256 * 256;
    char *p = (char *)aligned_alloc(256, rounded ? rounded : 256);
    if (!p) return fail(cudaErrorMemoryAllocation);
    memset(p, 0xff, rounded ? rounded : 256); /* NaN floats: reading unwritten memory shows */
    allocations[p] = bytes;
    in_use += bytes;
    *ptr = p;
    return cudaSuccess;
}

EMU_API cudaError_t cudaFree(void *ptr)
{
    if (!ptr) return cudaSuccess;
    if (capturing) return refused_in_capture(NULL);
    auto it = allocations.find((const char *)ptr);
    if (it == allocations.end()) return fail(cudaErrorInvalidDevicePointer);
    in_use -= it->second;
    allocations.erase(it);
    free(ptr);
    return cudaSuccess;
}

EMU_API cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream)
{
    CUstream_st *s = stream_of(stream);
    const bool to_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool from_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice)
        return fail(cudaErrorInvalidValue);
    if (bytes && ((to_dev && !on_device(dst, bytes)) || (from_dev && !on_device(src, bytes))))
        return fail(cudaErrorInvalidValue);
    if (s->capturing && kind != cudaMemcpyDeviceToDevice) return refused_in_capture(s); /* pageable host memory */
    return submit(stream, [dst, src, bytes]() { memmove(dst, src, bytes); });
}

EMU_API cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    if (capturing) return refused_in_capture(NULL);
    return cudaMemcpyAsync(dst, src, bytes, kind, NULL);
}

EMU_API cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream)
{
    if (bytes && !on_device(ptr, bytes)) return fail(cudaErrorInvalidValue);
    return submit(stream, [ptr, value, bytes]() { memset(ptr, value, bytes); });
}

EMU_API cudaError_t cudaMemset(void *ptr, int value, size_t bytes)
{
    if (capturing) return refused_in_capture(NULL);
    return cudaMemsetAsync(ptr, value, bytes, NULL);
}

/* ------------------------------------------------------------ streams */

EMU_API cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags)
{
    (void)flags;
    *stream = new CUstream_st();
    return cudaSuccess;
}

EMU_API cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

EMU_API cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    if (!stream) return fail(cudaErrorInvalidResourceHandle);
    if (stream->capturing) return refused_in_capture(stream);
    delete stream;
    return cudaSuccess;
}

EMU_API cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    CUstream_st *s = stream_of(stream);
    return s->capturing ? refused_in_capture(s) : cudaSuccess;
}

EMU_API cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    (void)mode;
    CUstream_st *s = stream_of(stream);
    if (!stream || s->capturing || capturing) return fail(cudaErrorInvalidValue);
    s->capturing = 1, s->invalidated = 0;
    s->graph = new CUgraph_st();
    capturing = s;
    return cudaSuccess;
}

EMU_API cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    CUstream_st *s = stream_of(stream);
    *graph = NULL;
    if (!s->capturing) return fail(cudaErrorInvalidValue);
    const int bad = s->invalidated;
    s->capturing = 0, s->invalidated = 0;
    capturing = NULL;
    if (bad) {
        delete s->graph;
        s->graph = NULL;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = s->graph;
    s->graph = NULL;
    return cudaSuccess;
}

EMU_API cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status)
{
    CUstream_st *s = stream_of(stream);
    *status = !s->capturing    ? cudaStreamCaptureStatusNone
              : s->invalidated ? cudaStreamCaptureStatusInvalidated
                               : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

/* ------------------------------------------------------------- graphs */

EMU_API cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    (void)flags;
    if (!graph) return fail(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{graph->nodes};
    return cudaSuccess;
}

EMU_API cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    if (!exec) return fail(cudaErrorInvalidValue);
    for (const auto &node : exec->nodes) {
        cudaError_t e = submit(stream, node);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

EMU_API cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    delete exec;
    return cudaSuccess;
}

EMU_API cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    delete graph;
    return cudaSuccess;
}

/* ------------------------------------------------------------- events */

EMU_API cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    *event = new CUevent_st{0};
    return cudaSuccess;
}

EMU_API cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    delete event;
    return cudaSuccess;
}

EMU_API cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    return submit(stream, [event]() { event->ms = now_ms(); });
}

EMU_API cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    (void)event;
    return capturing ? refused_in_capture(NULL) : cudaSuccess;
}

EMU_API cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

/* ------------------------------------------------------------- cuBLAS */

namespace
{

struct operand {
    const void *p;
    cudaDataType type;
    bool tf32; /* round fp32 inputs to tf32 */
    float at(size_t i) const
    {
        if (type == CUDA_R_16BF) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
        float x = ((const float *)p)[i];
        if (!tf32) return x;
        uint32_t u = emu_to_tf32(x);
        memcpy(&x, &u, sizeof x);
        return x;
    }
};

/* C (m,n) = alpha op(A) op(B) + beta C, column-major: op(A) and op(B)^T
 * first copied as rows of k floats (converted, rounded), then each element
 * of C is one dot product, its k terms added in order */
void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, operand A, int lda, operand B,
          int ldb, float beta, void *Cv, cudaDataType c_type, int ldc)
{
    std::vector<float> a((size_t)m * k), b((size_t)n * k);
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++)
            a[(size_t)i * k + p] = A.at(ta == CUBLAS_OP_N ? (size_t)i + (size_t)p * lda : (size_t)p + (size_t)i * lda);
    for (int j = 0; j < n; j++)
        for (int p = 0; p < k; p++)
            b[(size_t)j * k + p] = B.at(tb == CUBLAS_OP_N ? (size_t)p + (size_t)j * ldb : (size_t)j + (size_t)p * ldb);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            const float *x = &a[(size_t)i * k], *y = &b[(size_t)j * k];
            float acc = 0.0f;
            for (int p = 0; p < k; p++) acc += x[p] * y[p];
            const size_t at = (size_t)i + (size_t)j * ldc;
            if (c_type == CUDA_R_16BF) { /* fp32 result rounded to bf16, as cuBLAS stores it */
                __nv_bfloat16 *c = (__nv_bfloat16 *)Cv + at;
                *c = __float2bfloat16_rn(beta == 0.0f ? alpha * acc : alpha * acc + beta * __bfloat162float(*c));
            } else {
                float *c = (float *)Cv + at;
                *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
            }
        }
}

/* bytes a column-major operand of (rows, cols) with leading dimension ld spans */
size_t extent(int rows, int cols, int ld, size_t elem)
{
    return rows && cols ? ((size_t)ld * (size_t)(cols - 1) + (size_t)rows) * elem : 0;
}

size_t size_of(cudaDataType t)
{
    return t == CUDA_R_16BF ? 2 : 4;
}

bool gemm_args_ok(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, cudaDataType at, int lda,
                  cudaDataType bt, int ldb, cudaDataType ct, int ldc)
{
    const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
    return m >= 0 && n >= 0 && k >= 0 && (ta == CUBLAS_OP_N || ta == CUBLAS_OP_T) &&
           (tb == CUBLAS_OP_N || tb == CUBLAS_OP_T) && at == bt && (at == CUDA_R_32F || at == CUDA_R_16BF) &&
           (ct == CUDA_R_32F || (ct == CUDA_R_16BF && at == CUDA_R_16BF)) && lda >= (a_rows > 1 ? a_rows : 1) && ldb >= (b_rows > 1 ? b_rows : 1) &&
           ldc >= (m > 1 ? m : 1);
}

} // namespace

EMU_API cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    *handle = new cublasContext{NULL};
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    (void)handle;
    return mode == CUBLAS_DEFAULT_MATH || mode == CUBLAS_TF32_TENSOR_OP_MATH ? CUBLAS_STATUS_SUCCESS
                                                                             : CUBLAS_STATUS_INVALID_VALUE;
}

EMU_API cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes)
{
    (void)handle;
    return bytes && !on_device(workspace, bytes) ? CUBLAS_STATUS_INVALID_VALUE : CUBLAS_STATUS_SUCCESS;
}

EMU_API const char *cublasGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
        return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED:
        return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

EMU_API cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                    int k, const void *alpha, const void *A, cudaDataType a_type, int lda,
                                    const void *B, cudaDataType b_type, int ldb, const void *beta, void *C,
                                    cudaDataType c_type, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!gemm_args_ok(ta, tb, m, n, k, a_type, lda, b_type, ldb, c_type, ldc)) return CUBLAS_STATUS_INVALID_VALUE;
    const size_t es = size_of(a_type);
    if (!on_device(A, extent(ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, es)) ||
        !on_device(B, extent(tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, es)) ||
        !on_device(C, extent(m, n, ldc, size_of(c_type))))
        return CUBLAS_STATUS_INVALID_VALUE;
    const bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a_type == CUDA_R_32F;
    const float al = *(const float *)alpha, be = *(const float *)beta; /* host scalars, read now */
    const operand oa{A, a_type, tf32}, ob{B, b_type, tf32};
    return submit(handle->stream, [=]() { gemm(ta, tb, m, n, k, al, oa, lda, ob, ldb, be, C, c_type, ldc); })
               ? CUBLAS_STATUS_EXECUTION_FAILED
               : CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGemmBatchedEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m,
                                           int n, int k, const void *alpha, const void *const A[], cudaDataType a_type,
                                           int lda, const void *const B[], cudaDataType b_type, int ldb,
                                           const void *beta, void *const C[], cudaDataType c_type, int ldc, int batch,
                                           cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (batch < 0 || !gemm_args_ok(ta, tb, m, n, k, a_type, lda, b_type, ldb, c_type, ldc))
        return CUBLAS_STATUS_INVALID_VALUE;
    const size_t arr = (size_t)batch * sizeof(void *);
    if (batch && (!on_device(A, arr) || !on_device(B, arr) || !on_device(C, arr))) return CUBLAS_STATUS_INVALID_VALUE;
    const bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a_type == CUDA_R_32F;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    /* the pointer arrays are device memory: read when the product runs */
    return submit(handle->stream,
                  [=]() {
                      for (int i = 0; i < batch; i++)
                          gemm(ta, tb, m, n, k, al, operand{A[i], a_type, tf32}, lda, operand{B[i], b_type, tf32}, ldb,
                               be, C[i], c_type, ldc);
                  })
               ? CUBLAS_STATUS_EXECUTION_FAILED
               : CUBLAS_STATUS_SUCCESS;
}
