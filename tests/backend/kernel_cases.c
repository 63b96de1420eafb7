/*
 * kernel_cases.c -- the kernel pairs of tftx/backend.h as test cases
 * (see kernel_cases.h): inputs, outputs, objective and backward call of
 * each.
 */
#include "kernel_cases.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h" /* cmocka */

static const tftx_backend_ops *ops;
static void *alloc_be;
static uint64_t rng_state;

void kc_init(const tftx_backend_ops *o, void *alloc_backend, uint64_t seed)
{
    ops = o;
    alloc_be = alloc_backend;
    rng_state = seed;
}

/* splitmix64: a small, well-mixed generator for test data */
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float kc_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next() >> 11) * 0x1.0p-53);
}

int kc_int(int n)
{
    return (int)(rng_next() % (uint64_t)n);
}

void *kc_alloc(kcase *k, size_t bytes)
{
    assert_true(k->n_allocs < KC_MAX_ALLOCS);
    void *p = ops->alloc(alloc_be, bytes);
    assert_non_null(p);
    k->allocs[k->n_allocs++] = p;
    return p;
}

float *kc_floats(kcase *k, size_t n, float lo, float hi)
{
    float *p = kc_alloc(k, n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = kc_uniform(lo, hi);
    return p;
}

void kc_free(kcase *k)
{
    if (!k) return;
    for (int i = 0; i < k->n_allocs; i++) ops->free(alloc_be, k->allocs[i]);
    free(k);
}

double kc_dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

void kc_zero_grads(kcase *k)
{
    for (int i = 0; i < k->n_in; i++)
        if (k->g[i]) memset(k->g[i], 0, k->nx[i] * sizeof(float));
}

uint8_t *kc_mask(kcase *k, int B, int T)
{
    uint8_t *m = kc_alloc(k, (size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int real = 1;
            if (b % 4 == 1) real = t < (T + 1) / 2; /* padded at the end */
            if (b % 4 == 2) real = t > 0 || T == 1; /* padded at the start */
            if (b == B - 1 && B >= 4) real = 0;     /* a fully padded sequence */
            m[(size_t)b * T + t] = (uint8_t)real;
        }
    return m;
}

static kcase *kc_new(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static kcase *kc_new(const char *fmt, ...)
{
    kcase *k = calloc(1, sizeof *k);
    assert_non_null(k);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->name, sizeof k->name, fmt, ap);
    va_end(ap);
    k->thread_independent = 1;
    return k;
}

/* Input i: n floats in [lo, hi) with a gradient buffer. */
static void kc_input(kcase *k, const char *name, size_t n, float lo, float hi)
{
    int i = k->n_in++;
    k->xname[i] = name;
    k->x[i] = kc_floats(k, n, lo, hi);
    k->g[i] = kc_floats(k, n, 0, 0);
    k->nx[i] = n;
}

static void kc_absent(kcase *k, const char *name)
{
    int i = k->n_in++;
    k->xname[i] = name;
}

/* Output j of n floats; output 0 gets the objective's weights R. */
static void kc_output(kcase *k, size_t n)
{
    int j = k->n_out++;
    k->out[j] = kc_floats(k, n, 0, 0);
    k->nout[j] = n;
    if (j == 0) k->R = kc_floats(k, n, -1, 1);
}

/* ------------------------------------------------------------ matmul */

static double mm_forward(void *be, kcase *k)
{
    ops->matmul_forward(be, k->out[0], k->x[0], k->x[1], k->x[2], k->N, k->C, k->OC);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void mm_backward(void *be, kcase *k)
{
    ops->matmul_backward(be, k->g[0], k->g[1], k->g[2], k->R, k->x[0], k->x[1], k->N, k->C, k->OC, !(k->written & 1u),
                         !(k->written & 6u));
}

kcase *kc_matmul(int N, int C, int OC, int with_bias)
{
    kcase *k = kc_new("matmul N=%d C=%d OC=%d%s", N, C, OC, with_bias ? "" : " no bias");
    k->N = N, k->C = C, k->OC = OC;
    k->forward = mm_forward, k->backward = mm_backward;
    k->thread_independent = 0;
    kc_input(k, "inp", (size_t)N * C, -1, 1);
    kc_input(k, "weight", (size_t)OC * C, -1, 1);
    if (with_bias)
        kc_input(k, "bias", (size_t)OC, -1, 1);
    else
        kc_absent(k, "bias");
    kc_output(k, (size_t)N * OC);
    return k;
}

kcase *kc_written(kcase *k)
{
    size_t len = strlen(k->name);
    snprintf(k->name + len, sizeof k->name - len, ", dinp written");
    k->written = 1u; /* input 0's gradient */
    return k;
}

kcase *kc_params_written(kcase *k)
{
    size_t len = strlen(k->name);
    snprintf(k->name + len, sizeof k->name - len, ", parameter gradients written");
    k->written |= 6u; /* inputs 1 and 2: weight and bias */
    return k;
}

/* --------------------------------------------------------- layer norm */

static double ln_forward(void *be, kcase *k)
{
    ops->layernorm_forward(be, k->out[0], k->out[1], k->out[2], k->x[0], k->x[1], k->x[2], k->N, k->C, k->eps);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void ln_backward(void *be, kcase *k)
{
    ops->layernorm_backward(be, k->g[0], k->g[1], k->g[2], k->R, k->x[0], k->x[1], k->out[1], k->out[2], k->N, k->C,
                            !(k->written & 1u), !(k->written & 6u));
}

kcase *kc_layernorm(int N, int C)
{
    kcase *k = kc_new("layernorm N=%d C=%d", N, C);
    k->N = N, k->C = C, k->eps = 1e-5f;
    k->forward = ln_forward, k->backward = ln_backward;
    kc_input(k, "inp", (size_t)N * C, -2, 2);
    kc_input(k, "weight", (size_t)C, 0.5f, 1.5f);
    kc_input(k, "bias", (size_t)C, -0.5f, 0.5f);
    kc_output(k, (size_t)N * C);
    kc_output(k, (size_t)N); /* mean */
    kc_output(k, (size_t)N); /* rstd */
    return k;
}

/* ---------------------------------------------------------- attention */

static double att_forward(void *be, kcase *k)
{
    ops->attention_forward(be, k->out[0], k->out[1], k->x[0], k->mask, k->causal, k->B, k->T, k->C, k->NH, k->drop);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void att_backward(void *be, kcase *k)
{
    ops->attention_backward(be, k->g[0], k->scratch, k->R, k->x[0], k->out[1], k->mask, k->causal, k->B, k->T, k->C,
                            k->NH, k->drop, !(k->written & 1u));
}

kcase *kc_attention(int B, int T, int NH, int HS, int causal, int padded, float p)
{
    kcase *k =
        kc_new("attention B=%d T=%d NH=%d HS=%d causal=%d mask=%d p=%g", B, T, NH, HS, causal, padded, (double)p);
    k->B = B, k->T = T, k->NH = NH, k->C = NH * HS, k->causal = causal;
    k->drop = (tftx_dropout){.p = p, .seed = 1234, .stream = 77};
    k->forward = att_forward, k->backward = att_backward;
    /* q and k in [-1.5, 1.5): scores spread enough that the softmax is far
       from uniform, so its derivatives matter */
    kc_input(k, "qkv", (size_t)B * T * 3 * k->C, -1.5f, 1.5f);
    kc_output(k, (size_t)B * T * k->C);
    kc_output(k, (size_t)B * NH * T * T); /* att */
    k->scratch = kc_floats(k, (size_t)B * NH * T * T, 0, 0);
    if (padded) k->mask = kc_mask(k, B, T);
    return k;
}

/* -------------------------------------------------------- activations */

static double act_forward(void *be, kcase *k)
{
    ops->activation_forward(be, k->out[0], k->x[0], k->nx[0], k->act);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void act_backward(void *be, kcase *k)
{
    ops->activation_backward(be, k->g[0], k->R, k->x[0], k->nx[0], k->act, !(k->written & 1u));
}

kcase *kc_activation(size_t N, tftx_activation act)
{
    static const char *const NAMES[] = {"gelu", "gelu_tanh", "relu"};
    kcase *k = kc_new("activation %s N=%zu", NAMES[act], N);
    k->act = act;
    k->forward = act_forward, k->backward = act_backward;
    kc_input(k, "inp", N, -4, 4);
    /* the ReLU kink: keep inputs 0.05 away from 0, beyond any FD step */
    for (size_t i = 0; i < N; i++)
        if (k->x[0][i] > -0.05f && k->x[0][i] < 0.05f) k->x[0][i] = k->x[0][i] < 0 ? -0.5f : 0.5f;
    kc_output(k, N);
    return k;
}

static double tanh_forward(void *be, kcase *k)
{
    ops->tanh_forward(be, k->out[0], k->x[0], k->nx[0]);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void tanh_backward(void *be, kcase *k)
{
    ops->tanh_backward(be, k->g[0], k->R, k->out[0], k->nx[0]);
}

kcase *kc_tanh(size_t N)
{
    kcase *k = kc_new("tanh N=%zu", N);
    k->forward = tanh_forward, k->backward = tanh_backward;
    kc_input(k, "inp", N, -3, 3);
    kc_output(k, N);
    return k;
}

/* ------------------------------------------------- residual, dropout */

static double res_forward(void *be, kcase *k)
{
    ops->residual_forward(be, k->out[0], k->x[0], k->x[1], k->nx[0], k->drop, k->offset);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

/* out = a + dropout(b): da = dout (residual_backward), db = dropout's
 * backward of dout with the same mask */
static void res_backward(void *be, kcase *k)
{
    if (!(k->drop.p > 0.0f)) {
        ops->residual_backward(be, k->g[0], k->g[1], k->R, k->nx[0]);
        return;
    }
    ops->residual_backward(be, k->g[0], NULL, k->R, k->nx[0]);
    ops->dropout_backward(be, k->g[1], k->R, k->nx[1], k->drop, k->offset, 1);
}

kcase *kc_residual(size_t N, float p, uint64_t offset)
{
    kcase *k = kc_new("residual N=%zu p=%g offset=%llu", N, (double)p, (unsigned long long)offset);
    k->drop = (tftx_dropout){.p = p, .seed = 77, .stream = 3};
    k->offset = offset;
    k->forward = res_forward, k->backward = res_backward;
    kc_input(k, "a", N, -1, 1);
    kc_input(k, "b", N, -1, 1);
    kc_output(k, N);
    return k;
}

static double drop_forward(void *be, kcase *k)
{
    ops->dropout_forward(be, k->out[0], k->x[0], k->nx[0], k->drop, k->offset);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void drop_backward(void *be, kcase *k)
{
    ops->dropout_backward(be, k->g[0], k->R, k->nx[0], k->drop, k->offset, !(k->written & 1u));
}

kcase *kc_dropout(size_t N, float p, uint64_t offset)
{
    kcase *k = kc_new("dropout N=%zu p=%g offset=%llu", N, (double)p, (unsigned long long)offset);
    k->drop = (tftx_dropout){.p = p, .seed = 99, .stream = 5};
    k->offset = offset;
    k->forward = drop_forward, k->backward = drop_backward;
    kc_input(k, "inp", N, -1, 1);
    kc_output(k, N);
    return k;
}

/* ------------------------------------------------------------ pooling */

static double pf_forward(void *be, kcase *k)
{
    ops->pool_first_forward(be, k->out[0], k->x[0], k->B, k->T, k->C);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void pf_backward(void *be, kcase *k)
{
    ops->pool_first_backward(be, k->g[0], k->R, k->B, k->T, k->C);
}

kcase *kc_pool_first(int B, int T, int C)
{
    kcase *k = kc_new("pool_first B=%d T=%d C=%d", B, T, C);
    k->B = B, k->T = T, k->C = C;
    k->forward = pf_forward, k->backward = pf_backward;
    kc_input(k, "inp", (size_t)B * T * C, -1, 1);
    kc_output(k, (size_t)B * C);
    return k;
}

static double pm_forward(void *be, kcase *k)
{
    ops->pool_mean_forward(be, k->out[0], k->x[0], k->mask, k->B, k->T, k->C);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void pm_backward(void *be, kcase *k)
{
    ops->pool_mean_backward(be, k->g[0], k->R, k->mask, k->B, k->T, k->C);
}

kcase *kc_pool_mean(int B, int T, int C, int padded)
{
    kcase *k = kc_new("pool_mean B=%d T=%d C=%d mask=%d", B, T, C, padded);
    k->B = B, k->T = T, k->C = C;
    k->forward = pm_forward, k->backward = pm_backward;
    kc_input(k, "inp", (size_t)B * T * C, -1, 1);
    kc_output(k, (size_t)B * C);
    if (padded) k->mask = kc_mask(k, B, T);
    return k;
}

/* ------------------------------------------------------ cross-entropy */

/* L = dloss * sum_n losses[n]: the backward takes one weight for all rows */
static double ce_forward(void *be, kcase *k)
{
    ops->crossentropy_forward(be, k->out[0], k->out[1], k->x[0], k->targets, k->N, k->V, k->ld);
    double s = 0.0;
    for (int n = 0; n < k->N; n++) s += k->out[0][n];
    return (double)k->dloss * s;
}

static void ce_backward(void *be, kcase *k)
{
    ops->crossentropy_backward(be, k->g[0], k->out[1], k->targets, &k->dloss, k->N, k->V, k->ld); /* cpu: host memory */
}

/* With ld > V the logits' padding columns are inputs too: no loss depends
 * on them, so their gradient must stay 0. */
kcase *kc_crossentropy(int N, int V, int ld)
{
    kcase *k = kc_new("crossentropy N=%d V=%d ld=%d", N, V, ld);
    k->N = N, k->V = V, k->ld = ld, k->dloss = 0.37f;
    k->forward = ce_forward, k->backward = ce_backward;
    kc_input(k, "logits", (size_t)N * ld, -3, 3);
    kc_output(k, (size_t)N);      /* losses */
    kc_output(k, (size_t)N * ld); /* probs */
    k->targets = kc_alloc(k, (size_t)N * sizeof *k->targets);
    for (int n = 0; n < N; n++) k->targets[n] = kc_int(V);
    if (N > 1) k->targets[1] = -100; /* ignored, like PyTorch's ignore_index */
    if (N > 3) k->targets[N - 1] = -1;
    return k;
}

/* ---------------------------------------------------------- embedding */

static double emb_forward(void *be, kcase *k)
{
    ops->embedding_forward(be, k->out[0], k->tokens, k->segments, k->x[0], k->x[1], k->x[2], k->B, k->T, k->C);
    return kc_dot(k->out[0], k->R, k->nout[0]);
}

static void emb_backward(void *be, kcase *k)
{
    ops->embedding_backward(be, k->g[0], k->g[1], k->g[2], k->R, k->tokens, k->segments, k->B, k->T, k->C);
}

/* V is small against B*T, so tokens repeat and the scatter-add collides. */
kcase *kc_embedding(int B, int T, int C, int V, int with_wpe, int with_wse, int with_segments)
{
    kcase *k = kc_new("embedding B=%d T=%d C=%d V=%d wpe=%d wse=%d segments=%d", B, T, C, V, with_wpe, with_wse,
                      with_segments);
    k->B = B, k->T = T, k->C = C, k->V = V;
    k->forward = emb_forward, k->backward = emb_backward;
    const int maxT = T + 3, S = 3;
    kc_input(k, "wte", (size_t)V * C, -1, 1);
    if (with_wpe)
        kc_input(k, "wpe", (size_t)maxT * C, -1, 1);
    else
        kc_absent(k, "wpe");
    if (with_wse)
        kc_input(k, "wse", (size_t)S * C, -1, 1);
    else
        kc_absent(k, "wse");
    kc_output(k, (size_t)B * T * C);
    k->tokens = kc_alloc(k, (size_t)B * T * sizeof *k->tokens);
    for (int i = 0; i < B * T; i++) k->tokens[i] = kc_int(V);
    if (with_segments) {
        k->segments = kc_alloc(k, (size_t)B * T * sizeof *k->segments);
        for (int i = 0; i < B * T; i++) k->segments[i] = kc_int(S);
    }
    return k;
}
