/*
 * test_cpu_forward.c -- the `cpu` backend plugin's forwards against the
 * straightforward double-precision references of kernel_reference.c, and
 * what is not a kernel pair: the descriptor, memory, the dropout mask
 * (against tftx_uniform_at, keep rate, thread independence, in place),
 * NULL gradients, the gradient utilities and the optimizer step. Every
 * check runs on the threads=1 and threads=2 instances (backend_fixture.c).
 *
 * Tolerances, stated at each comparison, follow from float rounding
 * (unit roundoff u = 2^-24 ~ 6e-8): a sum of K products is within
 * (K+2) * FLT_EPSILON * sum|terms| of the exact value, and expf, erff,
 * tanhf are within a few ulp. The worst error seen is printed per kernel.
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>
#include <tftx/random.h>

#include "backend_fixture.h"
#include "kernel_cases.h"
#include "kernel_reference.h"
#include "testutil.h"

/* Largest |got - want| / tol seen by a check, and its failures. */
typedef struct worst {
    const char *what;
    double ratio;
    size_t bad;
} worst;

static void expect_close(worst *w, const char *label, size_t i, double got, double want, double tol)
{
    double err = fabs(got - want);
    double r = tol > 0 ? err / tol : (err == 0 ? 0 : INFINITY);
    if (!(r <= w->ratio)) w->ratio = isnan(r) ? INFINITY : r;
    if (!(err <= tol)) {
        if (w->bad < 5)
            fprintf(stderr, "  %s %s[%zu]: got %.9g, want %.9g (tol %.3g)\n", w->what, label, i, got, want, tol);
        w->bad++;
    }
}

static void report(const worst *w)
{
    printf("  %-32s worst error %.3f of the tolerance\n", w->what, w->ratio);
    assert_int_equal(w->bad, 0);
}

static double *dnew(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

/* ------------------------------------------------------------ plumbing */

static void test_descriptor(void **state)
{
    (void)state;
    assert_int_equal(desc->kind, TFTX_KIND_BACKEND);
    assert_string_equal(desc->name, "cpu");
    assert_int_equal(desc->n_params, 1);
    const tftx_param_spec *p = &desc->params[0];
    assert_string_equal(p->name, "threads");
    assert_int_equal(p->type, TFTX_PARAM_INT);
    assert_int_equal(p->def_int, 0);
    assert_true(p->has_min && p->min == 0 && p->has_max && p->max == 1024);
    for (int i = 0; i < NBE; i++) assert_int_equal(ops->threads(be[i]), THREADS[i]);
    void *all = backend_create(0); /* 0 = every core */
    assert_int_equal(ops->threads(all), omp_get_num_procs());
    desc->destroy(all);
    void *three = backend_create(3);
    assert_int_equal(ops->threads(three), 3);
    desc->destroy(three);
}

static void test_memory(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 63, 64, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = ops->alloc(be[1], sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        for (size_t j = 0; j < sizes[i]; j++) assert_int_equal(p[j], 0);
        ops->free(be[1], p);
    }
    /* far more than any machine has: NULL, not an abort */
    assert_null(ops->alloc(be[0], SIZE_MAX / 2));
    assert_null(ops->alloc(be[0], SIZE_MAX));
    ops->free(be[0], NULL);

    float host[100], back[100];
    for (int i = 0; i < 100; i++) host[i] = (float)i * 0.5f - 7.0f;
    float *dev = ops->alloc(be[0], sizeof host);
    ops->copy_in(be[0], dev, host, sizeof host);
    ops->sync(be[0]);
    ops->copy_out(be[0], back, dev, sizeof back);
    assert_memory_equal(host, back, sizeof host);
    ops->zero(be[0], dev + 10, 20 * sizeof *dev);
    ops->copy_out(be[0], back, dev, sizeof back);
    for (int i = 0; i < 100; i++) assert_true(back[i] == (i >= 10 && i < 30 ? 0.0f : host[i]));
    ops->free(be[0], dev);
}

/* -------------------------------------------------------------- matmul */

/* Tolerance: (C+2) * FLT_EPSILON * (sum_c |inp*w| + |bias|), the bound of
 * a float sum of C products plus the bias. */
static void test_forward_matmul(void **state)
{
    (void)state;
    static const int SHAPES[][4] = {{5, 7, 3, 1}, {1, 1, 1, 1}, {33, 65, 17, 0}, {257, 191, 203, 1}, {64, 256, 768, 1}};
    worst w = {.what = "matmul_forward"};
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        const int N = SHAPES[s][0], C = SHAPES[s][1], OC = SHAPES[s][2];
        kcase *k = kc_matmul(N, C, OC, SHAPES[s][3]);
        double *want = dnew((size_t)N * OC), *mag = dnew((size_t)N * OC);
        ref_matmul(want, mag, k->x[0], k->x[1], k->x[2], N, C, OC);
        for (int t = 0; t < NBE; t++) {
            k->forward(be[t], k);
            for (size_t i = 0; i < (size_t)N * OC; i++)
                expect_close(&w, "out", i, k->out[0][i], want[i], (C + 2) * FLT_EPSILON * mag[i]);
        }
        free(want);
        free(mag);
        kc_free(k);
    }
    report(&w);
}

