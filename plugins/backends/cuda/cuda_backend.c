/*
 * cuda_backend.c -- the `cuda` backend plugin: descriptor and parameters,
 * probe (is there a driver and a device?), instances (one device, one
 * stream, one cuBLAS handle), memory, the optimizer step, step graphs
 * (CUDA stream capture of a model's training pass), and the table of
 * kernels (tftx/backend.h) whose bodies live in the cuda_*.cu files (see
 * cuda.h for the map, the determinism and the error rules).
 *
 * The optimizer step runs the optimizer's fused CUDA kernel when the plugin
 * was built with nvcc (ops->step_cuda), and otherwise copies weights,
 * gradients and slots to the host, runs step_cpu there and copies them
 * back: correct, slow, and reported once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

static const char *const PRECISIONS[] = {"fp32", "tf32", "bf16", NULL};
static const char *const ATTENTIONS[] = {"cublas", "fused", NULL};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_INT("device", 0, 0, 1023, "CUDA device index (as cudaSetDevice counts them)"),
    TFTX_P_ENUM("precision", "fp32", PRECISIONS,
                "fp32 (float arithmetic), tf32 (products on the tensor cores, inputs rounded to 10-bit "
                "mantissas), bf16 (activations and their gradients stored as bfloat16, the linear layers' "
                "products on the bf16 tensor cores, attention's at tf32 on float copies, or bf16 with "
                "attention = \"fused\"); weights, their gradients and optimizer state stay fp32 at every "
                "precision"),
    TFTX_P_INT("threads", 0, 0, 1024, "ignored (the GPU decides); accepted so train.threads works with any backend"),
    TFTX_P_ENUM("attention", "cublas", ATTENTIONS,
                "cublas: batched cuBLAS products with the (B, heads, T, T) probabilities in memory; fused: "
                "flash-style kernels on the tensor cores (tf32 products, bf16 at precision bf16) that never store "
                "the probabilities (needs precision tf32 or bf16; head sizes 32 and 64 with T above the head size, "
                "others take the cublas path)"),
    TFTX_P_BOOL("fuse_bias", 1,
                "add the linear layers' biases inside the matrix product (a cuBLASLt epilogue) where cuBLASLt has "
                "a kernel for it; false: a kernel writes the bias first and cuBLAS's product adds to it (the "
                "results agree to rounding)"),
    TFTX_P_BOOL("graphs", 1,
                "record a model's training pass (forward and backward), and its evaluation pass, once per batch "
                "shape as a CUDA graph and replay it: one launch instead of hundreds; false launches every kernel "
                "every time (the results are the same)"),
};

/* ------------------------------------------------------------ errors */

int cuda_report(cuda_backend *be, int ok, const char *what, const char *detail, const char *file, int line)
{
    if (ok) return 1;
    if (be->recording) { /* fails the recording, not the instance (graph_end) */
        if (!be->record_error[0])
            snprintf(be->record_error, sizeof be->record_error, "%s failed: %s (%s:%d)", what, detail, file, line);
        return 0;
    }
    if (!be->failed)
        be->host->log(TFTX_LOG_ERROR, "cuda backend: %s failed: %s (%s:%d); the run stops at the next finiteness check",
                      what, detail, file, line);
    be->failed = 1;
    return 0;
}

cublasComputeType_t cuda_compute_type(const cuda_backend *be)
{
    switch (be->precision) {
    case CUDA_TF32:
        return CUBLAS_COMPUTE_32F_FAST_TF32;
    case CUDA_BF16: /* attention's products; the linear layers: cuda_matmul.cu */
        return CUBLAS_COMPUTE_32F_FAST_TF32;
    default:
        return CUBLAS_COMPUTE_32F;
    }
}

