/*
 * test_cpu_kernels.c -- the `cpu` backend plugin, loaded from the build's
 * plugin directory (TFTX_BUILD_PLUGINS) and created with threads=1 and
 * threads=2.
 *
 * For every kernel pair (kernel_cases.c), with both thread counts:
 *   - backward against central finite differences of the scalar objective
 *     L = sum(out * R) (R random), L summed in double by the test, on odd
 *     shapes (C=7, T=5, NH=1..3, ...) and random ones, attention with the
 *     padding mask (sequences padded at the end, at the start, and fully),
 *     causal on and off, dropout p = 0 and p > 0;
 *   - backward accumulates: a second call doubles the gradient (a
 *     gradient the case says is written, matmul's dinp with dinp_add = 0,
 *     comes out the same again though it held NaN before the call);
 *   - two runs with the same thread count are bit-identical, and every
 *     kernel but matmul (multi-threaded sgemm) gives the same bits with 1
 *     and 2 threads.
 * Forwards, the dropout mask, memory, gradient utilities and the optimizer
 * step are tested in test_cpu_forward.c.
 *
 * Finite differences. Each input element x is moved to x+h and x-h with
 * h = FD_H = 1e-2; fd = (L+ - L-) / (x+ - x-) with the float-rounded steps.
 * The kernels run in float: an output moved by the step carries a rounding
 * error of about 6e-8 |out|, while the outputs it does not touch are
 * bit-identical in both runs (the kernels are deterministic) and cancel
 * exactly. So the rounding noise in fd is about 6e-8 * sqrt(k) / 2e-2
 * ~ 3e-6 sqrt(k) for k outputs touched (k <= ~100 here: <= 3e-5), and the
 * truncation error is h^2/6 * L''' ~ 2e-5 L'''. (With h = 1e-3 the rounding
 * noise is ten times larger and dominates.) Tolerance:
 *   |fd - grad| <= FD_ATOL + FD_RTOL * |fd|,  FD_ATOL = 1e-4, FD_RTOL = 1e-3;
 * the worst ratio seen, printed per kernel family, is about 0.3, and a
 * 1e-4 relative error in one term of the softmax backward fails it twice
 * over. The ReLU kink is kept 0.05 away from every input (kc_activation),
 * beyond the step.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>

#include "backend_fixture.h"
#include "kernel_cases.h"
#include "testutil.h"

#define FD_H 1e-2
#define FD_ATOL 1e-4
#define FD_RTOL 1e-3
/* inputs larger than this are checked at FD_SAMPLES random elements */
#define FD_ALL_UP_TO 600
#define FD_SAMPLES 300

/* ------------------------------------------------------- the cases */

#define MAX_CASES 128

