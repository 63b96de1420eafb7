/*
 * cuda.h -- internals of the cuda backend plugin, shared by its files.
 *
 * The cuda backend computes on one GPU: every buffer is device memory from
 * cudaMalloc, every kernel and copy is issued on the instance's one stream
 * (so they run in issue order), matrix products go through cuBLAS and the
 * rest are CUDA kernels. Files:
 *   cuda_backend.c    descriptor, probe, instance, memory, gradient
 *                     utilities' host side, optimizer step, the ops table
 *   cuda_matmul.cu    linear layers (cuBLAS; cuBLASLt where the bias is added
 *                     in the product's epilogue) and the bias kernels
 *   cuda_attention.cu multi-head attention: batched cuBLAS products, masked
 *                     softmax, dropout on the probabilities
 *   cuda_layers.cu    embedding, layer norm, pooling, cross-entropy
 *   cuda_pointwise.cu activations, tanh, residual, dropout, scale, sum of
 *                     squares, finiteness
 *   cuda_profile.c    TFTX_CUDA_PROFILE=1: GPU time per table entry
 *
 * Determinism: every sum has a fixed order (a warp's shuffle tree, or one
 * thread adding rows in order), so the same inputs give the same bits run
 * to run on the same GPU. The one atomic counts a kernel's finished
 * blocks (colsum_finish, cuda_device.cuh), so that the last one adds the
 * others' partial sums, in order. cuBLAS is
 * deterministic on one stream with its default settings.
 *
 * Errors: kernels cannot return one (backend.h). A failed CUDA or cuBLAS
 * call is logged once with its file and line and makes the instance
 * `failed`; from then on all_finite answers 0 and sum_squares NaN, so the
 * host stops the run with a numeric error instead of training on garbage.
 *
 * The .cu files are C++ (nvcc); their launchers have C linkage and are
 * declared here, so the C file sees them.
 */
#ifndef TFTX_CUDA_H
#define TFTX_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>
#include <tftx/backend.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cuda_precision { CUDA_FP32 = 0, CUDA_TF32 = 1, CUDA_BF16 = 2 } cuda_precision;

/* One backend instance. */
typedef struct cuda_backend {
    const tftx_host *host;
    int device;
    cuda_precision precision;
    int act16; /* activations are bfloat16 (precision bf16; tftx/backend.h "act") */
    int fused_attention; /* attention = "fused": cuda_flash.cuh where it applies */
    int fuse_bias;       /* fuse_bias: linear layers' biases in a cuBLASLt epilogue (cuda_matmul.cu) */
    struct cuda_lt *lt;  /* cuBLASLt's handle and the plans made so far (cuda_matmul.cu), or NULL */
    cudaStream_t stream;
    cublasHandle_t blas;
    int failed;        /* a CUDA call failed: see the top */
    /* step graphs (cuda_backend.c): recorded at all (the `graphs`
       parameter, and not while profiling); a recording is open; its first
       failure, which then fails the recording instead of the instance */
    int graphs, recording;
    char record_error[256];
    /* bumped whenever cuda_grow moves a buffer: graphs recorded before
       read the old one and must be recorded again */
    unsigned moves;
    void *blas_work; /* cuBLAS's workspace, set once (no allocation while recording) */
    unsigned *ticket;  /* device counter of colsum_finish (cuda_device.cuh), 0 between kernels */
    int warned_staged; /* the staged optimizer fallback was reported */
    /* working memory that grows on demand (attention's dropped
       probabilities, partial sums): device, `work_bytes` long */
    void *work;
    size_t work_bytes;
    /* bf16 copies of the linear layers' weights (precision bf16) */
    void *half;
    size_t half_bytes;
    /* precision bf16: a bfloat16 copy of the parameter arena the optimizer
       steps, shadow_n floats from shadow_of, made after each step and
       dropped when copy_in writes into it (the arena changes only through
       those two); the linear layers read their weights there instead of
       converting them each call (cuda_matmul.cu) */
    void *shadow;
    size_t shadow_bytes, shadow_n;
    const float *shadow_of;
    int shadow_ok, shadow_off; /* shadow_off: no room for it */
    /* attention's float copies of bfloat16 activations (cuda_attention.cu) */
    void *att32;
    size_t att32_bytes;
    /* device pointer arrays of attention's batched products */
    void *ptrs;
    size_t ptrs_bytes;
    /* host copies for the staged optimizer step */
    float *stage;
    size_t stage_floats;
    /* the optimizer's ranges as the host gave them (to see a change), and
       cut to TFTX_OPT_CUDA_RANGE elements each in device memory */
    tftx_opt_range *opt_key, *opt_split;
    size_t opt_key_n, opt_split_n;
} cuda_backend;