void *cuda_grow(cuda_backend *be, void **buf, size_t *have, size_t bytes, const char *what)
{
    if (bytes <= *have) return *buf;
    if (be->recording) { /* fails the recording (graph_end) */
        if (!be->record_error[0])
            snprintf(be->record_error, sizeof be->record_error,
                     "working memory would have to grow while recording (%s of %zu bytes)", what, bytes);
        return NULL;
    }
    CUDA_OK(be, cudaStreamSynchronize(be->stream)); /* kernels may still read the old one */
    be->moves++;
    if (*buf) cudaFree(*buf);
    *buf = NULL, *have = 0;
    if (cudaMalloc(buf, bytes) != cudaSuccess) {
        cudaGetLastError();
        *buf = NULL;
        cuda_report(be, 0, what, "out of device memory", __FILE__, __LINE__);
        return NULL;
    }
    *have = bytes;
    return *buf;
}

void *cuda_work(cuda_backend *be, size_t bytes)
{
    return cuda_grow(be, &be->work, &be->work_bytes, bytes, "cudaMalloc of working memory");
}

/* ------------------------------------------------------------ memory */

#define CUDA_MIN_ALLOC 256

static void *cuda_alloc(void *self, size_t bytes)
{
    cuda_backend *be = self;
    void *p = NULL;
    if (bytes == 0) bytes = CUDA_MIN_ALLOC; /* a distinct, freeable pointer */
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is the caller's to report, not sticky */
        return NULL;
    }
    CUDA_OK(be, cudaMemsetAsync(p, 0, bytes, be->stream));
    return p;
}

static void cuda_free(void *self, void *ptr)
{
    cuda_backend *be = self;
    if (ptr) CUDA_OK(be, cudaFree(ptr));
}

/* From pageable host memory: returns once the source has been read. */
static void cuda_copy_in(void *self, void *dst, const void *host_src, size_t bytes)
{
    cuda_backend *be = self;
    if (bytes) CUDA_OK(be, cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, be->stream));
}

/* The table's copy_in: new parameters make their bf16 copy stale. */
static void cuda_copy_in_op(void *self, void *dst, const void *host_src, size_t bytes)
{
    cuda_shadow_forget(self, dst, bytes);
    cuda_copy_in(self, dst, host_src, bytes);
}

/* Waits for the stream: the host reads the result next. */
static void cuda_copy_out(void *self, void *host_dst, const void *src, size_t bytes)
{
    cuda_backend *be = self;
    if (!bytes) return;
    CUDA_OK(be, cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, be->stream));
    CUDA_OK(be, cudaStreamSynchronize(be->stream));
}

static void cuda_zero(void *self, void *ptr, size_t bytes)
{
    cuda_backend *be = self;
    if (bytes) CUDA_OK(be, cudaMemsetAsync(ptr, 0, bytes, be->stream));
}

static void cuda_sync(void *self)
{
    cuda_backend *be = self;
    CUDA_OK(be, cudaStreamSynchronize(be->stream));
}

static int cuda_threads(void *self)
{
    (void)self;
    return 1;
}

/* ---------------------------------------------------------- optimizer */

/* One range at a time: host copies of its w, g and slots, step_cpu, and
 * w and slots back. */