/* Every kernel pair on fixed odd shapes and on random ones. */
static int all_cases(kcase **cs)
{
    int n = 0;
    /* matmul */
    cs[n++] = kc_matmul(5, 7, 3, 1);
    cs[n++] = kc_matmul(1, 1, 1, 1);
    cs[n++] = kc_matmul(9, 13, 11, 0);
    cs[n++] = kc_written(kc_matmul(7, 5, 3, 1));
    cs[n++] = kc_params_written(kc_matmul(6, 4, 5, 1));
    cs[n++] = kc_params_written(kc_written(kc_matmul(3, 9, 2, 1)));
    cs[n++] = kc_matmul(1 + kc_int(12), 1 + kc_int(20), 1 + kc_int(12), 1);
    /* layer norm */
    cs[n++] = kc_layernorm(4, 7);
    cs[n++] = kc_layernorm(3, 32);
    cs[n++] = kc_layernorm(1 + kc_int(6), 2 + kc_int(40));
    cs[n++] = kc_written(kc_layernorm(3, 32));
    cs[n++] = kc_params_written(kc_layernorm(5, 17));
    /* attention: C = NH*HS with HS 2..7; every NH in 1..3, causal, mask, dropout */
    static const int HS_OF[] = {7, 3, 2};
    for (int nh = 1; nh <= 3; nh++)
        for (int causal = 0; causal <= 1; causal++)
            for (int padded = 0; padded <= 1; padded++)
                for (int d = 0; d <= 1; d++)
                    cs[n++] = kc_attention(4, 5, nh, HS_OF[nh - 1], causal, padded, d ? 0.25f : 0.0f);
    /* longer than one block of rows of the causal products (64) */
    cs[n++] = kc_attention(1, 150, 2, 4, 1, 1, 0.2f);
    cs[n++] = kc_written(kc_attention(1, 150, 2, 4, 1, 1, 0.2f));
    cs[n++] = kc_written(kc_attention(2, 5, 2, 3, 0, 1, 0.0f));
    cs[n++] = kc_attention(2, 70, 1, 3, 1, 0, 0.0f);
    for (int r = 0; r < 3; r++)
        cs[n++] = kc_attention(1 + kc_int(4), 1 + kc_int(9), 1 + kc_int(3), 1 + kc_int(5), kc_int(2), kc_int(2),
                               kc_int(2) ? 0.2f : 0.0f);
    /* element-wise */
    cs[n++] = kc_activation(37, TFTX_ACT_GELU);
    cs[n++] = kc_activation(37, TFTX_ACT_GELU_TANH);
    cs[n++] = kc_activation(37, TFTX_ACT_RELU);
    cs[n++] = kc_written(kc_activation(37, TFTX_ACT_GELU));
    cs[n++] = kc_written(kc_activation(37, TFTX_ACT_GELU_TANH));
    cs[n++] = kc_written(kc_activation(37, TFTX_ACT_RELU));
    cs[n++] = kc_tanh(29);
    cs[n++] = kc_residual(31, 0.0f, 0);
    cs[n++] = kc_residual(41, 0.3f, 5);
    cs[n++] = kc_residual(3000, 0.2f, 11);
    cs[n++] = kc_dropout(41, 0.3f, 5);
    cs[n++] = kc_dropout(3000, 0.1f, 0); /* more than one block of the kernel */
    cs[n++] = kc_written(kc_dropout(3000, 0.1f, 7));
    cs[n++] = kc_written(kc_dropout(41, 0.0f, 0));
    /* pooling */
    cs[n++] = kc_pool_first(3, 5, 7);
    cs[n++] = kc_pool_mean(4, 5, 7, 0);
    cs[n++] = kc_pool_mean(4, 5, 7, 1);
    /* cross-entropy */
    cs[n++] = kc_crossentropy(6, 11, 11);
    cs[n++] = kc_crossentropy(5, 11, 16); /* padded rows */
    {
        int V = 2 + kc_int(30);
        cs[n++] = kc_crossentropy(1 + kc_int(8), V, V + kc_int(3));
    }
    /* embedding: tokens repeat (V small) */
    cs[n++] = kc_embedding(2, 5, 7, 4, 1, 1, 1);
    cs[n++] = kc_embedding(3, 4, 70, 3, 1, 1, 0); /* wse without segments: segment 0; C > one column block */
    cs[n++] = kc_embedding(2, 3, 5, 6, 0, 0, 0);
    assert_true(n <= MAX_CASES);
    return n;
}

static void free_cases(kcase **cs, int n)
{
    for (int i = 0; i < n; i++) kc_free(cs[i]);
}

/* "attention B=.." -> "attention" */
static void family(const char *name, char *out, size_t size)
{
    size_t i = 0;
    while (name[i] && name[i] != ' ' && i + 1 < size) out[i] = name[i], i++;
    out[i] = 0;
}

/* --------------------------------------------- finite differences */

/* Worst |fd - grad| / tolerance over the checked elements of one case on
 * one backend; prints the first few failures. */