/* ----------------------------------------------------------- attention */

/* Tolerances: probabilities 2e-6 absolute (a score is a float dot product
 * of HS <= 16 terms, off by ~1e-6 at most; expf and the division add a few
 * ulp); outputs 1e-5 * (1 + |want|). Structure exactly: hidden keys have
 * probability 0, a query with no visible key has a zero row and output,
 * other rows sum to 1 within (T+2) * FLT_EPSILON (the bound of a float
 * sum of T terms and the scaling by its reciprocal). */
static void check_attention(worst *w, kcase *k)
{
    const int B = k->B, T = k->T, C = k->C, NH = k->NH;
    double *out = dnew((size_t)B * T * C), *att = dnew((size_t)B * NH * T * T);
    ref_attention(out, att, k->x[0], k->mask, k->causal, B, T, C, NH, k->drop);
    for (int t = 0; t < NBE; t++) {
        memset(k->out[1], 0xA5, k->nout[1] * sizeof(float)); /* no stale values may survive */
        k->forward(be[t], k);
        for (size_t i = 0; i < k->nout[0]; i++)
            expect_close(w, "out", i, k->out[0][i], out[i], 1e-5 * (1 + fabs(out[i])));
        for (size_t i = 0; i < k->nout[1]; i++) expect_close(w, "att", i, k->out[1][i], att[i], 2e-6);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int q = 0; q < T; q++) {
                    const float *row = k->out[1] + (((size_t)b * NH + h) * T + q) * T;
                    int visible = 0;
                    double sum = 0.0;
                    for (int s = 0; s < T; s++) {
                        int vis = (!k->causal || s <= q) && (!k->mask || k->mask[(size_t)b * T + s]);
                        visible += vis;
                        if (!vis) assert_true(row[s] == 0.0f);
                        sum += row[s];
                    }
                    if (!visible) {
                        assert_true(sum == 0.0);
                        for (int d = 0; d < C / NH; d++)
                            assert_true(k->out[0][((size_t)b * T + q) * C + (size_t)h * (C / NH) + d] == 0.0f);
                    } else {
                        assert_true(fabs(sum - 1.0) <= (T + 2) * FLT_EPSILON);
                    }
                }
    }
    free(out);
    free(att);
}

static void test_forward_attention(void **state)
{
    (void)state;
    worst w = {.what = "attention_forward"};
    for (int nh = 1; nh <= 3; nh++)
        for (int causal = 0; causal <= 1; causal++)
            for (int padded = 0; padded <= 1; padded++)
                for (int d = 0; d <= 1; d++) {
                    kcase *k = kc_attention(4, 5, nh, nh == 1 ? 7 : 3, causal, padded, d ? 0.3f : 0.0f);
                    check_attention(&w, k);
                    kc_free(k);
                }
    /* T = 1100: the forward's P V goes in blocks of 1024 keys */
    kcase *big[] = {kc_attention(2, 300, 2, 16, 1, 1, 0.1f), kc_attention(3, 37, 3, 11, 0, 1, 0.0f),
                    kc_attention(2, 64, 4, 16, 1, 0, 0.5f), kc_attention(1, 1100, 1, 4, 0, 0, 0.2f),
                    kc_attention(1, 1100, 1, 4, 1, 0, 0.0f)};
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
        check_attention(&w, big[i]);
        kc_free(big[i]);
    }
    report(&w);
}

/* ---------------------------------------------------------- layer norm */

