/*
 * kernel_pairs.c -- the same data in the cpu and the cuda backend, and
 * their comparison, for test_cuda_kernels (see kernel_pairs.h).
 */
#include "kernel_pairs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-4
#define ATOL 1e-5

bk cpu, gpu;
int failures;
double tol_scale = 1.0;
int act16;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float urand(float lo, float hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

float *rand_host(size_t n, float lo, float hi)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = urand(lo, hi);
    return h;
}

/* A copy of host data in backend memory. */
void *put(bk *b, const void *h, size_t bytes)
{
    void *d = b->ops->alloc(b->self, bytes);
    if (!d) {
        fprintf(stderr, "alloc of %zu bytes failed\n", bytes);
        exit(1);
    }
    if (h) b->ops->copy_in(b->self, d, h, bytes);
    return d;
}

/* gpu buffers that hold bfloat16 activations (pair_of while act16) */
#define MAX_ACT_BUFFERS 256
static const void *act_buffers[MAX_ACT_BUFFERS];

static int is_act(const void *d)
{
    for (int i = 0; i < MAX_ACT_BUFFERS; i++)
        if (d && act_buffers[i] == d) return 1;
    return 0;
}

void set_act(const void *d, int on)
{
    for (int i = 0; i < MAX_ACT_BUFFERS; i++)
        if (act_buffers[i] == (on ? NULL : d)) {
            act_buffers[i] = on ? d : NULL;
            return;
        }
    if (on) {
        fprintf(stderr, "more than %d activation buffers\n", MAX_ACT_BUFFERS);
        exit(1);
    }
}

/* Host floats of n elements of backend buffer d (bfloat16 ones widened). */
float *get(bk *b, const float *d, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    const size_t size = b == &gpu && is_act(d) ? 2 : 4;
    b->ops->copy_out(b->self, h, d, n * size);
    tftx_act_to_float(h, n, size);
    return h;
}

/* cuda (device d) against cpu (device c), n floats */
void compare(const char *what, const float *c, const float *d, size_t n, int exact)
{
    if (act16) exact = 0; /* a bfloat16 output, and the cpu's float: within the tolerance */
    float *hc = get(&cpu, c, n), *hd = get(&gpu, d, n);
    /* at a reduced precision (tol_scale > 1) the rounding of the inputs
       makes errors of the size of the terms summed, not of the result: an
       entry that cancels out gets the tensor's own scale as its bound */
    double scale_floor = 0;
    if (tol_scale > 1)
        for (size_t i = 0; i < n; i++)
            if (fabs((double)hc[i]) > scale_floor) scale_floor = fabs((double)hc[i]);
    double worst = 0;
    size_t worst_i = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)hc[i] - (double)hd[i]);
        int same_nan = isnan(hc[i]) && isnan(hd[i]);
        double ratio = same_nan ? 0
                       : exact  ? (hc[i] == hd[i] ? 0 : INFINITY)
                                : diff / (tol_scale * (ATOL + RTOL * fmax(fabs(hc[i]), scale_floor)));
        if (!(ratio <= 1)) bad++;
        if (!(ratio <= worst)) worst = ratio, worst_i = i;
    }
    if (bad) {
        printf("FAIL %-48s %zu of %zu differ; worst [%zu] cpu %.9g cuda %.9g\n", what, bad, n, worst_i,
               (double)hc[worst_i], (double)hd[worst_i]);
        failures++;
    } else {
        printf("ok   %-48s n=%zu worst/tol %.3g%s\n", what, n, worst, exact ? " (bit-exact)" : "");
    }
    free(hc);
    free(hd);
}

/* h (n floats) into gpu buffer d: as bfloat16 when act. Returns the
 * floats the cpu side gets (h, rounded to bfloat16 when act), malloc'd. */
static float *write_gpu(float *d, const float *h, size_t n, int act)
{
    float *r = malloc((n ? n : 1) * sizeof *r);
    memcpy(r, h, n * sizeof *r);
    if (!act) {
        gpu.ops->copy_in(gpu.self, d, r, n * sizeof *r);
        return r;
    }
    uint16_t *b = malloc((n ? n : 1) * sizeof *b);
    for (size_t i = 0; i < n; i++) {
        b[i] = tftx_bf16_bits(h[i]);
        uint32_t u = (uint32_t)b[i] << 16;
        memcpy(&r[i], &u, sizeof u);
    }
    gpu.ops->copy_in(gpu.self, d, b, n * sizeof *b);
    free(b);
    return r;
}

void pair_write(pair *p, const float *h)
{
    float *r = write_gpu(p->d, h, p->n, p->act);
    cpu.ops->copy_in(cpu.self, p->c, r, p->n * sizeof *r);
    free(r);
}

/* A new gpu buffer of the type of p's, holding h. */
float *put_like(const pair *p, const float *h)
{
    float *d = put(&gpu, NULL, p->n * (p->act ? 2 : 4));
    if (p->act) set_act(d, 1);
    free(write_gpu(d, h, p->n, p->act));
    return d;
}

pair pair_new(const float *h, size_t n, int act)
{
    pair p = {put(&cpu, NULL, n * sizeof *h), put(&gpu, NULL, n * (act ? 2 : 4)), n, act};
    if (act) set_act(p.d, 1);
    pair_write(&p, h);
    return p;
}

pair pair_of(const float *h, size_t n)
{
    return pair_new(h, n, act16);
}

pair pair_param(size_t n, float lo, float hi)
{
    float *h = rand_host(n, lo, hi);
    pair p = pair_new(h, n, 0);
    free(h);
    return p;
}

pair pair_rand(size_t n, float lo, float hi)
{
    float *h = rand_host(n, lo, hi);
    pair p = pair_of(h, n);
    free(h);
    return p;
}

/* Random multiples of 1/64 in [-1, 1]: sums of up to 2^17 of them are
 * exact in float, so a sum over rows gives the same bits in any order. */
pair pair_grid(size_t n, int act)
{
    float *h = rand_host(n, -1, 1);
    for (size_t i = 0; i < n; i++) h[i] = roundf(h[i] * 64.0f) / 64.0f; /* bfloat16 holds these too */
    pair p = pair_new(h, n, act && act16);
    free(h);
    return p;
}

/* New random values, the same in both (before a bit-exact check of a
 * kernel that accumulates, whose buffers a tolerance-checked kernel left
 * a few ulp apart). */
void pair_reset(pair *p, float lo, float hi)
{
    float *h = rand_host(p->n, lo, hi);
    pair_write(p, h);
    free(h);
}

void pair_free(pair *p)
{
    if (p->c) cpu.ops->free(cpu.self, p->c);
    if (p->d) set_act(p->d, 0), gpu.ops->free(gpu.self, p->d);
    p->c = p->d = NULL;
}

void *put_both(const void *h, size_t bytes, void **dgpu)
{
    *dgpu = put(&gpu, h, bytes);
    return put(&cpu, h, bytes);
}

/* A second run of a cuda kernel must give the same bits: run, keep, rerun. */
void check_repeat(const char *what, const float *d1, const float *d2, size_t n)
{
    float *a = get(&gpu, d1, n), *b = get(&gpu, d2, n);
    if (memcmp(a, b, n * sizeof *a) != 0) {
        printf("FAIL %-48s second run differs\n", what);
        failures++;
    } else {
        printf("ok   %-48s repeatable\n", what);
    }
    free(a);
    free(b);
}

void check(const char *what, int ok, const char *detail)
{
    printf("%s %-48s %s\n", ok ? "ok  " : "FAIL", what, detail);
    failures += !ok;
}