static double fd_case(void *b, kcase *k, int threads)
{
    k->forward(b, k);
    kc_zero_grads(k);
    k->backward(b, k);
    double worst = 0.0;
    int reported = 0;
    for (int i = 0; i < k->n_in; i++) {
        if (!k->x[i]) continue;
        const size_t n = k->nx[i];
        const size_t count = n <= FD_ALL_UP_TO ? n : FD_SAMPLES;
        for (size_t c = 0; c < count; c++) {
            const size_t j = n <= FD_ALL_UP_TO ? c : (size_t)kc_int((int)n);
            float *x = &k->x[i][j];
            const float x0 = *x, xp = (float)(x0 + FD_H), xm = (float)(x0 - FD_H);
            *x = xp;
            double lp = k->forward(b, k);
            *x = xm;
            double lm = k->forward(b, k);
            *x = x0;
            double fd = (lp - lm) / ((double)xp - (double)xm);
            double grad = k->g[i][j];
            double tol = FD_ATOL + FD_RTOL * fabs(fd);
            double ratio = fabs(fd - grad) / tol;
            if (!(ratio <= worst)) worst = ratio;
            if (!(ratio <= 1.0) && reported++ < 5)
                fprintf(stderr, "  %s, threads %d: d/d%s[%zu]: backward %.7g, finite difference %.7g\n", k->name,
                        threads, k->xname[i], j, grad, fd);
        }
    }
    k->forward(b, k); /* leave outputs at the unperturbed inputs */
    return worst;
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    kcase *cs[MAX_CASES];
    int n = all_cases(cs);
    char fam[32], last[32] = "";
    double fam_worst = 0.0, overall = 0.0;
    for (int c = 0; c < n; c++) {
        family(cs[c]->name, fam, sizeof fam);
        if (strcmp(fam, last) != 0) {
            if (*last) printf("  %-14s worst |fd - grad| = %.3f of the tolerance\n", last, fam_worst);
            snprintf(last, sizeof last, "%s", fam);
            fam_worst = 0.0;
        }
        for (int t = 0; t < NBE; t++) {
            double w = fd_case(be[t], cs[c], THREADS[t]);
            fam_worst = fmax(fam_worst, w);
            overall = fmax(overall, w);
        }
    }
    printf("  %-14s worst |fd - grad| = %.3f of the tolerance\n", last, fam_worst);
    free_cases(cs, n);
    assert_true(overall <= 1.0);
}

/* ------------------------------------------------------ accumulation */

/* A second backward adds the same gradient again. The two calls' sums are
 * rounded separately (sgemm adds its blocks into what is there), so the
 * check allows 1e-5 of the gradient's largest element. A written gradient
 * is filled with NaN before the second call and must come out bit for bit
 * as the first time (nothing of the old contents read). */
static void test_backward_accumulates(void **state)
{
    (void)state;
    kcase *cs[MAX_CASES];
    int n = all_cases(cs);
    for (int c = 0; c < n; c++)
        for (int t = 0; t < NBE; t++) {
            kcase *k = cs[c];
            k->forward(be[t], k);
            kc_zero_grads(k);
            k->backward(be[t], k);
            float *once[KC_MAX_IO] = {0};
            for (int i = 0; i < k->n_in; i++) {
                if (!k->g[i]) continue;
                once[i] = malloc(k->nx[i] * sizeof(float));
                memcpy(once[i], k->g[i], k->nx[i] * sizeof(float));
            }
            for (int i = 0; i < k->n_in; i++)
                if (k->g[i] && (k->written >> i & 1u))
                    for (size_t j = 0; j < k->nx[i]; j++) k->g[i][j] = NAN;
            k->backward(be[t], k);
            for (int i = 0; i < k->n_in; i++) {
                if (!k->g[i]) continue;
                if (k->written >> i & 1u) {
                    if (memcmp(k->g[i], once[i], k->nx[i] * sizeof(float)) != 0)
                        fail_msg("%s, threads %d: d%s written twice differs", k->name, THREADS[t], k->xname[i]);
                    free(once[i]);
                    continue;
                }
                double scale = 0.0;
                for (size_t j = 0; j < k->nx[i]; j++) scale = fmax(scale, fabs(once[i][j]));
                for (size_t j = 0; j < k->nx[i]; j++) {
                    double diff = fabs((double)k->g[i][j] - 2.0 * once[i][j]);
                    if (!(diff <= 1e-5 * scale))
                        fail_msg("%s, threads %d: d%s[%zu] after two calls %.9g, once %.9g", k->name, THREADS[t],
                                 k->xname[i], j, (double)k->g[i][j], (double)once[i][j]);
                }
                free(once[i]);
            }
        }
    free_cases(cs, n);
}