/* Tolerances: mean 1e-6 * (1 + |mean|), rstd 1e-5 relative, out
 * 1e-5 * (1 + |want|): float sums of C <= 257 terms of size ~2. */
static void test_forward_layernorm(void **state)
{
    (void)state;
    static const int SHAPES[][2] = {{4, 7}, {3, 32}, {130, 257}, {2, 1}};
    static const float EPS[] = {1e-5f, 1e-12f, 1e-3f, 1e-5f};
    worst w = {.what = "layernorm_forward"};
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        const int N = SHAPES[s][0], C = SHAPES[s][1];
        kcase *k = kc_layernorm(N, C);
        k->eps = EPS[s];
        double *out = dnew((size_t)N * C), *mean = dnew(N), *rstd = dnew(N);
        ref_layernorm(out, mean, rstd, k->x[0], k->x[1], k->x[2], N, C, k->eps);
        for (int t = 0; t < NBE; t++) {
            k->forward(be[t], k);
            for (size_t i = 0; i < (size_t)N * C; i++)
                expect_close(&w, "out", i, k->out[0][i], out[i], 1e-5 * (1 + fabs(out[i])));
            for (int n = 0; n < N; n++) {
                expect_close(&w, "mean", n, k->out[1][n], mean[n], 1e-6 * (1 + fabs(mean[n])));
                expect_close(&w, "rstd", n, k->out[2][n], rstd[n], 1e-5 * rstd[n]);
            }
        }
        free(out);
        free(mean);
        free(rstd);
        kc_free(k);
    }
    report(&w);
}

/* ------------------------------------------------------- cross-entropy */

/* Tolerances: losses 1e-5 * (1 + |want|), probabilities 1e-6 absolute;
 * ignored rows (target < 0) have loss exactly 0. Logits of +-80 must not
 * overflow (the max is subtracted). */
static void test_forward_crossentropy(void **state)
{
    (void)state;
    /* N, V, ld: the padding columns after V must change nothing */
    static const int SHAPES[][3] = {{6, 11, 11}, {67, 501, 512}, {4, 8192, 8192}, {3, 2, 2}, {5, 97, 128}};
    worst w = {.what = "crossentropy_forward"};
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        const int N = SHAPES[s][0], V = SHAPES[s][1], ld = SHAPES[s][2];
        kcase *k = kc_crossentropy(N, V, ld);
        if (s == 3) /* extreme logits */
            for (int i = 0; i < N * ld; i++) k->x[0][i] = i % 2 ? 80.0f : -80.0f;
        double *loss = dnew(N), *probs = dnew((size_t)N * ld);
        ref_crossentropy(loss, probs, k->x[0], k->targets, N, V, ld);
        for (int t = 0; t < NBE; t++) {
            k->forward(be[t], k);
            for (int n = 0; n < N; n++) {
                expect_close(&w, "loss", n, k->out[0][n], loss[n], 1e-5 * (1 + fabs(loss[n])));
                if (k->targets[n] < 0) assert_true(k->out[0][n] == 0.0f);
                for (int v = 0; v < V; v++) {
                    const size_t i = (size_t)n * ld + v;
                    expect_close(&w, "probs", i, k->out[1][i], probs[i], 1e-6);
                }
            }
        }
        free(loss);
        free(probs);
        kc_free(k);
    }
    report(&w);
}

/* crossentropy_fused gives the bits of crossentropy_forward, then
 * crossentropy_backward into a zeroed buffer: the losses, and the logits
 * replaced by their gradient (ignored rows and padding columns 0, though
 * the padding held logits). */
static void test_crossentropy_fused(void **state)
{
    (void)state;
    static const int SHAPES[][3] = {{6, 11, 16}, {67, 501, 501}, {4, 8192, 8192}, {9, 97, 128}};
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        const int N = SHAPES[s][0], V = SHAPES[s][1], ld = SHAPES[s][2];
        const size_t NV = (size_t)N * ld;
        kcase *k = kc_crossentropy(N, V, ld);
        for (int t = 0; t < NBE; t++) {
            float *losses = ops->alloc(be[t], (size_t)N * sizeof(float)), *probs = ops->alloc(be[t], NV * 4);
            float *dl = ops->alloc(be[t], NV * 4), *fl = ops->alloc(be[t], (size_t)N * sizeof(float));
            float *fused = ops->alloc(be[t], NV * 4), *scratch = ops->alloc(be[t], NV * 4);
            ops->crossentropy_forward(be[t], losses, probs, k->x[0], k->targets, N, V, ld);
            ops->crossentropy_backward(be[t], dl, probs, k->targets, &k->dloss, N, V, ld);
            memcpy(fused, k->x[0], NV * 4);
            ops->crossentropy_fused(be[t], fl, fused, scratch, k->targets, &k->dloss, N, V, ld);
            assert_memory_equal(fl, losses, (size_t)N * sizeof(float));
            assert_memory_equal(fused, dl, NV * 4);
            float *all[] = {losses, probs, dl, fl, fused, scratch};
            for (size_t i = 0; i < 6; i++) ops->free(be[t], all[i]);
        }
        kc_free(k);
    }
}

