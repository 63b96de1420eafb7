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
#include "include/cublasLt.h"
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

EMU_API cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *numNodes)
{
    if (!graph || nodes || !numNodes) return fail(cudaErrorInvalidValue);
    *numNodes = graph->nodes.size();
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

/* cuBLASLt's GELU epilogues (tanh form): aux (column-major, ld) takes
 * the result x and C GELU(x) (GELU_AUX), or C takes x * GELU'(aux) (DGELU) */
struct gelu_epilogue {
    int kind; /* 0 none, 1 GELU_AUX, 2 DGELU */
    void *aux;
    cudaDataType type;
    int ld;
};

float emu_gelu_tanh(float x)
{
    const float u = 0.79788456080286535588f * (x + 0.044715f * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
}

float emu_gelu_tanh_grad(float x)
{
    const float x2 = x * x, u = 0.79788456080286535588f * (x + 0.044715f * x2 * x);
    const float e = expf(-2.0f * u), s = 1.0f / (1.0f + e);
    return s + 2.0f * x * s * (e * s) * 0.79788456080286535588f * (1.0f + 3.0f * 0.044715f * x2);
}

/* x after the epilogue, element (i, j) */
float gelu_apply(const gelu_epilogue &g, float x, int i, int j)
{
    if (!g.kind) return x;
    const size_t at = (size_t)i + (size_t)j * g.ld;
    if (g.kind == 2) {
        const float pre =
            g.type == CUDA_R_16BF ? __bfloat162float(((const __nv_bfloat16 *)g.aux)[at]) : ((const float *)g.aux)[at];
        return x * emu_gelu_tanh_grad(pre);
    }
    if (g.type == CUDA_R_16BF)
        ((__nv_bfloat16 *)g.aux)[at] = __float2bfloat16_rn(x);
    else
        ((float *)g.aux)[at] = x;
    return emu_gelu_tanh(x);
}

/* C (m,n) = alpha op(A) op(B) + beta C, column-major: op(A) and op(B)^T
 * first copied as rows of k floats (converted, rounded), then each element
 * of C is one dot product, its k terms added in order */
void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, operand A, int lda, operand B,
          int ldb, float beta, void *Cv, cudaDataType c_type, int ldc, operand bias = operand{NULL, CUDA_R_32F, false},
          gelu_epilogue gelu = gelu_epilogue{0, NULL, CUDA_R_32F, 0})
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
            const float add = bias.p ? bias.at((size_t)i) : 0.0f; /* cuBLASLt's bias epilogue, in fp32 */
            if (c_type == CUDA_R_16BF) { /* fp32 result rounded to bf16, as cuBLAS stores it */
                __nv_bfloat16 *c = (__nv_bfloat16 *)Cv + at;
                float r = beta == 0.0f ? alpha * acc : alpha * acc + beta * __bfloat162float(*c);
                *c = __float2bfloat16_rn(gelu_apply(gelu, bias.p ? r + add : r, i, j));
            } else {
                float *c = (float *)Cv + at;
                float r = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
                *c = gelu_apply(gelu, bias.p ? r + add : r, i, j);
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

/* ----------------------------------------------------------- cuBLASLt */

struct cublasLtContext {
    int unused;
};
struct cublasLtMatmulDescOpaque {
    cublasComputeType_t compute;
    cublasOperation_t ta, tb;
    cublasLtEpilogue_t epilogue;
    const void *bias;
    void *aux;
    int64_t aux_ld;
    int32_t aux_type; /* -1: D's */
};
struct cublasLtMatrixLayoutOpaque {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
};
struct cublasLtMatmulPreferenceOpaque {
    uint64_t workspace;
};

namespace
{
unsigned long lt_products; /* cublasLtMatmul calls accepted */
} // namespace

/* For the tests: how many cuBLASLt products were accepted so far (the
 * cuda tests look it up with dlsym, so it exists only here). */
EMU_API unsigned long emu_lt_products(void)
{
    return lt_products;
}

EMU_API cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle)
{
    *handle = new cublasLtContext{0};
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle)
{
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                                cudaDataType scale)
{
    if (scale != CUDA_R_32F || (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    *desc =
        new cublasLtMatmulDescOpaque{compute, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, -1};
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc)
{
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                                      const void *buf, size_t size)
{
    /* the attribute's bytes into its field, when the sizes agree */
    auto put = [&](void *field, size_t bytes) {
        if (size != bytes) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(field, buf, bytes);
        return CUBLAS_STATUS_SUCCESS;
    };
    int32_t v = 0;
    cublasStatus_t st;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        if ((st = put(&v, sizeof v)) != CUBLAS_STATUS_SUCCESS) return st;
        if (attr == CUBLASLT_MATMUL_DESC_TRANSA) desc->ta = (cublasOperation_t)v;
        else if (attr == CUBLASLT_MATMUL_DESC_TRANSB) desc->tb = (cublasOperation_t)v;
        else desc->epilogue = (cublasLtEpilogue_t)v;
        return st;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        return put(&desc->bias, sizeof desc->bias);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
        return put(&desc->aux, sizeof desc->aux);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
        return put(&desc->aux_ld, sizeof desc->aux_ld);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE:
        return put(&desc->aux_type, sizeof desc->aux_type);
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

EMU_API cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type, uint64_t rows,
                                                  uint64_t cols, int64_t ld)
{
    if ((type != CUDA_R_32F && type != CUDA_R_16BF) || rows > INT32_MAX || cols > INT32_MAX || ld > INT32_MAX)
        return CUBLAS_STATUS_INVALID_VALUE;
    *layout = new cublasLtMatrixLayoutOpaque{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout)
{
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref)
{
    *pref = new cublasLtMatmulPreferenceOpaque{0};
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref)
{
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                            cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                            size_t size)
{
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (size != sizeof pref->workspace) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&pref->workspace, buf, size);
        return CUBLAS_STATUS_SUCCESS;
    }
    return size == sizeof(uint32_t) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE; /* alignments */
}

namespace
{

/* the product's (m, n, k) when the description is one this emulator runs */
bool lt_shape(const cublasLtMatmulDescOpaque *desc, const cublasLtMatrixLayoutOpaque *a,
              const cublasLtMatrixLayoutOpaque *b, const cublasLtMatrixLayoutOpaque *c,
              const cublasLtMatrixLayoutOpaque *d, int *m, int *n, int *k)
{
    const cublasLtEpilogue_t e = desc->epilogue;
    if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_BIAS && e != CUBLASLT_EPILOGUE_BGRADB &&
        e != CUBLASLT_EPILOGUE_GELU_AUX && e != CUBLASLT_EPILOGUE_GELU_AUX_BIAS && e != CUBLASLT_EPILOGUE_DGELU)
        return false;
    const bool aux =
        e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || e == CUBLASLT_EPILOGUE_DGELU;
    if (aux && (desc->aux_ld < (int64_t)d->rows || desc->aux_ld % 8 != 0 ||
                (desc->aux_type != -1 && desc->aux_type != (int32_t)d->type)))
        return false;
    *m = (int)d->rows, *n = (int)d->cols;
    *k = (int)(desc->ta == CUBLAS_OP_N ? a->cols : a->rows);
    const int a_m = (int)(desc->ta == CUBLAS_OP_N ? a->rows : a->cols);
    const int b_k = (int)(desc->tb == CUBLAS_OP_N ? b->rows : b->cols), b_n = (int)(desc->tb == CUBLAS_OP_N ? b->cols : b->rows);
    return a_m == *m && b_k == *k && b_n == *n && c->rows == d->rows && c->cols == d->cols && c->ld == d->ld &&
           c->type == d->type && gemm_args_ok(desc->ta, desc->tb, *m, *n, *k, a->type, (int)a->ld, b->type, (int)b->ld,
                                              d->type, (int)d->ld);
}

} // namespace

EMU_API cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                                      cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                      cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                      cublasLtMatmulPreference_t pref, int requested,
                                                      cublasLtMatmulHeuristicResult_t results[], int *returned)
{
    (void)pref;
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    int m, n, k;
    *returned = 0;
    if (!lt_shape(desc, a, b, c, d, &m, &n, &k)) return CUBLAS_STATUS_NOT_SUPPORTED;
    memset(&results[0], 0, sizeof results[0]);
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                                      const void *A, cublasLtMatrixLayout_t a, const void *B,
                                      cublasLtMatrixLayout_t b, const void *beta, const void *C,
                                      cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                                      const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                                      cudaStream_t stream)
{
    (void)algo;
    int m, n, k;
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!lt_shape(desc, a, b, c, d, &m, &n, &k) || C != D) return CUBLAS_STATUS_NOT_SUPPORTED;
    const size_t es = size_of(a->type);
    const cublasLtEpilogue_t e = desc->epilogue;
    const bool with_bias = e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS,
               bgrad = e == CUBLASLT_EPILOGUE_BGRADB;
    const gelu_epilogue gelu{e == CUBLASLT_EPILOGUE_DGELU                                              ? 2
                             : e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS ? 1
                                                                                                       : 0,
                             desc->aux, d->type, (int)desc->aux_ld};
    if (!on_device(A, extent(desc->ta == CUBLAS_OP_N ? m : k, desc->ta == CUBLAS_OP_N ? k : m, (int)a->ld, es)) ||
        !on_device(B, extent(desc->tb == CUBLAS_OP_N ? k : n, desc->tb == CUBLAS_OP_N ? n : k, (int)b->ld, es)) ||
        !on_device(D, extent(m, n, (int)d->ld, size_of(d->type))) ||
        (with_bias && !on_device(desc->bias, (size_t)m * size_of(d->type))) ||
        (bgrad && (d->type != CUDA_R_32F || !on_device(desc->bias, (size_t)n * sizeof(float)))) ||
        (gelu.kind && !on_device(gelu.aux, extent(m, n, gelu.ld, size_of(d->type)))) ||
        (workspace_bytes && !on_device(workspace, workspace_bytes)))
        return CUBLAS_STATUS_INVALID_VALUE;
    const bool tf32 = desc->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a->type == CUDA_R_32F;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const operand oa{A, a->type, tf32}, ob{B, b->type, tf32};
    const operand bias{with_bias ? desc->bias : NULL, d->type, false}; /* the bias is of D's type */
    const cublasOperation_t ta = desc->ta, tb = desc->tb;
    const cudaDataType dt = d->type;
    const int lda = (int)a->ld, ldb = (int)b->ld, ldd = (int)d->ld;
    float *grad = bgrad ? (float *)desc->bias : NULL;
    lt_products++;
    return submit(stream,
                  [=]() {
                      gemm(ta, tb, m, n, k, al, oa, lda, ob, ldb, be, D, dt, ldd, bias, gelu);
                      for (int j = 0; grad && j < n; j++) { /* op(B) (k, n): column j over k */
                          float s = 0.0f;
                          for (int p = 0; p < k; p++)
                              s += ob.at(tb == CUBLAS_OP_N ? (size_t)p + (size_t)j * ldb : (size_t)j + (size_t)p * ldb);
                          grad[j] = s;
                      }
                  })
               ? CUBLAS_STATUS_EXECUTION_FAILED
               : CUBLAS_STATUS_SUCCESS;
}
