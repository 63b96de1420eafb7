/*
 * cuda_optim_bench.c -- memory bandwidth of the optimizers' fused CUDA step
 * (the cuda backend's optimizer_step, one launch over the arena) next to a
 * device-to-device copy, the bandwidth a one-pass update can hope for.
 * The arena is cut as a transformer's is: a 1M-element weight matrix
 * (decayed), then its 1024-element bias (no_decay), and so on.
 *
 *   GB/s = N * bytes_per_param / seconds, bytes_per_param as in
 *   optim_bench.c (AdamW: 28); the copy counts 8 bytes per float (read
 *   and write), as cudaMemcpy's own figures do.
 *
 * Each figure is the best of REPS timed calls after a warm-up, timed on the
 * host around a call and a sync (the launch is microseconds against a
 * step of a millisecond at 100M parameters).
 *
 * Usage: tftx_cuda_optim_bench [-n PARAMS] [-r REPS]   (default 100M, 20)
 * Needs a GPU; says so and exits 77 without one.
 */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>
#include <tftx/optimizer.h>
#include <time.h>

#include "bench_cuda.h"
#include "bench_util.h"
#include "plugins.h"
#include "runner.h"
#include "tree.h"

static const char *const OPTIMIZERS[] = {"adamw", "adam", "sgd", "adagrad"};

int main(int argc, char **argv)
{
    size_t n = 100 * 1000 * 1000;
    int reps = 20;
    if (bench_n_reps(argc, argv, &n, &reps, "")) return 2;
    registry reg;
    registry_init(&reg);
    char err[1024];
    const plugin *bp = bench_cuda_plugin(&reg);
    if (!bp) {
        registry_free(&reg);
        return 77;
    }
    tftx_value *bv = values_from_section(bp->desc, NULL);
    void *be = NULL;
    tftx_error e = {0};
    if (bp->desc->create(&tftx_host_services, bv, &be, &e) != TFTX_OK) {
        fprintf(stderr, "cuda backend: %s\n", e.message);
        return 1;
    }
    const tftx_backend_ops *b = bp->desc->ops;
    float *w = b->alloc(be, n * 4), *g = b->alloc(be, n * 4), *slots[TFTX_OPT_MAX_SLOTS] = {0};
    if (!w || !g) {
        fprintf(stderr, "out of device memory for %zu parameters\n", n);
        return 1;
    }
    printf("fused optimizer step on the GPU over %zu parameters, best of %d after a warm-up\n", n, reps);
    printf("%-10s %6s %10s %9s %9s\n", "kernel", "B/par", "ms", "GB/s", "of copy");

    double best = 1e30;
    for (int r = -1; r < reps; r++) { /* the copy: g -> w */
        double t0 = bench_now();
        cudaMemcpyAsync(w, g, n * 4, cudaMemcpyDeviceToDevice, 0);
        cudaDeviceSynchronize();
        if (r >= 0 && bench_now() - t0 < best) best = bench_now() - t0;
    }
    double copy_gbs = 8.0 * (double)n / best / 1e9;
    printf("%-10s %6d %10.3f %9.1f %8.0f%%\n", "copy", 8, best * 1e3, copy_gbs, 100.0);

    size_t n_ranges = 0;
    tftx_opt_range *ranges = malloc((2 * (n >> 20) + 2) * sizeof *ranges);
    for (size_t off = 0; off < n; n_ranges++) {
        size_t len = n_ranges % 2 ? 1024 : 1u << 20;
        if (len > n - off) len = n - off;
        ranges[n_ranges] = (tftx_opt_range){off, len, (int)(n_ranges % 2)};
        off += len;
    }
    int rc = 0;
    for (size_t k = 0; k < sizeof OPTIMIZERS / sizeof *OPTIMIZERS; k++) {
        const plugin *op = registry_find(&reg, TFTX_KIND_OPTIMIZER, OPTIMIZERS[k], err, sizeof err);
        if (!op) {
            fprintf(stderr, "%s\n", err);
            rc = 1;
            continue;
        }
        const tftx_optimizer_ops *o = op->desc->ops;
        tftx_value *ov = values_from_section(op->desc, NULL);
        void *os = NULL;
        if (op->desc->create(&tftx_host_services, ov, &os, &e) != TFTX_OK) {
            fprintf(stderr, "%s: %s\n", OPTIMIZERS[k], e.message);
            rc = 1;
            values_free(op->desc, ov);
            continue;
        }
        int ns = o->n_slots(os);
        for (int s = 0; s < ns; s++) slots[s] = b->alloc(be, n * 4);
        tftx_opt_step st[TFTX_OPT_GROUPS] = {{.lr = 1e-3f, .weight_decay = 0.01f}, {.lr = 1e-3f}};
        best = 1e30;
        for (int r = -1; r < reps; r++) {
            for (int q = 0; q < TFTX_OPT_GROUPS; q++) st[q].step = r + 2, o->prepare(os, &st[q]);
            double t0 = bench_now();
            if (b->optimizer_step(be, o, os, st, ranges, n_ranges, w, g, slots, &e) != TFTX_OK) {
                fprintf(stderr, "%s: %s\n", OPTIMIZERS[k], e.message);
                rc = 1;
                break;
            }
            b->sync(be);
            if (r >= 0 && bench_now() - t0 < best) best = bench_now() - t0;
        }
        int bytes = 4 * (2 * (1 + ns) + 1);
        double gbs = (double)bytes * (double)n / best / 1e9;
        printf("%-10s %6d %10.3f %9.1f %8.0f%%%s\n", OPTIMIZERS[k], bytes, best * 1e3, gbs, 100.0 * gbs / copy_gbs,
               o->step_cuda ? "" : "  (no step_cuda: staged through the host)");
        for (int s = 0; s < ns; s++) b->free(be, slots[s]), slots[s] = NULL;
        op->desc->destroy(os);
        values_free(op->desc, ov);
    }
    b->free(be, w), b->free(be, g), free(ranges);
    bp->desc->destroy(be);
    values_free(bp->desc, bv);
    registry_free(&reg);
    return rc;
}