/* --------------------------------------------------------- element-wise */

/* Derivatives in double, for the backward of the element-wise kernels. */
static double ref_dgelu(double x)
{
    return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}

static double ref_dgelu_tanh(double x)
{
    const double beta = sqrt(2.0 / M_PI), kappa = 0.044715;
    double th = tanh(beta * (x + kappa * x * x * x));
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * beta * (1.0 + 3.0 * kappa * x * x);
}

/* GELU (both forms) against torch's formulas in double, and their backward
 * against the derivative in double (from dout = 1): 2e-6 * |want| + 1e-6,
 * a few ulp of erff/tanhf, plus an absolute 1e-6 for the tails: where erf
 * or tanh reach -1 in float (x < ~-4.5), 1 + erf, 1 + th and 1 - th^2 lose
 * every digit (as in PyTorch's float kernels) and give 0 for values that
 * are below 1e-6 in double. ReLU and residual exactly; tanh within
 * 2e-7 * (1 + |want|). */
static void test_forward_pointwise(void **state)
{
    (void)state;
    const size_t N = 4099;
    float *x = calloc(N, sizeof *x), *y = calloc(N, sizeof *y), *dx = calloc(N, sizeof *dx),
          *one = calloc(N, sizeof *one);
    for (size_t i = 0; i < N; i++) x[i] = -8.0f + 16.0f * (float)i / (float)(N - 1), one[i] = 1.0f;
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-20f, x[3] = 30.0f, x[4] = -30.0f;
    static const struct {
        tftx_activation act;
        const char *name;
        double (*f)(double), (*df)(double);
    } ACTS[] = {{TFTX_ACT_GELU, "gelu (erf)", ref_gelu, ref_dgelu},
                {TFTX_ACT_GELU_TANH, "gelu (tanh)", ref_gelu_tanh, ref_dgelu_tanh}};
    for (size_t a = 0; a < 2; a++) {
        worst w = {.what = ACTS[a].name};
        for (int t = 0; t < NBE; t++) {
            ops->activation_forward(be[t], y, x, N, ACTS[a].act);
            memset(dx, 0, N * sizeof *dx);
            ops->activation_backward(be[t], dx, one, x, N, ACTS[a].act, 1);
            for (size_t i = 0; i < N; i++) {
                double f = ACTS[a].f(x[i]), df = ACTS[a].df(x[i]);
                expect_close(&w, "y", i, y[i], f, 2e-6 * fabs(f) + 1e-6);
                expect_close(&w, "dy/dx", i, dx[i], df, 2e-6 * fabs(df) + 1e-6);
            }
        }
        report(&w);
    }
    worst w = {.what = "relu, tanh, residual"};
    for (int t = 0; t < NBE; t++) {
        ops->activation_forward(be[t], y, x, N, TFTX_ACT_RELU);
        for (size_t i = 0; i < N; i++) assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
        ops->tanh_forward(be[t], y, x, N);
        for (size_t i = 0; i < N; i++) expect_close(&w, "tanh", i, y[i], tanh(x[i]), 2e-7 * (1 + fabs(tanh(x[i]))));
        ops->residual_forward(be[t], y, x, one, N, (tftx_dropout){0}, 0);
        for (size_t i = 0; i < N; i++) assert_true(y[i] == x[i] + 1.0f);
        /* with dropout: x + (what dropout_forward makes of the branch), bit for bit */
        const tftx_dropout d = {.p = 0.25f, .seed = 5, .stream = 9};
        ops->residual_forward(be[t], y, x, one, N, d, 17);
        ops->dropout_forward(be[t], dx, one, N, d, 17);
        size_t kept = 0;
        for (size_t i = 0; i < N; i++) {
            assert_true(y[i] == x[i] + dx[i]);
            kept += dx[i] != 0.0f;
        }
        assert_true(kept > 0 && kept < N);
    }
    report(&w);
    free(x), free(y), free(dx), free(one);
}

