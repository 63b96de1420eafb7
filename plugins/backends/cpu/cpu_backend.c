/*
 * cpu_backend.c -- the `cpu` backend plugin: descriptor, instances, memory,
 * gradient utilities (sum of squares, scale, finiteness), the optimizer
 * step, and the table of kernels (tftx/backend.h) whose bodies live in the
 * other cpu_*.c files (see cpu.h for the map and the threading rules).
 *
 * Memory is host memory: 64-byte aligned (one cache line, and the widest
 * vector register), zeroed, NULL when the system has none left.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>

#include "cpu.h"

#define CPU_ALIGN 64

static const tftx_param_spec PARAMS[] = {
    TFTX_P_INT("threads", 0, 0, 1024,
               "threads for kernels and BLAS; 0 = every core this process may use (omp_get_num_procs)"),
};

/* ------------------------------------------------------------ memory */

static void *cpu_alloc(void *self, size_t bytes)
{
    (void)self;
    void *p = NULL;
    if (bytes == 0) bytes = CPU_ALIGN; /* a distinct, freeable pointer */
    if (posix_memalign(&p, CPU_ALIGN, bytes) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

static void cpu_free(void *self, void *ptr)
{
    (void)self;
    free(ptr);
}

static void cpu_copy_in(void *self, void *dst, const void *host_src, size_t bytes)
{
    (void)self;
    if (bytes) memmove(dst, host_src, bytes);
}

static void cpu_copy_out(void *self, void *host_dst, const void *src, size_t bytes)
{
    (void)self;
    if (bytes) memmove(host_dst, src, bytes);
}

/* Below this, one thread zeroes: a parallel region costs more than it
 * saves. */
#define ZERO_PARALLEL_BYTES (1u << 20)

/* memset, split over the threads in parts of whole cache lines when large:
 * a model zeroes every gradient buffer before its first writer, 200-400 MB
 * a training step of bert-small or gpt-small, and one thread alone leaves
 * the other cores idle meanwhile. */
static void cpu_zero(void *self, void *ptr, size_t bytes)
{
    const int nt = cpu_nt(self);
    if (nt == 1 || bytes < ZERO_PARALLEL_BYTES) {
        if (bytes) memset(ptr, 0, bytes);
        return;
    }
    const size_t lines = (bytes + CPU_ALIGN - 1) / CPU_ALIGN;
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        cpu_split(lines, omp_get_num_threads(), omp_get_thread_num(), &lo, &hi);
        lo *= CPU_ALIGN, hi *= CPU_ALIGN;
        if (hi > bytes) hi = bytes;
        if (hi > lo) memset((char *)ptr + lo, 0, hi - lo);
    }
}

/* Kernels return when their work is done. */
static void cpu_sync(void *self)
{
    (void)self;
}

static int cpu_threads(void *self)
{
    return cpu_nt(self);
}

/* ------------------------------------------------- gradient utilities */

/* At most this many partial sums: the chunk length grows with n instead. */
#define SUMSQ_MAX_CHUNKS 1024
#define SUMSQ_MIN_CHUNK 16384

/* sum_i x[i]^2 in double. The array is cut into chunks whose length depends
 * only on n; each chunk is summed in order, then the chunk sums in order, so
 * the result is the same for every thread count. */
static double cpu_sum_squares(void *self, const float *x, size_t n)
{
    if (n == 0) return 0.0;
    size_t chunk = (n + SUMSQ_MAX_CHUNKS - 1) / SUMSQ_MAX_CHUNKS;
    if (chunk < SUMSQ_MIN_CHUNK) chunk = SUMSQ_MIN_CHUNK;
    size_t nchunks = (n + chunk - 1) / chunk;
    double partial[SUMSQ_MAX_CHUNKS];
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (size_t k = 0; k < nchunks; k++) {
        size_t lo = k * chunk, hi = lo + chunk < n ? lo + chunk : n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        partial[k] = s;
    }
    double total = 0.0;
    for (size_t k = 0; k < nchunks; k++) total += partial[k];
    return total;
}

/* x *= s */
static void cpu_scale(void *self, float *x, size_t n, float s)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* A float is finite when its exponent bits are not all ones; testing the
 * bits keeps the answer right under any floating-point compiler flags. */
static int cpu_all_finite(void *self, const float *x, size_t n)
{
    int bad = 0;
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static) reduction(| : bad)
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

/* ---------------------------------------------------------- optimizer */

/* The optimizer's CPU loop is an OpenMP region without a team size of its
 * own (TFTX_OPT_CPU_STEP), so it takes the process default: set it to this
 * backend's thread count for the call and put the old value back. */
static tftx_status cpu_optimizer_step(void *self, const tftx_optimizer_ops *opt, const void *opt_self,
                                      const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges, float *w,
                                      const float *g, float *const *slots, tftx_error *err)
{
    const cpu_backend *be = self;
    if (!opt || !opt->step_cpu)
        return be->host->error(err, TFTX_ERR_INVALID, "cpu backend: the optimizer has no CPU step");
    int saved = omp_get_max_threads();
    omp_set_num_threads(be->nthreads);
    opt->step_cpu(opt_self, st, ranges, n_ranges, w, g, slots);
    omp_set_num_threads(saved);
    return TFTX_OK;
}

/* ------------------------------------------------------------ the table */

static const tftx_backend_ops OPS = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_in = cpu_copy_in,
    .copy_out = cpu_copy_out,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .threads = cpu_threads,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .activation_forward = cpu_activation_forward,
    .activation_backward = cpu_activation_backward,
    .tanh_forward = cpu_tanh_forward,
    .tanh_backward = cpu_tanh_backward,
    .residual_forward = cpu_residual_forward,
    .residual_backward = cpu_residual_backward,
    .dropout_forward = cpu_dropout_forward,
    .dropout_backward = cpu_dropout_backward,
    .pool_first_forward = cpu_pool_first_forward,
    .pool_first_backward = cpu_pool_first_backward,
    .pool_mean_forward = cpu_pool_mean_forward,
    .pool_mean_backward = cpu_pool_mean_backward,
    .crossentropy_forward = cpu_crossentropy_forward,
    .crossentropy_backward = cpu_crossentropy_backward,
    .crossentropy_fused = cpu_crossentropy_fused,
    .sum_squares = cpu_sum_squares,
    .scale = cpu_scale,
    .all_finite = cpu_all_finite,
    .optimizer_step = cpu_optimizer_step,
};