static tftx_status staged_step(cuda_backend *be, const tftx_optimizer_ops *opt, const void *opt_self,
                               const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges, float *w,
                               const float *g, float *const *slots, tftx_error *err)
{
    int ns = opt->n_slots(opt_self);
    if (ns < 0 || ns > TFTX_OPT_MAX_SLOTS)
        return be->host->error(err, TFTX_ERR_INVALID, "cuda backend: the optimizer has %d slots", ns);
    if (!be->warned_staged) {
        be->host->log(TFTX_LOG_WARN,
                      "cuda backend: the optimizer was built without a CUDA step; every step copies weights, "
                      "gradients and state to the host and back (slow; rebuild the optimizer plugin with nvcc)");
        be->warned_staged = 1;
    }
    for (size_t r = 0; r < n_ranges; r++) {
        const size_t off = ranges[r].offset, n = ranges[r].n, need = n * (size_t)(2 + ns);
        if (need > be->stage_floats) {
            free(be->stage);
            be->stage = malloc(need * sizeof *be->stage);
            be->stage_floats = be->stage ? need : 0;
            if (!be->stage)
                return be->host->error(err, TFTX_ERR_NOMEM,
                                       "cuda backend: no host memory for the staged optimizer step");
        }
        float *hw = be->stage, *hg = hw + n, *hs[TFTX_OPT_MAX_SLOTS] = {0};
        cuda_copy_out(be, hw, w + off, n * sizeof *hw);
        cuda_copy_out(be, hg, g + off, n * sizeof *hg);
        for (int k = 0; k < ns; k++) {
            hs[k] = hg + n * (size_t)(k + 1);
            cuda_copy_out(be, hs[k], slots[k] + off, n * sizeof *hw);
        }
        if (be->failed)
            return be->host->error(err, TFTX_ERR_INTERNAL, "cuda backend: a CUDA call failed (see the log)");
        const tftx_opt_range whole = {0, n, ranges[r].group};
        opt->step_cpu(opt_self, st, &whole, 1, hw, hg, hs);
        cuda_copy_in(be, w + off, hw, n * sizeof *hw);
        for (int k = 0; k < ns; k++) cuda_copy_in(be, slots[k] + off, hs[k], n * sizeof *hw);
        CUDA_OK(be, cudaStreamSynchronize(be->stream)); /* the stage is reused next range */
    }
    return TFTX_OK;
}

/* The host's ranges cut to TFTX_OPT_CUDA_RANGE elements, on the device:
 * made on the first step and again only when the ranges change. */
static tftx_status split_ranges(cuda_backend *be, const tftx_opt_range *ranges, size_t n_ranges, tftx_error *err)
{
    if (be->opt_split && n_ranges == be->opt_key_n && memcmp(ranges, be->opt_key, n_ranges * sizeof *ranges) == 0)
        return TFTX_OK;
    size_t n = 0;
    for (size_t r = 0; r < n_ranges; r++) n += (ranges[r].n + TFTX_OPT_CUDA_RANGE - 1) / TFTX_OPT_CUDA_RANGE;
    tftx_opt_range *key = malloc((n_ranges ? n_ranges : 1) * sizeof *key), *cut = malloc((n ? n : 1) * sizeof *cut);
    void *dev = NULL;
    if (!key || !cut || cudaMalloc(&dev, (n ? n : 1) * sizeof *cut) != cudaSuccess) {
        cudaGetLastError();
        free(key), free(cut);
        return be->host->error(err, TFTX_ERR_NOMEM, "cuda backend: out of memory for the optimizer's %zu ranges", n);
    }
    size_t k = 0;
    for (size_t r = 0; r < n_ranges; r++)
        for (size_t o = 0; o < ranges[r].n; o += TFTX_OPT_CUDA_RANGE) {
            size_t left = ranges[r].n - o;
            cut[k++] = (tftx_opt_range){ranges[r].offset + o, left < TFTX_OPT_CUDA_RANGE ? left : TFTX_OPT_CUDA_RANGE,
                                        ranges[r].group};
        }
    memcpy(key, ranges, n_ranges * sizeof *key);
    /* synchronous: `cut` is freed next */
    CUDA_OK(be, cudaMemcpy(dev, cut, n * sizeof *cut, cudaMemcpyHostToDevice));
    free(cut);
    if (be->opt_split) CUDA_OK(be, cudaFree(be->opt_split));
    free(be->opt_key);
    be->opt_key = key, be->opt_key_n = n_ranges;
    be->opt_split = dev, be->opt_split_n = n;
    return TFTX_OK;
}