/* A NaN input gives NaN out of every activation, its gradient, and the
 * loss of its cross-entropy row (so all_finite finds it); +inf stays +inf
 * through GELU. */
static void test_nan_propagates(void **state)
{
    (void)state;
    const tftx_activation ACTS[] = {TFTX_ACT_GELU, TFTX_ACT_GELU_TANH, TFTX_ACT_RELU};
    float x[9] = {0.5f, -1.0f, NAN, 2.0f, 0.0f, -3.0f, 1.0f, INFINITY, 0.25f}, y[9], g[9], one[9];
    for (int i = 0; i < 9; i++) one[i] = 1.0f;
    for (int t = 0; t < NBE; t++)
        for (int a = 0; a < 3; a++) {
            ops->activation_forward(be[t], y, x, 9, ACTS[a]);
            memset(g, 0, sizeof g);
            ops->activation_backward(be[t], g, one, x, 9, ACTS[a], 1);
            assert_true(isnan(y[2]));
            if (ACTS[a] != TFTX_ACT_RELU) assert_true(isnan(g[2]));
            assert_true(y[7] == INFINITY);
            for (int i = 0; i < 9; i++)
                if (i != 2 && i != 7) assert_true(isfinite(y[i]) && isfinite(g[i]));
        }
    float logits[2 * 5] = {1, 2, 3, 4, 5, 1, NAN, 3, 4, 5}, probs[10], losses[2];
    int32_t targets[2] = {1, 1};
    for (int t = 0; t < NBE; t++) {
        ops->crossentropy_forward(be[t], losses, probs, logits, targets, 2, 5, 5);
        assert_true(isfinite(losses[0]));
        assert_true(isnan(losses[1]));
        assert_int_equal(ops->all_finite(be[t], losses, 2), 0);
    }
}

/* ------------------------------------------------- pooling, embedding */

/* pool_first exactly; pool_mean within 1e-6 * (1 + |want|) (a float sum
 * of at most T = 7 terms of size 1), a sequence with no token gives 0;
 * embedding within 2 * FLT_EPSILON * (sum of |terms|) (two float adds). */
static void test_forward_pooling_embedding(void **state)
{
    (void)state;
    worst w = {.what = "pooling, embedding"};
    kcase *pf = kc_pool_first(3, 5, 7);
    kcase *pm[] = {kc_pool_mean(4, 5, 7, 0), kc_pool_mean(5, 7, 9, 1)};
    for (int t = 0; t < NBE; t++) {
        pf->forward(be[t], pf);
        for (int b = 0; b < 3; b++) assert_memory_equal(pf->out[0] + b * 7, pf->x[0] + b * 5 * 7, 7 * sizeof(float));
        for (int m = 0; m < 2; m++) {
            kcase *k = pm[m];
            double *want = dnew(k->nout[0]);
            ref_pool_mean(want, k->x[0], k->mask, k->B, k->T, k->C);
            k->forward(be[t], k);
            for (size_t i = 0; i < k->nout[0]; i++)
                expect_close(&w, "pool_mean", i, k->out[0][i], want[i], 1e-6 * (1 + fabs(want[i])));
            if (k->mask) /* the last sequence is all padding */
                for (int c = 0; c < k->C; c++) assert_true(k->out[0][(size_t)(k->B - 1) * k->C + c] == 0.0f);
            free(want);
        }
    }
    kc_free(pf), kc_free(pm[0]), kc_free(pm[1]);

    kcase *emb[] = {kc_embedding(2, 5, 7, 4, 1, 1, 1), kc_embedding(3, 4, 70, 3, 1, 1, 0),
                    kc_embedding(2, 3, 5, 6, 0, 0, 0)};
    for (size_t e = 0; e < 3; e++) {
        kcase *k = emb[e];
        double *want = dnew(k->nout[0]);
        ref_embedding(want, k->tokens, k->segments, k->x[0], k->x[1], k->x[2], k->B, k->T, k->C);
        for (int t = 0; t < NBE; t++) {
            k->forward(be[t], k);
            for (size_t i = 0; i < k->nout[0]; i++)
                expect_close(&w, "embedding", i, k->out[0][i], want[i], 2 * FLT_EPSILON * 3.0);
        }
        free(want);
        kc_free(k);
    }
    report(&w);
}

