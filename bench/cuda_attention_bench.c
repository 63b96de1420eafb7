/*
 * cuda_attention_bench.c -- the cuda backend's attention, forward and
 * backward, at one shape, with the batched cuBLAS products and with the
 * fused kernels (train.cuda.attention), at tf32 and bf16.
 *
 *   TFLOP/s counts the products attention must do, 4*B*NH*T*T*HS a pass
 *   forward and twice that backward, halved when causal (the masked half
 *   need not be computed), whatever a path computes in fact.
 *
 * Each figure is the best of REPS timed calls after a warm-up, timed on the
 * host around a call and a sync.
 *
 * Usage: tftx_cuda_attention_bench [-B 16] [-T 1024] [-C 768] [-H 12]
 *                                  [-p 0.1] [--no-causal] [-r 10]
 * (the defaults: GPT-2 124M's attention, batch 16). Needs a GPU; says so
 * and exits 77 without one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>
#include <time.h>

#include "bench_cuda.h"
#include "bench_util.h"
#include "plugins.h"
#include "runner.h"

static void set_string(const tftx_plugin_desc *d, tftx_value *v, const char *name, const char *value)
{
    tftx_value *pv = (tftx_value *)tftx_param(d, v, name);
    free((char *)pv->s);
    pv->s = strdup(value);
}

/* Random activations in [-1, 1] into backend memory: floats, or the
 * bfloat16 halves of floats where the backend stores those (act_size). */
static float *random_floats(const tftx_backend_ops *b, void *be, size_t n, uint64_t seed)
{
    const size_t size = b->act_size ? b->act_size(be) : 4;
    float *h = malloc(n * sizeof *h), *d = b->alloc(be, n * sizeof *h);
    if (!h || !d) {
        fprintf(stderr, "out of memory for %zu floats\n", n);
        exit(1);
    }
    uint16_t *h16 = (uint16_t *)h;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        float x = (float)((seed >> 40) * (2.0 / 16777216.0) - 1.0);
        if (size == 2)
            h16[i] = tftx_bf16_bits(x);
        else
            h[i] = x;
    }
    b->copy_in(be, d, h, n * size);
    free(h);
    return d;
}

int main(int argc, char **argv)
{
    int B = 16, T = 1024, C = 768, NH = 12, reps = 10, causal = 1;
    float p = 0.1f;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "-B") == 0)
            B = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "-T") == 0)
            T = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "-C") == 0)
            C = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "-H") == 0)
            NH = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "-p") == 0)
            p = (float)atof(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "-r") == 0)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-causal") == 0)
            causal = 0;
        else {
            fprintf(stderr, "usage: %s [-B N] [-T N] [-C N] [-H N] [-p DROPOUT] [--no-causal] [-r REPS]\n", argv[0]);
            return 2;
        }
    }
    if (B < 1 || T < 1 || NH < 1 || C % NH || reps < 1 || !(p >= 0 && p < 1)) return 2;
    registry reg;
    registry_init(&reg);
    const plugin *bp = bench_cuda_plugin(&reg);
    if (!bp) {
        registry_free(&reg);
        return 77;
    }
    const int HS = C / NH;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    const double flops = 4.0 * B * NH * (double)T * T * HS * (causal ? 0.5 : 1.0);
    const tftx_dropout drop = {.p = p, .seed = 1234, .stream = 7};
    printf("attention B=%d T=%d C=%d heads=%d (head size %d), %s, dropout %.2g; best of %d after a warm-up\n", B, T, C,
           NH, HS, causal ? "causal" : "not causal", (double)p, reps);
    printf("%-6s %-7s %12s %9s %12s %9s\n", "prec", "path", "forward ms", "TFLOP/s", "backward ms", "TFLOP/s");
    static const char *const PRECISIONS[] = {"tf32", "bf16"}, *const PATHS[] = {"cublas", "fused"};
    int rc = 0;
    for (int k = 0; k < 2; k++)
        for (int f = 0; f < 2; f++) {
            tftx_value *v = values_from_section(bp->desc, NULL);
            set_string(bp->desc, v, "precision", PRECISIONS[k]);
            set_string(bp->desc, v, "attention", PATHS[f]);
            void *be = NULL;
            tftx_error e = {0};
            if (bp->desc->create(&tftx_host_services, v, &be, &e) != TFTX_OK) {
                fprintf(stderr, "cuda backend: %s\n", e.message);
                values_free(bp->desc, v);
                rc = 1;
                continue;
            }
            const tftx_backend_ops *b = bp->desc->ops;
            size_t att_n = natt, scr_n = natt;
            if (b->attention_sizes) b->attention_sizes(be, B, T, C, NH, &att_n, &scr_n);
            float *qkv = random_floats(b, be, nqkv, 1), *dout = random_floats(b, be, nout, 2);
            float *out = b->alloc(be, nout * 4), *dqkv = b->alloc(be, nqkv * 4);
            float *att = b->alloc(be, att_n * 4), *scr = b->alloc(be, scr_n * 4);
            if (!out || !dqkv || !att || !scr) {
                fprintf(stderr, "out of device memory (%s %s)\n", PRECISIONS[k], PATHS[f]);
                rc = 1;
            } else {
                double best_f = 1e30, best_b = 1e30;
                for (int r = -1; r < reps; r++) {
                    double t0 = bench_now();
                    b->attention_forward(be, out, att, qkv, NULL, causal, B, T, C, NH, drop);
                    b->sync(be);
                    double t1 = bench_now();
                    b->attention_backward(be, dqkv, scr, dout, qkv, att, NULL, causal, B, T, C, NH, drop, 0);
                    b->sync(be);
                    double t2 = bench_now();
                    if (r >= 0 && t1 - t0 < best_f) best_f = t1 - t0;
                    if (r >= 0 && t2 - t1 < best_b) best_b = t2 - t1;
                }
                /* read as floats, bfloat16 pairs show a failed call, and a
                   non-finite value in every other element */
                const size_t act = b->act_size ? b->act_size(be) : 4;
                if (!b->all_finite(be, dqkv, nqkv * act / 4)) {
                    fprintf(stderr, "%s %s: a CUDA call failed or the gradient is not finite\n", PRECISIONS[k],
                            PATHS[f]);
                    rc = 1;
                }
                printf("%-6s %-7s %12.3f %9.1f %12.3f %9.1f\n", PRECISIONS[k], PATHS[f], best_f * 1e3,
                       flops / best_f / 1e12, best_b * 1e3, 2 * flops / best_b / 1e12);
            }
            float *all[] = {qkv, dout, out, dqkv, att, scr};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++)
                if (all[i]) b->free(be, all[i]);
            bp->desc->destroy(be);
            values_free(bp->desc, v);
        }
    registry_free(&reg);
    return rc;
}