static tftx_status cuda_optimizer_step(void *self, const tftx_optimizer_ops *opt, const void *opt_self,
                                       const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges, float *w,
                                       const float *g, float *const *slots, tftx_error *err)
{
    cuda_backend *be = self;
    if (!opt) return be->host->error(err, TFTX_ERR_INVALID, "cuda backend: no optimizer");
    if (n_ranges == 0) return TFTX_OK;
    tftx_status rc;
    if (!opt->step_cuda) {
        if (!opt->step_cpu)
            return be->host->error(err, TFTX_ERR_INVALID,
                                   "cuda backend: the optimizer has neither a CUDA nor a CPU step");
        rc = staged_step(be, opt, opt_self, st, ranges, n_ranges, w, g, slots, err);
    } else if ((rc = split_ranges(be, ranges, n_ranges, err)) == TFTX_OK) {
        rc = opt->step_cuda(opt_self, st, be->opt_split, be->opt_split_n, w, g, slots, be->stream, err);
    }
    if (rc == TFTX_OK && be->act16) { /* the weights' bf16 copy, from the arena's start to its last range's end */
        size_t end = 0;
        for (size_t r = 0; r < n_ranges; r++)
            if (ranges[r].offset + ranges[r].n > end) end = ranges[r].offset + ranges[r].n;
        cuda_shadow_refresh(be, w, end);
    }
    return rc;
}

/* ------------------------------------------------------- step graphs */

/* A recorded pass: the instantiated graph and the buffer moves it saw. */
typedef struct cuda_graph {
    cudaGraphExec_t exec;
    unsigned moves;
} cuda_graph;

static size_t cuda_act_size_op(void *self)
{
    return cuda_act_size(self);
}

static tftx_status cuda_graph_begin(void *self, tftx_error *err)
{
    cuda_backend *be = self;
    if (!be->graphs)
        return be->host->error(err, TFTX_ERR_UNSUPPORTED, "cuda backend: graphs = false (or TFTX_CUDA_PROFILE set)");
    if (be->failed) return be->host->error(err, TFTX_ERR_INTERNAL, "cuda backend: an earlier CUDA call failed");
    be->record_error[0] = 0;
    cudaError_t rc = cudaStreamBeginCapture(be->stream, cudaStreamCaptureModeGlobal);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        return be->host->error(err, TFTX_ERR_UNSUPPORTED, "cuda backend: cudaStreamBeginCapture said %s",
                               cudaGetErrorString(rc));
    }
    be->recording = 1;
    return TFTX_OK;
}

static void *cuda_graph_end(void *self, tftx_error *err)
{
    cuda_backend *be = self;
    cudaGraph_t graph = NULL;
    cudaError_t rc = cudaStreamEndCapture(be->stream, &graph);
    be->recording = 0;
    cudaGraphExec_t exec = NULL;
    size_t nodes = 0;
    if (rc == cudaSuccess && !be->record_error[0] && cudaGraphGetNodes(graph, NULL, &nodes) == cudaSuccess)
        be->host->log(TFTX_LOG_DEBUG, "cuda backend: a graph of %zu nodes (kernels, copies, memsets)", nodes);
    if (rc == cudaSuccess && !be->record_error[0]) rc = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    cuda_graph *g = NULL;
    if (rc == cudaSuccess && !be->record_error[0] && (g = malloc(sizeof *g))) {
        g->exec = exec, g->moves = be->moves;
        return g;
    }
    cudaGetLastError();
    if (exec) cudaGraphExecDestroy(exec);
    be->host->error(err, TFTX_ERR_UNSUPPORTED, "cuda backend: recording a graph failed: %s",
                    be->record_error[0] ? be->record_error
                    : rc != cudaSuccess ? cudaGetErrorString(rc)
                                        : "out of memory");
    return NULL;
}

static tftx_status cuda_graph_launch(void *self, void *graph, tftx_error *err)
{
    cuda_backend *be = self;
    cuda_graph *g = graph;
    if (g->moves != be->moves)
        return be->host->error(err, TFTX_ERR_INVALID,
                               "cuda backend: working memory moved since the graph was recorded");
    CUDA_OK(be, cudaGraphLaunch(g->exec, be->stream));
    return TFTX_OK;
}

static void cuda_graph_free(void *self, void *graph)
{
    (void)self;
    cuda_graph *g = graph;
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}

/* ------------------------------------------------------------ the table */