/* ------------------------------------------------------------ dropout */

/* Element i of out is inp[i] * 1/(1-p) when tftx_uniform_at(seed, stream,
 * offset + i) >= p and 0 otherwise, exactly, for both thread counts (so the
 * mask is the same bits); in place gives the same; the keep rate is within
 * 5 standard deviations of 1 - p; backward uses the same mask. */
static void test_dropout_mask(void **state)
{
    (void)state;
    const size_t N = (1u << 20) + 3;
    const uint64_t offset = 12345;
    float *inp = calloc(N, sizeof *inp), *out[NBE], *grad = calloc(N, sizeof *grad);
    for (size_t i = 0; i < N; i++) inp[i] = 1.0f + (float)(i % 7);
    static const float PS[] = {0.1f, 0.5f, 0.9f};
    for (size_t pi = 0; pi < 3; pi++) {
        tftx_dropout d = {.p = PS[pi], .seed = 0xC0FFEEull + pi, .stream = 42};
        const float scale = 1.0f / (1.0f - d.p);
        for (int t = 0; t < NBE; t++) {
            out[t] = calloc(N, sizeof **out);
            ops->dropout_forward(be[t], out[t], inp, N, d, offset);
        }
        assert_memory_equal(out[0], out[1], N * sizeof(float));
        size_t kept = 0;
        for (size_t i = 0; i < N; i++) {
            int keep = tftx_uniform_at(d.seed, d.stream, offset + i) >= d.p;
            kept += keep;
            if (out[0][i] != (keep ? inp[i] * scale : 0.0f)) fail_msg("dropout p=%g element %zu", (double)d.p, i);
        }
        double rate = (double)kept / (double)N, sigma = sqrt(d.p * (1.0 - d.p) / (double)N);
        printf("  dropout p=%.1f: keep rate %.5f (1-p = %.1f, sigma %.5f)\n", (double)d.p, rate, 1.0 - d.p, sigma);
        assert_true(fabs(rate - (1.0 - d.p)) <= 5.0 * sigma);
        /* in place */
        float *io = malloc(N * sizeof *io);
        memcpy(io, inp, N * sizeof *io);
        ops->dropout_forward(be[1], io, io, N, d, offset);
        assert_memory_equal(io, out[0], N * sizeof(float));
        /* backward: dinp += dout * mask/(1-p), with dout = inp */
        memset(grad, 0, N * sizeof *grad);
        ops->dropout_backward(be[1], grad, inp, N, d, offset, 1);
        assert_memory_equal(grad, out[0], N * sizeof(float));
        /* another offset draws another mask */
        ops->dropout_forward(be[0], io, inp, N, d, offset + N);
        assert_true(memcmp(io, out[0], N * sizeof(float)) != 0);
        free(io);
        for (int t = 0; t < NBE; t++) free(out[t]);
    }
    /* p = 0 is the identity, p = 1 drops everything */
    float *o = calloc(N, sizeof *o);
    ops->dropout_forward(be[1], o, inp, N, (tftx_dropout){.p = 0.0f}, 0);
    assert_memory_equal(o, inp, N * sizeof(float));
    ops->dropout_forward(be[1], o, inp, N, (tftx_dropout){.p = 1.0f, .seed = 3}, 0);
    for (size_t i = 0; i < N; i++) assert_true(o[i] == 0.0f);
    free(o), free(inp), free(grad);
}

/* Rows of a larger tensor (tftx_dropout.row): one call over M rows of C,
 * row r's mask at offset + r*row_stride, gives the bits of one call a row
 * with the plain mask, for dropout forward and backward and the residual
 * sum, on both thread counts. */