/* ------------------------------------------------------- descriptor */

static tftx_status cpu_create(const tftx_host *host, const tftx_value *values, void **instance, tftx_error *err);
static void cpu_destroy(void *instance);

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_BACKEND,
    .name = "cpu",
    .version = "1.0.0",
    .summary = "CPU kernels: OpenMP threads, OpenBLAS sgemm for every matrix product",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static tftx_status cpu_create(const tftx_host *host, const tftx_value *values, void **instance, tftx_error *err)
{
    int64_t threads = tftx_param(&DESC, values, "threads")->i;
    if (threads < 0 || threads > 1024)
        return host->error(err, TFTX_ERR_INVALID, "threads must be in [0, 1024], got %lld", (long long)threads);
    if (threads == 0) threads = omp_get_num_procs();
    if (threads < 1) threads = 1;
    cpu_backend *be = calloc(1, sizeof *be);
    if (!be) return host->error(err, TFTX_ERR_NOMEM, "cpu backend: out of memory");
    be->host = host;
    be->nthreads = (int)threads;
    host->log(TFTX_LOG_DEBUG, "cpu backend: %d threads", be->nthreads);
    *instance = be;
    return TFTX_OK;
}

static void cpu_destroy(void *instance)
{
    free(instance);
}

TFTX_PLUGIN(DESC)