/* cuBLAS's workspace: what NVIDIA recommends for Hopper (32 MiB). */
#define CUDA_BLAS_WORKSPACE ((size_t)32 << 20)

/* Log a failed CUDA or cuBLAS call once and mark the instance failed.
 * Returns 1 when `ok`, else 0. */
int cuda_report(cuda_backend *be, int ok, const char *what, const char *detail, const char *file, int line);
#define CUDA_OK(be, call)                                                                         \
    do {                                                                                          \
        cudaError_t cuda_rc_ = (call);                                                            \
        cuda_report((be), cuda_rc_ == cudaSuccess, #call, cudaGetErrorString(cuda_rc_), __FILE__, __LINE__); \
    } while (0)
#define CUBLAS_OK(be, call)                                                                       \
    do {                                                                                          \
        cublasStatus_t blas_rc_ = (call);                                                         \
        cuda_report((be), blas_rc_ == CUBLAS_STATUS_SUCCESS, #call, cublasGetStatusString(blas_rc_), __FILE__, \
                    __LINE__);                                                                    \
    } while (0)
/* cuBLASLt for the bias epilogue (cuda_matmul.cu): a handle and an empty
 * plan cache, or 0 (with the reason logged) when there is none; then the
 * linear layers add their biases with a kernel of their own. */
int cuda_lt_create(cuda_backend *be);
void cuda_lt_destroy(cuda_backend *be);

/* After a kernel launch: a bad configuration shows here. */
#define CUDA_LAUNCHED(be) CUDA_OK((be), cudaGetLastError())

/* The compute type of the products on fp32 operands at the instance's
 * precision: fp32 CUBLAS_COMPUTE_32F (no tensor-core shortcut), tf32 and
 * bf16 ..._FAST_TF32 (inputs rounded to 10-bit mantissas). At bf16 the
 * linear layers multiply bf16 copies of their operands instead
 * (cuda_matmul.cu) and attention's products stay at tf32. Results are
 * fp32 in memory, and sums accumulate in fp32. */
cublasComputeType_t cuda_compute_type(const cuda_backend *be);

/* *buf grown to at least `bytes` (*have: its size now): never shrunk; the
 * stream is synchronised before a reallocation. NULL when out of memory
 * (logged as `what`, instance failed) or when it would have to grow while
 * a step graph is recorded (the recording fails). */
void *cuda_grow(cuda_backend *be, void **buf, size_t *have, size_t bytes, const char *what);

/* The bf16 copy of the parameter arena (above): made again from w (n
 * floats) after an optimizer step; forgotten when [dst, dst + bytes) is
 * written by copy_in and overlaps it. Either change bumps `moves`, so that
 * graphs recorded before (which read the copy, or converted the weights
 * themselves) are recorded again. */
void cuda_shadow_refresh(cuda_backend *be, const float *w, size_t n);
void cuda_shadow_forget(cuda_backend *be, const void *dst, size_t bytes);

/* Device working memory of at least `bytes` (grown, never shrunk; the
 * stream is synchronised before a reallocation). NULL when out of memory
 * (logged, instance failed). */
void *cuda_work(cuda_backend *be, size_t bytes);

/* TFTX_CUDA_PROFILE (cuda_profile.c): wrap the table's heavy entries with
 * event timing; print the table of GPU times (stderr) */
void cuda_profile_install(tftx_backend_ops *ops);
void cuda_profile_report(void);

/* 1/(1-p), or 0 when p >= 1 (every element dropped) */
/* Bytes of an activation element (act_size of the table). */
static inline size_t cuda_act_size(const cuda_backend *be)
{
    return be->act16 ? 2 : 4;
}

static inline float cuda_dropout_scale(float p)
{
    return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

/* ------------------------------------------------------------ kernels */

void cuda_embedding_forward(void *self, float *out, const int32_t *tokens, const int32_t *segments, const float *wte,
                            const float *wpe, const float *wse, int B, int T, int C);
void cuda_embedding_backward(void *self, float *dwte, float *dwpe, float *dwse, const float *dout,
                             const int32_t *tokens, const int32_t *segments, int B, int T, int C);
void cuda_layernorm_forward(void *self, float *out, float *mean, float *rstd, const float *inp, const float *weight,
                            const float *bias, int N, int C, float eps);
void cuda_residual_layernorm_forward(void *self, float *out, float *ln, float *mean, float *rstd, const float *a,
                                     const float *b, const float *weight, const float *bias, int N, int C, float eps,
                                     tftx_dropout drop);
void cuda_layernorm_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, const float *mean, const float *rstd, int N, int C, int dinp_add,
                             int dparam_add);
void cuda_matmul_forward(void *self, float *out, const float *inp, const float *weight, const float *bias, int N,
                         int C, int OC);
void cuda_matmul_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC, int dinp_add, int dparam_add);
void cuda_matmul_act_forward(void *self, float *out, float *pre, const float *inp, const float *weight,
                             const float *bias, int N, int C, int OC, tftx_activation act);