static void test_dropout_rows(void **state)
{
    (void)state;
    const size_t M = 37, C = 77, n = M * C, stride = 5 * C + 3;
    const uint64_t offset = 1001;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *one = malloc(n * sizeof *one),
          *rows = malloc(n * sizeof *rows);
    for (size_t i = 0; i < n; i++) a[i] = (float)(i % 13) - 6.0f, b[i] = 0.25f + (float)(i % 7);
    const tftx_dropout plain = {.p = 0.3f, .seed = 77, .stream = 5};
    tftx_dropout d = plain;
    d.row = C, d.row_stride = stride;
    for (int t = 0; t < NBE; t++)
        for (int op = 0; op < 3; op++) {
            for (size_t r = 0; r < M; r++) {
                float *o = one + r * C;
                const uint64_t at = offset + r * stride;
                if (op == 0) ops->dropout_forward(be[t], o, b + r * C, C, plain, at);
                if (op == 1) ops->residual_forward(be[t], o, a + r * C, b + r * C, C, plain, at);
                if (op == 2)
                    memcpy(o, a + r * C, C * sizeof *o), ops->dropout_backward(be[t], o, b + r * C, C, plain, at, 1);
            }
            if (op == 0) ops->dropout_forward(be[t], rows, b, n, d, offset);
            if (op == 1) ops->residual_forward(be[t], rows, a, b, n, d, offset);
            if (op == 2) memcpy(rows, a, n * sizeof *rows), ops->dropout_backward(be[t], rows, b, n, d, offset, 1);
            if (memcmp(one, rows, n * sizeof *one) != 0) fail_msg("dropout rows, op %d, backend %d", op, t);
        }
    free(a), free(b), free(one), free(rows);
}

/* --------------------------------------------------- NULL gradients */

/* A NULL gradient pointer skips that gradient; the others come out as in
 * a full call, bit for bit. */
static void test_null_gradients(void **state)
{
    (void)state;
    kcase *cs[] = {kc_matmul(9, 13, 11, 1), kc_layernorm(5, 70), kc_residual(100, 0.0f, 0), kc_embedding(2, 5, 7, 4, 1, 1, 1)};
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        kcase *k = cs[c];
        k->forward(be[1], k);
        kc_zero_grads(k);
        k->backward(be[1], k);
        float *full[KC_MAX_IO];
        for (int i = 0; i < k->n_in; i++) {
            full[i] = NULL;
            if (!k->g[i]) continue;
            full[i] = malloc(k->nx[i] * sizeof(float));
            memcpy(full[i], k->g[i], k->nx[i] * sizeof(float));
        }
        for (int skip = 0; skip < k->n_in; skip++) {
            float *saved = k->g[skip];
            if (!saved) continue;
            k->g[skip] = NULL;
            kc_zero_grads(k);
            k->backward(be[1], k);
            k->g[skip] = saved;
            for (int i = 0; i < k->n_in; i++)
                if (i != skip && k->g[i] && memcmp(k->g[i], full[i], k->nx[i] * sizeof(float)) != 0)
                    fail_msg("%s: d%s differs when d%s is NULL", k->name, k->xname[i], k->xname[skip]);
        }
        for (int i = 0; i < k->n_in; i++) free(full[i]);
        kc_free(k);
    }
    /* attention with no dqkv: nothing to do, nothing touched */
    kcase *a = kc_attention(2, 5, 2, 3, 1, 1, 0.2f);
    a->forward(be[0], a);
    ops->attention_backward(be[0], NULL, a->scratch, a->R, a->x[0], a->out[1], a->mask, 1, 2, 5, 6, 2, a->drop, 1);
    kc_free(a);
}

/* ------------------------------------------------ gradient utilities */

/* sum_squares: within 1e-12 relative of a double sum (both double
 * accumulations of exact float squares), the same bits for 1 and 2 threads;
 * scale: x*s exactly; all_finite: 0 for a NaN or an Inf anywhere. */
