/*
 * optim_bench.c -- memory bandwidth of the optimizer plugins' CPU step.
 *
 * An optimizer step is one pass over memory: per parameter it reads the
 * weight, the gradient and every slot, and writes back the weight and the
 * slots. This program times step_cpu of each optimizer plugin over N
 * parameters (best of several repetitions after a warm-up) and reports the
 * effective bandwidth
 *
 *   GB/s = N * bytes_per_param / seconds,
 *   bytes_per_param = 4 * (2 * (1 + slots) + 1)   (w and slots read and
 *                                                  written, g read)
 *
 * e.g. AdamW: w, g, m, v read, w, m, v written = 28 bytes. Next to it, a
 * STREAM-style triad a[i] = b[i] + s * c[i] (12 bytes per element) is timed
 * with the same threads and the same static partition, as the bandwidth
 * the step can hope for.
 *
 * Usage: tftx_optim_bench [-n PARAMS] [-r REPS]   (threads: OMP_NUM_THREADS)
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/optimizer.h>

#include "bench_util.h"
#include "plugins.h"
#include "runner.h"
#include "tree.h"

#define WARMUP 2

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float)) != 0) {
        fprintf(stderr, "out of memory for %zu floats\n", n);
        exit(1);
    }
    return p;
}

/* Fill in parallel with the static partition the loops use, so each
 * thread's pages are first touched by that thread. */
static void fill(float *x, size_t n, float base, float step)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = base + step * (float)(i % 1000);
}

static double best_of(double *t, int reps)
{
    double best = t[0];
    for (int r = 1; r < reps; r++)
        if (t[r] < best) best = t[r];
    return best;
}

/* ---------------------------------------------------------------- triad */

static double triad_seconds(size_t n, int reps)
{
    float *a = alloc_floats(n), *b = alloc_floats(n), *c = alloc_floats(n);
    fill(a, n, 0, 0);
    fill(b, n, 1, 1e-3f);
    fill(c, n, 2, 1e-3f);
    double t[64];
    const float s = 3.0f;
    for (int r = -WARMUP; r < reps; r++) {
        double t0 = omp_get_wtime();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        if (r >= 0) t[r] = omp_get_wtime() - t0;
    }
    /* use the result so the loop cannot be dropped */
    if (a[n / 2] != b[n / 2] + s * c[n / 2]) fprintf(stderr, "triad: wrong result\n");
    free(a), free(b), free(c);
    return best_of(t, reps);
}

/* ---------------------------------------------------------------- optimizers */

typedef struct config {
    const char *label;
    const char *plugin;
    const char *key; /* one non-default parameter, or NULL */
    double value;
} config;

static const config CONFIGS[] = {
    {"sgd", "sgd", NULL, 0},         {"sgd momentum=0.9", "sgd", "momentum", 0.9},
    {"adam", "adam", NULL, 0},       {"adam amsgrad", "adam", "amsgrad", 1},
    {"adamw", "adamw", NULL, 0},     {"adamw amsgrad", "adamw", "amsgrad", 1},
    {"adagrad", "adagrad", NULL, 0},
};

/* Seconds of the best step, and the slot count; -1 when the plugin fails. */
static double optimizer_seconds(registry *reg, const config *c, size_t n, int reps, int *n_slots)
{
    char err[1024];
    const plugin *pl = registry_find(reg, TFTX_KIND_OPTIMIZER, c->plugin, err, sizeof err);
    if (!pl) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    const tftx_plugin_desc *d = pl->desc;
    const tftx_optimizer_ops *ops = d->ops;
    tnode *section = tnode_new(T_GROUP, NULL, "bench", 0);
    if (c->key) {
        int is_bool = strcmp(c->key, "amsgrad") == 0;
        tnode *v = tnode_new(is_bool ? T_BOOL : T_FLOAT, c->key, "bench", 0);
        v->i = (int64_t)c->value;
        v->f = c->value;
        tnode_add(section, v);
    }
    tftx_value *values = values_from_section(d, section);
    tnode_free(section);
    void *self = NULL;
    tftx_error e = {0};
    if (d->create(&tftx_host_services, values, &self, &e) != TFTX_OK) {
        fprintf(stderr, "%s: %s\n", c->label, e.message);
        values_free(d, values);
        return -1;
    }
    int ns = ops->n_slots(self);
    float *w = alloc_floats(n), *g = alloc_floats(n), *slots[TFTX_OPT_MAX_SLOTS] = {0};
    fill(w, n, -0.5f, 1e-3f);
    fill(g, n, -0.25f, 5e-4f);
    for (int k = 0; k < ns; k++) {
        slots[k] = alloc_floats(n);
        fill(slots[k], n, ops->slot_init(self, k), 0);
    }
    tftx_opt_step st[TFTX_OPT_GROUPS] = {{.lr = (float)tftx_param(d, values, "lr")->f}};
    const tftx_value *wd = tftx_param(d, values, "weight_decay");
    st[0].weight_decay = wd ? (float)wd->f : 0;
    const tftx_opt_range all = {0, n, TFTX_OPT_GROUP_DECAY};
    double t[64];
    for (int r = -WARMUP; r < reps; r++) {
        st[0].step = r + WARMUP + 1;
        double t0 = omp_get_wtime();
        ops->prepare(self, &st[0]);
        ops->step_cpu(self, st, &all, 1, w, g, slots);
        if (r >= 0) t[r] = omp_get_wtime() - t0;
    }
    for (int k = 0; k < ns; k++) free(slots[k]);
    free(w), free(g);
    d->destroy(self);
    values_free(d, values);
    *n_slots = ns;
    return best_of(t, reps);
}

int main(int argc, char **argv)
{
    size_t n = 10 * 1000 * 1000;
    int reps = 10;
    if (bench_n_reps(argc, argv, &n, &reps, "   (threads: OMP_NUM_THREADS)")) return 2;
    if (reps > 64) {
        fprintf(stderr, "need REPS <= 64\n");
        return 2;
    }
    registry reg;
    registry_init(&reg);

    printf("optimizer step_cpu over %zu parameters, %d threads, best of %d after %d warm-up\n", n,
           omp_get_max_threads(), reps, WARMUP);
    double triad = triad_seconds(n, reps);
    double triad_gbs = 12.0 * (double)n / triad / 1e9;
    printf("%-18s %6s %10s %9s %9s\n", "kernel", "B/par", "ms", "GB/s", "of triad");
    printf("%-18s %6d %10.2f %9.2f %8.0f%%\n", "triad", 12, triad * 1e3, triad_gbs, 100.0);
    int rc = 0;
    for (size_t c = 0; c < sizeof CONFIGS / sizeof *CONFIGS; c++) {
        int ns = 0;
        double s = optimizer_seconds(&reg, &CONFIGS[c], n, reps, &ns);
        if (s < 0) {
            rc = 1;
            continue;
        }
        int bytes = 4 * (2 * (1 + ns) + 1);
        double gbs = (double)bytes * (double)n / s / 1e9;
        printf("%-18s %6d %10.2f %9.2f %8.0f%%\n", CONFIGS[c].label, bytes, s * 1e3, gbs, 100.0 * gbs / triad_gbs);
    }
    registry_free(&reg);
    return rc;
}