/* not const: TFTX_CUDA_PROFILE wraps entries (cuda_profile.c) */
static tftx_backend_ops OPS = {
    .alloc = cuda_alloc,
    .free = cuda_free,
    .copy_in = cuda_copy_in_op,
    .copy_out = cuda_copy_out,
    .zero = cuda_zero,
    .sync = cuda_sync,
    .threads = cuda_threads,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .activation_forward = cuda_activation_forward,
    .activation_backward = cuda_activation_backward,
    .tanh_forward = cuda_tanh_forward,
    .tanh_backward = cuda_tanh_backward,
    .residual_forward = cuda_residual_forward,
    .residual_backward = cuda_residual_backward,
    .residual_layernorm_forward = cuda_residual_layernorm_forward,
    .dropout_forward = cuda_dropout_forward,
    .dropout_backward = cuda_dropout_backward,
    .pool_first_forward = cuda_pool_first_forward,
    .pool_first_backward = cuda_pool_first_backward,
    .pool_mean_forward = cuda_pool_mean_forward,
    .pool_mean_backward = cuda_pool_mean_backward,
    .crossentropy_forward = cuda_crossentropy_forward,
    .crossentropy_backward = cuda_crossentropy_backward,
    .crossentropy_fused = cuda_crossentropy_fused,
    .sum_squares = cuda_sum_squares,
    .scale = cuda_scale,
    .all_finite = cuda_all_finite,
    .optimizer_step = cuda_optimizer_step,
    .attention_sizes = cuda_attention_sizes,
    .act_size = cuda_act_size_op,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .matmul_act_forward = cuda_matmul_act_forward,
    .matmul_backward_act = cuda_matmul_backward_act,
};

/* ------------------------------------------------------- descriptor */

/* A driver and at least one device, or TFTX_ERR_UNSUPPORTED and why. */
static tftx_status cuda_probe(const tftx_host *host, tftx_error *err)
{
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc == cudaErrorNoDevice || (rc == cudaSuccess && count == 0)) {
        cudaGetLastError();
        return host->error(err, TFTX_ERR_UNSUPPORTED, "no CUDA device: cudaGetDeviceCount said %s (%s)",
                           cudaGetErrorName(rc), cudaGetErrorString(rc));
    }
    if (rc != cudaSuccess) {
        cudaGetLastError();
        return host->error(err, TFTX_ERR_UNSUPPORTED, "no CUDA driver: cudaGetDeviceCount said %s (%s)",
                           cudaGetErrorName(rc), cudaGetErrorString(rc));
    }
    return TFTX_OK;
}

static tftx_status cuda_create(const tftx_host *host, const tftx_value *values, void **instance, tftx_error *err);
static void cuda_destroy(void *instance);

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_BACKEND,
    .name = "cuda",
    .version = "0.1.0",
    .summary = "one NVIDIA GPU: cuBLAS for matrix products, CUDA kernels for the rest",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .probe = cuda_probe,
    .create = cuda_create,
    .destroy = cuda_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static cuda_precision precision_of(const char *s)
{
    if (s && strcmp(s, "tf32") == 0) return CUDA_TF32;
    if (s && strcmp(s, "bf16") == 0) return CUDA_BF16;
    return CUDA_FP32;
}

