/*
 * kernel_bench.c -- speed of the cpu backend's kernels at the shapes of
 * two small transformers, next to the machine's sgemm peak.
 *
 *   bert-small: B=32, T=128, C=256, 4 heads, d_ff 1024 (encoder: padding
 *               mask, no causal mask)
 *   gpt-small:  B=8, T=256, C=384, 6 heads, d_ff 1536, vocab 8192 (decoder:
 *               causal mask, the LM head)
 *
 * For every linear layer of one block (qkv, attention projection, fc1, fc2,
 * and gpt's LM head), matmul forward and backward through the backend, in
 * GFLOP/s: forward 2*N*C*OC, backward 4*N*C*OC (dinp and dweight; the bias
 * sum is not counted). The peak is the backend's matmul at 1024^3 without
 * bias, i.e. one plain sgemm. Attention in ms and in GFLOP/s of its T x T
 * products: forward Q K^T and P V, 4*B*T*T*C; backward dV, dP, dQ and dK,
 * 8*B*T*T*C; counted over the full T x T even where the causal mask lets
 * the forward skip work.
 * Layer norm, GELU and cross-entropy in GB/s of their least memory traffic
 * (each input read once, each output written once, += gradients read and
 * written):
 *   layernorm fwd 8 bytes/element, bwd 16;  gelu fwd 8, bwd 16;
 *   crossentropy fwd 8 (logits in, probs out), bwd 12.
 * Each figure is the best of REPS runs after one warm-up run.
 *
 * The plugin is loaded with dlopen like the host does, and given a minimal
 * table of host services, so this program needs neither BLAS nor the host
 * library. Usage:
 *   tftx_kernel_bench [--plugin PATH] [--threads 1,2] [--reps N]
 * PATH defaults to <dir of this program>/../lib/tftx/plugins/tftx_backend_cpu.so.
 */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static const tftx_backend_ops *ops;
static void *be;
static int reps = 5;

/* ------------------------------------------------ minimal host services */

static void host_log(tftx_log_level level, const char *fmt, ...)
{
    if (level < TFTX_LOG_WARN) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static tftx_status host_error(tftx_error *err, tftx_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->status = status;
    return status;
}

static void *host_alloc(size_t bytes, size_t alignment)
{
    void *p = NULL;
    if (posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, bytes ? bytes : 1)) return NULL;
    memset(p, 0, bytes);
    return p;
}

static const tftx_host HOST = {
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .size = sizeof(tftx_host),
    .log = host_log,
    .error = host_error,
    .alloc = host_alloc,
    .free = free,
};

/* ------------------------------------------------------------- helpers */

/* A backend buffer of n floats, filled with small deterministic values. */
static float *floats(size_t n)
{
    float *p = ops->alloc(be, n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory for %zu floats\n", n);
        exit(1);
    }
    uint32_t x = 12345u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = ((float)(x >> 8) * (1.0f / 16777216.0f) - 0.5f) * 0.2f;
    }
    return p;
}

/* Best time in seconds of `fn(ctx)` over reps runs, after one warm-up. */
typedef void (*bench_fn)(void *ctx);
static double best_time(bench_fn fn, void *ctx)
{
    fn(ctx);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        fn(ctx);
        ops->sync(be);
        double t = bench_now() - t0;
        if (t < best) best = t;
    }
    return best;
}

/* ------------------------------------------------------------- matmul */

typedef struct mm {
    int N, C, OC;
    float *inp, *w, *b, *out, *dinp, *dw, *db;
} mm;

static void mm_fwd(void *c)
{
    mm *m = c;
    ops->matmul_forward(be, m->out, m->inp, m->w, m->b, m->N, m->C, m->OC);
}

static void mm_bwd(void *c)
{
    mm *m = c;
    ops->matmul_backward(be, m->dinp, m->dw, m->db, m->out, m->inp, m->w, m->N, m->C, m->OC, 1, 1);
}