static void test_gradient_utilities(void **state)
{
    (void)state;
    const size_t N = 3000001; /* several chunks, odd tail */
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (size_t i = 0; i < N; i++) x[i] = kc_uniform(-2, 2);
    double want = 0.0;
    for (size_t i = 0; i < N; i++) want += (double)x[i] * x[i];
    double got[NBE];
    for (int t = 0; t < NBE; t++) {
        got[t] = ops->sum_squares(be[t], x, N);
        assert_true(fabs(got[t] - want) <= 1e-12 * want);
        assert_true(ops->sum_squares(be[t], x, 0) == 0.0);
        assert_true(ops->sum_squares(be[t], x, 3) == (double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2]);
    }
    assert_memory_equal(&got[0], &got[1], sizeof got[0]);

    for (int t = 0; t < NBE; t++) {
        memcpy(y, x, N * sizeof *y);
        ops->scale(be[t], y, N, 0.37f);
        for (size_t i = 0; i < N; i++) assert_true(y[i] == x[i] * 0.37f);

        assert_int_equal(ops->all_finite(be[t], x, N), 1);
        assert_int_equal(ops->all_finite(be[t], x, 0), 1);
        const size_t where[] = {0, N / 2, N - 1};
        const float bad[] = {NAN, INFINITY, -INFINITY};
        for (size_t w = 0; w < 3; w++)
            for (size_t b = 0; b < 3; b++) {
                memcpy(y, x, N * sizeof *y);
                y[where[w]] = bad[b];
                assert_int_equal(ops->all_finite(be[t], y, N), 0);
            }
        y[0] = FLT_MAX, y[1] = -FLT_MAX, y[2] = FLT_MIN / 4; /* large and subnormal are finite */
        assert_int_equal(ops->all_finite(be[t], y, 3), 1);
    }
    free(x), free(y);
}

/* --------------------------------------------------- optimizer step */

static int seen_team; /* OpenMP team size inside the fake step */

/* w -= lr * g with the range's group, in an OpenMP region without a team
 * size, like TFTX_OPT_CPU_STEP: it takes the process default the backend
 * sets. */
static void fake_step(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges,
                      float *w, const float *g, float *const *slots)
{
    (void)self, (void)slots;
#pragma omp parallel
    {
#pragma omp single
        seen_team = omp_get_num_threads();
        for (size_t r = 0; r < n_ranges; r++) {
            const float lr = st[ranges[r].group].lr;
            float *wr = w + ranges[r].offset;
            const float *gr = g + ranges[r].offset;
#pragma omp for schedule(static)
            for (size_t i = 0; i < ranges[r].n; i++) wr[i] -= lr * gr[i];
        }
    }
}

/* The backend hands the groups and ranges on as they are: elements
 * [0, 600) with group 0's lr, [600, 990) with group 1's, the rest alone. */
static void test_optimizer_step(void **state)
{
    (void)state;
    tftx_optimizer_ops opt = {.step_cpu = fake_step};
    tftx_opt_step st[TFTX_OPT_GROUPS] = {{.step = 1, .lr = 0.5f}, {.step = 1, .lr = 0.25f}};
    const tftx_opt_range ranges[2] = {{0, 600, 0}, {600, 390, 1}};
    float w[1000], g[1000];
    for (int t = 0; t < NBE; t++) {
        for (int i = 0; i < 1000; i++) w[i] = 1.0f, g[i] = (float)i;
        int before = omp_get_max_threads();
        tftx_error err = {0};
        assert_int_equal(ops->optimizer_step(be[t], &opt, NULL, st, ranges, 2, w, g, NULL, &err), TFTX_OK);
        assert_int_equal(seen_team, THREADS[t]);
        assert_int_equal(omp_get_max_threads(), before); /* the default is put back */
        for (int i = 0; i < 1000; i++) {
            float want = i < 600 ? 1.0f - 0.5f * (float)i : i < 990 ? 1.0f - 0.25f * (float)i : 1.0f;
            assert_true(w[i] == want);
        }
    }
    tftx_optimizer_ops none = {0};
    tftx_error err = {0};
    assert_int_equal(ops->optimizer_step(be[0], &none, NULL, st, ranges, 1, w, g, NULL, &err), TFTX_ERR_INVALID);
    assert_non_null(strstr(err.message, "CPU step"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),         cmocka_unit_test(test_memory),
        cmocka_unit_test(test_forward_matmul),     cmocka_unit_test(test_forward_attention),
        cmocka_unit_test(test_forward_layernorm),  cmocka_unit_test(test_forward_crossentropy),
        cmocka_unit_test(test_crossentropy_fused), cmocka_unit_test(test_forward_pointwise),
        cmocka_unit_test(test_nan_propagates),     cmocka_unit_test(test_forward_pooling_embedding),
        cmocka_unit_test(test_dropout_mask),       cmocka_unit_test(test_dropout_rows),
        cmocka_unit_test(test_null_gradients),     cmocka_unit_test(test_gradient_utilities),
        cmocka_unit_test(test_optimizer_step),
    };
    return cmocka_run_group_tests(tests, backend_setup, backend_teardown);
}