static tftx_status cuda_create(const tftx_host *host, const tftx_value *values, void **instance, tftx_error *err)
{
    int64_t device = tftx_param(&DESC, values, "device")->i;
    cuda_precision prec = precision_of(tftx_param(&DESC, values, "precision")->s);
    tftx_status st = cuda_probe(host, err);
    if (st != TFTX_OK) return st;
    int count = 0;
    cudaGetDeviceCount(&count);
    if (device < 0 || device >= count)
        return host->error(err, TFTX_ERR_INVALID,
                           "cuda backend: device = %lld, but this machine has %d device%s (0..%d)", (long long)device,
                           count, count == 1 ? "" : "s", count - 1);
    const int fused_attention = strcmp(tftx_param(&DESC, values, "attention")->s, "fused") == 0;
    if (prec == CUDA_FP32 && fused_attention)
        return host->error(err, TFTX_ERR_INVALID,
                           "cuda backend: attention = \"fused\" multiplies on the tensor cores at tf32, so it needs "
                           "precision = \"tf32\" or \"bf16\" (precision is \"fp32\")");
    cudaError_t rc = cudaSetDevice((int)device);
    if (rc != cudaSuccess)
        return host->error(err, TFTX_ERR_UNSUPPORTED, "cuda backend: cudaSetDevice(%lld) said %s", (long long)device,
                           cudaGetErrorString(rc));
    cuda_backend *be = calloc(1, sizeof *be);
    if (!be) return host->error(err, TFTX_ERR_NOMEM, "cuda backend: out of memory");
    be->host = host;
    be->device = (int)device;
    be->precision = prec;
    be->act16 = prec == CUDA_BF16;
    be->fused_attention = fused_attention;
    rc = cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking);
    if (rc != cudaSuccess) {
        free(be);
        return host->error(err, TFTX_ERR_UNSUPPORTED, "cuda backend: cudaStreamCreate said %s", cudaGetErrorString(rc));
    }
    cublasStatus_t bs = cublasCreate(&be->blas);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(be->blas, be->stream);
    /* a workspace of its own (after SetStream, which resets it), so that
       cuBLAS allocates nothing while a graph is recorded */
    if (bs == CUBLAS_STATUS_SUCCESS && cudaMalloc(&be->blas_work, CUDA_BLAS_WORKSPACE) != cudaSuccess) {
        cudaGetLastError();
        be->blas_work = NULL;
        bs = CUBLAS_STATUS_ALLOC_FAILED;
    }
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetWorkspace(be->blas, be->blas_work, CUDA_BLAS_WORKSPACE);
    if (bs == CUBLAS_STATUS_SUCCESS && (cudaMalloc((void **)&be->ticket, sizeof *be->ticket) != cudaSuccess ||
                                        cudaMemset(be->ticket, 0, sizeof *be->ticket) != cudaSuccess)) {
        cudaGetLastError();
        bs = CUBLAS_STATUS_ALLOC_FAILED;
    }
    /* the precision is each product's compute type (cuda_compute_type);
       the handle's own mode stays the default, which takes no shortcut */
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetMathMode(be->blas, CUBLAS_DEFAULT_MATH);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        if (be->blas) cublasDestroy(be->blas);
        if (be->blas_work) cudaFree(be->blas_work);
        if (be->ticket) cudaFree(be->ticket);
        cudaStreamDestroy(be->stream);
        free(be);
        return host->error(err, TFTX_ERR_UNSUPPORTED, "cuda backend: cuBLAS set-up said %s", cublasGetStatusString(bs));
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, (int)device) == cudaSuccess)
        host->log(TFTX_LOG_DEBUG, "cuda backend: device %d, %s (sm_%d%d, %.1f GiB), precision %s", be->device,
                  prop.name, prop.major, prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024 * 1024),
                  PRECISIONS[prec]);
    be->graphs = tftx_param(&DESC, values, "graphs")->i != 0;
    be->fuse_bias = tftx_param(&DESC, values, "fuse_bias")->i != 0 && cuda_lt_create(be);
    const char *prof = getenv("TFTX_CUDA_PROFILE");
    if (prof && *prof && strcmp(prof, "0") != 0) {
        cuda_profile_install(&OPS);
        be->graphs = 0; /* it times each call, with host waits */
    }
    *instance = be;
    return TFTX_OK;
}

static void cuda_destroy(void *instance)
{
    cuda_backend *be = instance;
    if (!be) return;
    cudaStreamSynchronize(be->stream);
    if (be->work) cudaFree(be->work);
    if (be->ptrs) cudaFree(be->ptrs);
    if (be->att32) cudaFree(be->att32);
    if (be->half) cudaFree(be->half);
    if (be->shadow) cudaFree(be->shadow);
    if (be->opt_split) cudaFree(be->opt_split);
    cuda_lt_destroy(be);
    cublasDestroy(be->blas);
    if (be->blas_work) cudaFree(be->blas_work);
    if (be->ticket) cudaFree(be->ticket);
    cudaStreamDestroy(be->stream);
    free(be->stage);
    free(be->opt_key);
    free(be);
    cuda_profile_report();
}

TFTX_PLUGIN(DESC)