static void bench_matmul(const char *name, int N, int C, int OC, int bias)
{
    mm m = {N,
            C,
            OC,
            floats((size_t)N * C),
            floats((size_t)OC * C),
            bias ? floats(OC) : NULL,
            floats((size_t)N * OC),
            floats((size_t)N * C),
            floats((size_t)OC * C),
            bias ? floats(OC) : NULL};
    double flop = 2.0 * N * C * OC;
    double tf = best_time(mm_fwd, &m);
    printf("  %-14s N=%-5d C=%-5d OC=%-5d  fwd %6.1f GFLOP/s", name, N, C, OC, flop / tf * 1e-9);
    if (bias) {
        double tb = best_time(mm_bwd, &m);
        printf("   bwd %6.1f GFLOP/s", 2 * flop / tb * 1e-9);
    }
    printf("\n");
    float *all[] = {m.inp, m.w, m.b, m.out, m.dinp, m.dw, m.db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ops->free(be, all[i]);
}

/* ----------------------------------------------------------- attention */

typedef struct att {
    int B, T, C, NH, causal;
    uint8_t *mask;
    tftx_dropout drop;
    float *qkv, *out, *att, *dqkv, *scratch, *dout;
} att;

static void att_fwd(void *c)
{
    att *a = c;
    ops->attention_forward(be, a->out, a->att, a->qkv, a->mask, a->causal, a->B, a->T, a->C, a->NH, a->drop);
}

static void att_bwd(void *c)
{
    att *a = c;
    ops->attention_backward(be, a->dqkv, a->scratch, a->dout, a->qkv, a->att, a->mask, a->causal, a->B, a->T, a->C,
                            a->NH, a->drop, 1);
}

static void bench_attention(int B, int T, int C, int NH, int causal, float p)
{
    att a = {B,
             T,
             C,
             NH,
             causal,
             NULL,
             {.p = p, .seed = 1, .stream = 2},
             floats((size_t)B * T * 3 * C),
             floats((size_t)B * T * C),
             floats((size_t)B * NH * T * T),
             floats((size_t)B * T * 3 * C),
             floats((size_t)B * NH * T * T),
             floats((size_t)B * T * C)};
    if (!causal) { /* padding: the last quarter of every other sequence */
        a.mask = malloc((size_t)B * T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) a.mask[(size_t)b * T + t] = !(b % 2 && t >= 3 * T / 4);
    }
    double flop = 4.0 * B * T * T * C;
    double tf = best_time(att_fwd, &a), tb = best_time(att_bwd, &a);
    printf("  attention      %s p=%.1f           fwd %6.2f ms %5.1f GFLOP/s   bwd %6.2f ms %5.1f GFLOP/s\n",
           causal ? "causal     " : "padding mask", (double)p, tf * 1e3, flop / tf * 1e-9, tb * 1e3,
           2 * flop / tb * 1e-9);
    free(a.mask);
    float *all[] = {a.qkv, a.out, a.att, a.dqkv, a.scratch, a.dout};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ops->free(be, all[i]);
}

/* ------------------------------------------ layer norm, GELU, softmax */

typedef struct ew {
    int N, C;
    float *inp, *out, *dout, *dinp, *w, *b, *dw, *db, *mean, *rstd;
    int32_t *targets;
} ew;

static void ln_fwd(void *c)
{
    ew *e = c;
    ops->layernorm_forward(be, e->out, e->mean, e->rstd, e->inp, e->w, e->b, e->N, e->C, 1e-5f);
}

static void ln_bwd(void *c)
{
    ew *e = c;
    ops->layernorm_backward(be, e->dinp, e->dw, e->db, e->dout, e->inp, e->w, e->mean, e->rstd, e->N, e->C, 1, 1);
}

static void gelu_fwd(void *c)
{
    ew *e = c;
    ops->activation_forward(be, e->out, e->inp, (size_t)e->N * e->C, TFTX_ACT_GELU);
}

static void gelu_bwd(void *c)
{
    ew *e = c;
    ops->activation_backward(be, e->dinp, e->dout, e->inp, (size_t)e->N * e->C, TFTX_ACT_GELU, 1);
}

static void gelu_tanh_fwd(void *c)
{
    ew *e = c;
    ops->activation_forward(be, e->out, e->inp, (size_t)e->N * e->C, TFTX_ACT_GELU_TANH);
}

static void gelu_tanh_bwd(void *c)
{
    ew *e = c;
    ops->activation_backward(be, e->dinp, e->dout, e->inp, (size_t)e->N * e->C, TFTX_ACT_GELU_TANH, 1);
}

static void ce_fwd(void *c)
{
    ew *e = c;
    ops->crossentropy_forward(be, e->mean, e->out, e->inp, e->targets, e->N, e->C, e->C);
}

static void ce_bwd(void *c)
{
    ew *e = c;
    const float dloss = 1.0f / (float)e->N; /* the cpu backend: host memory */
    ops->crossentropy_backward(be, e->dinp, e->out, e->targets, &dloss, e->N, e->C, e->C);
}

static ew ew_new(int N, int C)
{
    size_t n = (size_t)N * C;
    ew e = {N,         C,         floats(n), floats(n), floats(n), floats(n), floats(C),
            floats(C), floats(C), floats(C), floats(N), floats(N), NULL};
    e.targets = malloc((size_t)N * sizeof *e.targets);
    for (int i = 0; i < N; i++) e.targets[i] = (i * 7919) % C;
    return e;
}

static void ew_free(ew *e)
{
    float *all[] = {e->inp, e->out, e->dout, e->dinp, e->w, e->b, e->dw, e->db, e->mean, e->rstd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ops->free(be, all[i]);
    free(e->targets);
}

static void bench_bandwidth(const char *name, int N, int C, bench_fn fwd, double fwd_bytes, bench_fn bwd,
                            double bwd_bytes)
{
    ew e = ew_new(N, C);
    if (fwd == ln_fwd || bwd == ln_bwd) ln_fwd(&e); /* mean, rstd for backward */
    if (fwd == ce_fwd) ce_fwd(&e);                  /* probs for backward */
    double n = (double)N * C;
    double tf = best_time(fwd, &e), tb = best_time(bwd, &e);
    printf("  %-14s N=%-5d C=%-5d           fwd %6.1f GB/s (%5.2f ms)   bwd %6.1f GB/s (%5.2f ms)\n", name, N, C,
           n * fwd_bytes / tf * 1e-9, tf * 1e3, n * bwd_bytes / tb * 1e-9, tb * 1e3);
    ew_free(&e);
}

/* ------------------------------------------------------ an MLP chain */

/* fc1 -> GELU -> fc2 -> residual, forward: BLAS calls and OpenMP regions
 * alternate, as in a model, which is where OpenBLAS's own threads and
 * OpenMP's can fight (compare with the pthread build of OpenBLAS, see
 * README.md). GFLOP/s counts the two matmuls only (4*N*C*F). */
typedef struct chain {
    int N, C, F;
    float *x, *w1, *b1, *h, *g, *w2, *b2, *y, *r;
} chain;

static void chain_fwd(void *c)
{
    chain *m = c;
    ops->matmul_forward(be, m->h, m->x, m->w1, m->b1, m->N, m->C, m->F);
    ops->activation_forward(be, m->g, m->h, (size_t)m->N * m->F, TFTX_ACT_GELU);
    ops->matmul_forward(be, m->y, m->g, m->w2, m->b2, m->N, m->F, m->C);
    ops->residual_forward(be, m->r, m->x, m->y, (size_t)m->N * m->C, (tftx_dropout){0}, 0);
}

static void bench_chain(int N, int C, int F)
{
    chain m = {N,
               C,
               F,
               floats((size_t)N * C),
               floats((size_t)F * C),
               floats(F),
               floats((size_t)N * F),
               floats((size_t)N * F),
               floats((size_t)C * F),
               floats(C),
               floats((size_t)N * C),
               floats((size_t)N * C)};
    double t = best_time(chain_fwd, &m);
    printf("  mlp chain      fc1+gelu+fc2+residual    fwd %6.2f ms %5.1f GFLOP/s\n", t * 1e3,
           4.0 * N * C * F / t * 1e-9);
    float *all[] = {m.x, m.w1, m.b1, m.h, m.g, m.w2, m.b2, m.y, m.r};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ops->free(be, all[i]);
}

/* ---------------------------------------------------------------- main */

typedef struct model {
    const char *name;
    int B, T, C, NH, dff, V, causal;
} model;

static void bench_model(const model *m)
{
    const int N = m->B * m->T;
    printf("%s (B=%d T=%d C=%d heads=%d d_ff=%d", m->name, m->B, m->T, m->C, m->NH, m->dff);
    if (m->V) printf(" vocab=%d", m->V);
    printf(")\n");
    bench_matmul("qkv", N, m->C, 3 * m->C, 1);
    bench_matmul("attn proj", N, m->C, m->C, 1);
    bench_matmul("fc1", N, m->C, m->dff, 1);
    bench_matmul("fc2", N, m->dff, m->C, 1);
    if (m->V) bench_matmul("lm head", N, m->C, m->V, 1);
    bench_attention(m->B, m->T, m->C, m->NH, m->causal, 0.0f);
    bench_attention(m->B, m->T, m->C, m->NH, m->causal, 0.1f);
    bench_bandwidth("layernorm", N, m->C, ln_fwd, 8, ln_bwd, 16);
    bench_bandwidth("gelu (erf)", N, m->dff, gelu_fwd, 8, gelu_bwd, 16);
    bench_bandwidth("gelu (tanh)", N, m->dff, gelu_tanh_fwd, 8, gelu_tanh_bwd, 16);
    if (m->V) bench_bandwidth("crossentropy", N, m->V, ce_fwd, 8, ce_bwd, 12);
    bench_chain(N, m->C, m->dff);
}

static const char *default_plugin(char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return "tftx_backend_cpu.so";
    exe[n] = 0;
    snprintf(buf, size, "%s/../lib/tftx/plugins/tftx_backend_cpu.so", dirname(exe));
    return buf;
}

int main(int argc, char **argv)
{
    char pathbuf[PATH_MAX + 64];
    const char *plugin = default_plugin(pathbuf, sizeof pathbuf), *threads_list = "1,2";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--plugin") && i + 1 < argc)
            plugin = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads_list = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--plugin PATH] [--threads 1,2] [--reps N]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    void *so = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "cannot load %s: %s\n", plugin, dlerror());
        return 1;
    }
    tftx_plugin_entry_fn entry = (tftx_plugin_entry_fn)dlsym(so, TFTX_ENTRY_SYMBOL);
    const tftx_plugin_desc *desc = entry ? entry() : NULL;
    if (!desc || desc->magic != TFTX_PLUGIN_MAGIC || desc->kind != TFTX_KIND_BACKEND || !desc->ops) {
        fprintf(stderr, "%s is not a tftx backend plugin\n", plugin);
        return 1;
    }
    ops = desc->ops;
    static const model MODELS[] = {
        {"bert-small", 32, 128, 256, 4, 1024, 0, 0},
        {"gpt-small", 8, 256, 384, 6, 1536, 8192, 1},
    };
    char list[256];
    snprintf(list, sizeof list, "%s", threads_list);
    for (char *save, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tftx_value v = {.type = TFTX_PARAM_INT, .i = atoi(tok), .is_set = 1};
        tftx_error err = {0};
        if (desc->create(&HOST, &v, &be, &err) != TFTX_OK) {
            fprintf(stderr, "create(threads=%s): %s\n", tok, err.message);
            return 1;
        }
        printf("== %s backend, %d thread(s), best of %d\n", desc->name, ops->threads(be), reps);
        printf("peak\n");
        bench_matmul("sgemm 1024^3", 1024, 1024, 1024, 0);
        for (size_t m = 0; m < sizeof MODELS / sizeof *MODELS; m++) bench_model(&MODELS[m]);
        desc->destroy(be);
    }
    return 0;
}