void cuda_matmul_backward_act(void *self, float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *pre, int N, int C, int OC,
                              tftx_activation act, int dparam_add);
void cuda_attention_sizes(void *self, int B, int T, int C, int NH, size_t *att, size_t *scratch);
void cuda_attention_forward(void *self, float *out, float *att, const float *qkv, const uint8_t *mask, int causal,
                            int B, int T, int C, int NH, tftx_dropout drop);
void cuda_attention_backward(void *self, float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, const uint8_t *mask, int causal, int B, int T, int C, int NH,
                             tftx_dropout drop, int dqkv_add);
void cuda_activation_forward(void *self, float *out, const float *inp, size_t N, tftx_activation act);
void cuda_activation_backward(void *self, float *dinp, const float *dout, const float *inp, size_t N,
                              tftx_activation act, int dinp_add);
void cuda_tanh_forward(void *self, float *out, const float *inp, size_t N);
void cuda_tanh_backward(void *self, float *dinp, const float *dout, const float *out, size_t N);
void cuda_residual_forward(void *self, float *out, const float *a, const float *b, size_t N, tftx_dropout drop,
                             uint64_t offset);
void cuda_residual_backward(void *self, float *da, float *db, const float *dout, size_t N);
void cuda_dropout_forward(void *self, float *out, const float *inp, size_t N, tftx_dropout drop, uint64_t offset);
void cuda_dropout_backward(void *self, float *dinp, const float *dout, size_t N, tftx_dropout drop, uint64_t offset, int dinp_add);
void cuda_pool_first_forward(void *self, float *out, const float *inp, int B, int T, int C);
void cuda_pool_first_backward(void *self, float *dinp, const float *dout, int B, int T, int C);
void cuda_pool_mean_forward(void *self, float *out, const float *inp, const uint8_t *mask, int B, int T, int C);
void cuda_pool_mean_backward(void *self, float *dinp, const float *dout, const uint8_t *mask, int B, int T, int C);
void cuda_crossentropy_forward(void *self, float *losses, float *probs, const float *logits, const int32_t *targets,
                               int N, int V, int ld);
void cuda_crossentropy_fused(void *self, float *losses, float *logits, float *probs, const int32_t *targets,
                             const float *dloss, int N, int V, int ld);
void cuda_crossentropy_backward(void *self, float *dlogits, const float *probs, const int32_t *targets, const float *dloss,
                                int N, int V, int ld);
double cuda_sum_squares(void *self, const float *x, size_t n);
void cuda_scale(void *self, float *x, size_t n, float s);
int cuda_all_finite(void *self, const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* TFTX_CUDA_H */