/* -------------------------------------------------- repeatability */

typedef struct snapshot {
    float *data[2 * KC_MAX_IO];
    size_t n[2 * KC_MAX_IO];
} snapshot;

/* Outputs and gradients of one forward + backward from zeroed gradients. */
static snapshot run_snapshot(void *b, kcase *k)
{
    snapshot s = {0};
    for (int j = 0; j < k->n_out; j++) memset(k->out[j], 0xA5, k->nout[j] * sizeof(float)); /* stale data */
    k->forward(b, k);
    kc_zero_grads(k);
    k->backward(b, k);
    for (int j = 0; j < k->n_out; j++) {
        s.n[j] = k->nout[j];
        s.data[j] = malloc(s.n[j] * sizeof(float));
        memcpy(s.data[j], k->out[j], s.n[j] * sizeof(float));
    }
    for (int i = 0; i < k->n_in; i++) {
        if (!k->g[i]) continue;
        s.n[KC_MAX_IO + i] = k->nx[i];
        s.data[KC_MAX_IO + i] = malloc(k->nx[i] * sizeof(float));
        memcpy(s.data[KC_MAX_IO + i], k->g[i], k->nx[i] * sizeof(float));
    }
    return s;
}

static int snapshot_equal(const snapshot *a, const snapshot *b)
{
    for (int j = 0; j < 2 * KC_MAX_IO; j++) {
        if (a->n[j] != b->n[j]) return 0;
        if (a->n[j] && memcmp(a->data[j], b->data[j], a->n[j] * sizeof(float)) != 0) return 0;
    }
    return 1;
}

static void snapshot_free(snapshot *s)
{
    for (int j = 0; j < 2 * KC_MAX_IO; j++) free(s->data[j]);
}

/* Shapes large enough for every kernel to split work over both threads
 * (and for sgemm to use its threads). */
static int big_cases(kcase **cs)
{
    int n = 0;
    cs[n++] = kc_matmul(257, 191, 203, 1);
    cs[n++] = kc_layernorm(130, 257);
    cs[n++] = kc_attention(3, 37, 3, 11, 1, 1, 0.1f);
    cs[n++] = kc_attention(2, 150, 2, 8, 1, 1, 0.1f);
    cs[n++] = kc_attention(2, 64, 2, 16, 0, 1, 0.0f);
    cs[n++] = kc_activation(10007, TFTX_ACT_GELU);
    cs[n++] = kc_activation(10007, TFTX_ACT_GELU_TANH);
    cs[n++] = kc_activation(10007, TFTX_ACT_RELU);
    cs[n++] = kc_tanh(10007);
    cs[n++] = kc_residual(10007, 0.37f, 3);
    cs[n++] = kc_dropout(10007, 0.37f, 3);
    cs[n++] = kc_pool_first(9, 7, 129);
    cs[n++] = kc_pool_mean(9, 7, 129, 1);
    cs[n++] = kc_crossentropy(67, 501, 512);
    cs[n++] = kc_embedding(5, 33, 200, 17, 1, 1, 1);
    return n;
}

static void test_bit_identical(void **state)
{
    (void)state;
    kcase *cs[MAX_CASES];
    int n = big_cases(cs);
    for (int c = 0; c < n; c++) {
        kcase *k = cs[c];
        snapshot s2a = run_snapshot(be[1], k), s2b = run_snapshot(be[1], k);
        if (!snapshot_equal(&s2a, &s2b)) fail_msg("%s: two runs with 2 threads differ", k->name);
        if (k->thread_independent) {
            snapshot s1 = run_snapshot(be[0], k);
            if (!snapshot_equal(&s1, &s2a)) fail_msg("%s: 1 and 2 threads differ", k->name);
            snapshot_free(&s1);
        }
        snapshot_free(&s2a);
        snapshot_free(&s2b);
    }
    free_cases(cs, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_bit_identical),
    };
    return cmocka_run_group_tests(tests, backend_setup, backend_teardown);
}
