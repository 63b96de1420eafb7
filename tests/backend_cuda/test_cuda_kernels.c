/*
 * test_cuda_kernels.c -- every kernel of the `cuda` backend against the
 * `cpu` backend (whose kernels tests/backend checks against finite
 * differences and double-precision references), on the same random inputs:
 *
 *   - each forward's outputs and each backward's gradients, the backward
 *     called on gradients that already hold random values (so accumulation,
 *     +=, is checked too), NULL gradients where the spec allows them;
 *   - shapes that are not multiples of a warp or a block (C = 77, T = 37,
 *     V = 1003), attention with the padding mask (padded at the end, at the
 *     start, and a sequence of padding only), causal on and off, dropout
 *     p = 0 and p > 0;
 *   - the dropout masks bit for bit (both backends draw tftx_uniform_at at
 *     the same element index), in the element-wise dropout and in attention;
 *   - determinism: a second run of every cuda kernel gives the same bits;
 *   - sum_squares, scale, all_finite; and in step_cases.c the optimizer
 *     step, both the fused step_cuda (bit-identical to step_cpu: nvcc
 *     --fmad=false) and the staged host fallback (an optimizer table
 *     without step_cuda), the bf16 weights' copy it refreshes, and step
 *     graphs: what a recording runs, what its launches read, and the
 *     recordings that must fail;
 *   - the linear layers with the bias and its gradient in cuBLASLt's
 *     epilogues (the default) and with fuse_bias = false (a bias kernel,
 *     then cuBLAS; a column sum); the products with their activation
 *     (matmul_act_forward, matmul_backward_act: GELU's tanh form in the
 *     epilogues) against the cpu's two calls each;
 *     on the emulator, that each took the path it should (a count of
 *     cuBLASLt products the emulator keeps).
 *
 * Tolerance (kernel_pairs.c, which also holds the data both backends get):
 * |cuda - cpu| <= ATOL + RTOL |cpu| with RTOL = 1e-4, ATOL = 1e-5 (float
 * sums in another order, CUDA's libm vs cpu_math.h); the products and
 * attention again at precision tf32 and bf16, with the tolerance scaled
 * (see main).
 *
 * Also run against the cuda backend built for the tests' CUDA emulator
 * (test_cuda_kernels_emulated; TFTX_TEST_QUICK=1 there in the sanitizer
 * build, see main).
 *
 * Without a CUDA device (or driver) it prints "no CUDA device: <probe's
 * reason>" and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>

#include "kernel_pairs.h"
#include "runner.h"
#include "step_cases.h"
#include "testutil.h"

static int fused_attention; /* gpu has attention = "fused": its att is not the probabilities */

/* ------------------------------------------------------------ kernels */

/* Both sides NaN: a gradient written (dinp_add = 0) must not read it. */
static void pair_nan(pair *p)
{
    float *h = malloc(p->n * sizeof *h);
    for (size_t i = 0; i < p->n; i++) h[i] = NAN;
    pair_write(p, h);
    free(h);
}

static void test_matmul(int N, int C, int OC, int with_bias)
{
    char nm[128];
    pair inp = pair_rand((size_t)N * C, -1, 1), w = pair_param((size_t)OC * C, -1, 1), b = pair_param((size_t)OC, -1, 1);
    pair out = pair_rand((size_t)N * OC, 0, 0), dout = pair_rand((size_t)N * OC, -1, 1);
    pair dinp = pair_rand((size_t)N * C, -1, 1), dw = pair_param((size_t)OC * C, -1, 1),
         db = pair_param((size_t)OC, -1, 1);
    cpu.ops->matmul_forward(cpu.self, out.c, inp.c, w.c, with_bias ? b.c : NULL, N, C, OC);
    gpu.ops->matmul_forward(gpu.self, out.d, inp.d, w.d, with_bias ? b.d : NULL, N, C, OC);
    snprintf(nm, sizeof nm, "matmul N=%d C=%d OC=%d bias=%d out", N, C, OC, with_bias);
    compare(nm, out.c, out.d, out.n, 0);
    cpu.ops->matmul_backward(cpu.self, dinp.c, dw.c, with_bias ? db.c : NULL, dout.c, inp.c, w.c, N, C, OC, 1, 1);
    gpu.ops->matmul_backward(gpu.self, dinp.d, dw.d, with_bias ? db.d : NULL, dout.d, inp.d, w.d, N, C, OC, 1, 1);
    snprintf(nm, sizeof nm, "matmul N=%d C=%d OC=%d dinp", N, C, OC);
    compare(nm, dinp.c, dinp.d, dinp.n, 0);
    pair_nan(&dinp);
    cpu.ops->matmul_backward(cpu.self, dinp.c, NULL, NULL, dout.c, inp.c, w.c, N, C, OC, 0, 1);
    gpu.ops->matmul_backward(gpu.self, dinp.d, NULL, NULL, dout.d, inp.d, w.d, N, C, OC, 0, 1);
    snprintf(nm, sizeof nm, "matmul N=%d C=%d OC=%d dinp written", N, C, OC);
    compare(nm, dinp.c, dinp.d, dinp.n, 0);
    snprintf(nm, sizeof nm, "matmul N=%d C=%d OC=%d dweight", N, C, OC);
    compare(nm, dw.c, dw.d, dw.n, 0);
    snprintf(nm, sizeof nm, "matmul N=%d C=%d OC=%d dbias", N, C, OC);
    compare(nm, db.c, db.d, db.n, 0);
    pair_nan(&dw), pair_nan(&db); /* written: nothing of them read */
    cpu.ops->matmul_backward(cpu.self, NULL, dw.c, with_bias ? db.c : NULL, dout.c, inp.c, w.c, N, C, OC, 1, 0);
    gpu.ops->matmul_backward(gpu.self, NULL, dw.d, with_bias ? db.d : NULL, dout.d, inp.d, w.d, N, C, OC, 1, 0);
    snprintf(nm, sizeof nm, "matmul N=%d C=%d OC=%d dweight written", N, C, OC);
    compare(nm, dw.c, dw.d, dw.n, 0);
    if (with_bias) {
        snprintf(nm, sizeof nm, "matmul N=%d C=%d OC=%d dbias written", N, C, OC);
        compare(nm, db.c, db.d, db.n, 0);
    }
    pair *all[] = {&inp, &w, &b, &out, &dout, &dinp, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(all[i]);
}

/* matmul_act_forward and matmul_backward_act against the cpu's two calls
 * each (matmul then activation), the forward on the fc layer's shape
 * (N, C) -> (N, OC), the backward on the next product's (N, OC) -> (N, C)
 * with pre (N, OC) the activation's input; weight gradients written
 * (dparam_add 0) and added (1). */
static void test_matmul_act(int N, int C, int OC, int with_bias, tftx_activation act)
{
    char nm[160];
    static const char *const ACT[] = {"gelu", "gelu_tanh", "relu"};
    const char *an = ACT[act];
    pair inp = pair_rand((size_t)N * C, -1, 1), w = pair_param((size_t)OC * C, -1, 1),
         b = pair_param((size_t)OC, -1, 1);
    pair out = pair_rand((size_t)N * OC, 0, 0), pre = pair_rand((size_t)N * OC, 0, 0);
    const float *bc = with_bias ? b.c : NULL, *bd = with_bias ? b.d : NULL;
    cpu.ops->matmul_forward(cpu.self, pre.c, inp.c, w.c, bc, N, C, OC);
    cpu.ops->activation_forward(cpu.self, out.c, pre.c, out.n, act);
    gpu.ops->matmul_act_forward(gpu.self, out.d, pre.d, inp.d, w.d, bd, N, C, OC, act);
    snprintf(nm, sizeof nm, "matmul+%s N=%d C=%d OC=%d bias=%d pre", an, N, C, OC, with_bias);
    compare(nm, pre.c, pre.d, pre.n, 0);
    snprintf(nm, sizeof nm, "matmul+%s N=%d C=%d OC=%d bias=%d out", an, N, C, OC, with_bias);
    compare(nm, out.c, out.d, out.n, 0);

    /* the next product: its input is act(pre) (out), its output (N, C) */
    pair dout = pair_rand((size_t)N * C, -1, 1), w2 = pair_param((size_t)C * OC, -1, 1);
    pair dpre = pair_rand((size_t)N * OC, 0, 0), g = pair_rand((size_t)N * OC, 0, 0);
    pair dw = pair_param((size_t)C * OC, -1, 1), db = pair_param((size_t)C, -1, 1);
    for (int add = 0; add <= 1; add++) {
        pair_nan(&dpre);
        if (!add) pair_nan(&dw), pair_nan(&db);
        float *dbc = with_bias ? db.c : NULL, *dbd = with_bias ? db.d : NULL;
        cpu.ops->matmul_backward(cpu.self, g.c, dw.c, dbc, dout.c, out.c, w2.c, N, OC, C, 0, add);
        cpu.ops->activation_backward(cpu.self, dpre.c, g.c, pre.c, dpre.n, act, 0);
        gpu.ops->matmul_backward_act(gpu.self, dpre.d, dw.d, dbd, dout.d, out.d, w2.d, pre.d, N, OC, C, act, add);
        snprintf(nm, sizeof nm, "matmul+%s N=%d C=%d OC=%d bias=%d add=%d dpre", an, N, C, OC, with_bias, add);
        compare(nm, dpre.c, dpre.d, dpre.n, 0);
        snprintf(nm, sizeof nm, "matmul+%s N=%d C=%d OC=%d bias=%d add=%d dweight", an, N, C, OC, with_bias, add);
        compare(nm, dw.c, dw.d, dw.n, 0);
        if (with_bias) {
            snprintf(nm, sizeof nm, "matmul+%s N=%d C=%d OC=%d bias=%d add=%d dbias", an, N, C, OC, with_bias, add);
            compare(nm, db.c, db.d, db.n, 0);
        }
    }
    pair *all[] = {&inp, &w, &b, &out, &pre, &dout, &w2, &dpre, &g, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(all[i]);
}

static void test_layernorm(int N, int C)
{
    char nm[128];
    pair inp = pair_rand((size_t)N * C, -2, 3), w = pair_param((size_t)C, 0.5f, 1.5f), b = pair_param((size_t)C, -1, 1);
    pair out = pair_rand((size_t)N * C, 0, 0), mean = pair_param((size_t)N, 0, 0), rstd = pair_param((size_t)N, 0, 0);
    pair dout = pair_rand((size_t)N * C, -1, 1), dinp = pair_rand((size_t)N * C, -1, 1);
    pair dw = pair_param((size_t)C, -1, 1), db = pair_param((size_t)C, -1, 1);
    cpu.ops->layernorm_forward(cpu.self, out.c, mean.c, rstd.c, inp.c, w.c, b.c, N, C, 1e-5f);
    gpu.ops->layernorm_forward(gpu.self, out.d, mean.d, rstd.d, inp.d, w.d, b.d, N, C, 1e-5f);
    snprintf(nm, sizeof nm, "layernorm N=%d C=%d out", N, C);
    compare(nm, out.c, out.d, out.n, 0);
    compare("layernorm mean", mean.c, mean.d, mean.n, 0);
    compare("layernorm rstd", rstd.c, rstd.d, rstd.n, 0);
    for (int k = 0; k < 3; k++) { /* a residual sum and its layer norm in one call, against the cpu's two */
        tftx_dropout d = {.p = k ? 0.1f : 0.0f, .seed = 5, .stream = 2};
        if (k == 2) d.row = (uint64_t)C, d.row_stride = 3 * (uint64_t)C; /* rows of a larger tensor */
        pair sum = pair_rand((size_t)N * C, 0, 0);
        cpu.ops->residual_forward(cpu.self, sum.c, inp.c, dout.c, (size_t)N * C, d, 0);
        cpu.ops->layernorm_forward(cpu.self, out.c, mean.c, rstd.c, sum.c, w.c, b.c, N, C, 1e-5f);
        gpu.ops->residual_layernorm_forward(gpu.self, sum.d, out.d, mean.d, rstd.d, inp.d, dout.d, w.d, b.d, N, C,
                                            1e-5f, d);
        snprintf(nm, sizeof nm, "residual + layernorm p=%g%s sum", (double)d.p, d.row ? " rows" : "");
        compare(nm, sum.c, sum.d, sum.n, 0);
        compare("residual + layernorm out", out.c, out.d, out.n, 0);
        compare("residual + layernorm mean", mean.c, mean.d, mean.n, 0);
        compare("residual + layernorm rstd", rstd.c, rstd.d, rstd.n, 0);
        pair_free(&sum);
    }
    /* the layer norm of inp again, for the backward below */
    cpu.ops->layernorm_forward(cpu.self, out.c, mean.c, rstd.c, inp.c, w.c, b.c, N, C, 1e-5f);
    gpu.ops->layernorm_forward(gpu.self, out.d, mean.d, rstd.d, inp.d, w.d, b.d, N, C, 1e-5f);
    cpu.ops->layernorm_backward(cpu.self, dinp.c, dw.c, db.c, dout.c, inp.c, w.c, mean.c, rstd.c, N, C, 1, 1);
    gpu.ops->layernorm_backward(gpu.self, dinp.d, dw.d, db.d, dout.d, inp.d, w.d, mean.d, rstd.d, N, C, 1, 1);
    compare("layernorm dinp", dinp.c, dinp.d, dinp.n, 0);
    /* sums over N rows: the cpu adds them in order in float, an error
       that grows with N (with cancellation, beyond RTOL of the sum) */
    const double keep_scale = tol_scale, sum_scale = N > 64 ? sqrt(N / 64.0) : 1.0;
    tol_scale *= sum_scale;
    compare("layernorm dweight", dw.c, dw.d, dw.n, 0);
    compare("layernorm dbias", db.c, db.d, db.n, 0);
    tol_scale = keep_scale;
    pair_nan(&dinp);
    cpu.ops->layernorm_backward(cpu.self, dinp.c, NULL, NULL, dout.c, inp.c, w.c, mean.c, rstd.c, N, C, 0, 1);
    gpu.ops->layernorm_backward(gpu.self, dinp.d, NULL, NULL, dout.d, inp.d, w.d, mean.d, rstd.d, N, C, 0, 1);
    compare("layernorm dinp written", dinp.c, dinp.d, dinp.n, 0);
    pair_nan(&dw), pair_nan(&db); /* written: nothing of them read */
    cpu.ops->layernorm_backward(cpu.self, NULL, dw.c, db.c, dout.c, inp.c, w.c, mean.c, rstd.c, N, C, 1, 0);
    gpu.ops->layernorm_backward(gpu.self, NULL, dw.d, db.d, dout.d, inp.d, w.d, mean.d, rstd.d, N, C, 1, 0);
    tol_scale *= sum_scale;
    compare("layernorm dweight written", dw.c, dw.d, dw.n, 0);
    compare("layernorm dbias written", db.c, db.d, db.n, 0);
    tol_scale = keep_scale;
    pair *all[] = {&inp, &w, &b, &out, &mean, &rstd, &dout, &dinp, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(all[i]);
}

/* mask (B,T): 0 all real, 1 padded at the end, 2 padded at the start, the
 * last (B >= 4) all padding */
static uint8_t *make_mask(int B, int T)
{
    uint8_t *m = malloc((size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            m[(size_t)b * T + t] = b == 1 ? t < T - T / 3 : b == 2 ? t >= T / 4 : (b >= 3 && b == B - 1) ? 0 : 1;
    return m;
}

static void test_attention(int B, int T, int NH, int HS, int causal, int padded, float p)
{
    char nm[160], tag[96];
    snprintf(tag, sizeof tag, "attention B=%d T=%d NH=%d HS=%d causal=%d mask=%d p=%.2f", B, T, NH, HS, causal, padded,
             (double)p);
    const int C = NH * HS;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    /* with dropout, the stream comes from a step in each side's memory,
       as a model's does (tftx_dropout.step) */
    const uint64_t step = 7000 + (uint64_t)T;
    tftx_dropout drop_c = {.p = p, .seed = 1234, .stream = 99}, drop_d = drop_c;
    if (p > 0.0f) {
        drop_c.step = put(&cpu, &step, sizeof step);
        drop_d.step = put(&gpu, &step, sizeof step);
    }
    pair qkv = pair_rand(nqkv, -1.5f, 1.5f), out = pair_rand(nout, 0, 0), att = pair_param(natt, 0, 0);
    pair dout = pair_rand(nout, -1, 1), dqkv = pair_rand(nqkv, -1, 1), scr = pair_param(natt, 0, 0);
    uint8_t *hm = padded ? make_mask(B, T) : NULL, *mc = NULL, *md = NULL;
    if (hm) mc = put_both(hm, (size_t)B * T, (void **)&md);
    cpu.ops->attention_forward(cpu.self, out.c, att.c, qkv.c, mc, causal, B, T, C, NH, drop_c);
    gpu.ops->attention_forward(gpu.self, out.d, att.d, qkv.d, md, causal, B, T, C, NH, drop_d);
    snprintf(nm, sizeof nm, "%s att", tag);
    if (!fused_attention) compare(nm, att.c, att.d, natt, 0);
    snprintf(nm, sizeof nm, "%s out", tag);
    compare(nm, out.c, out.d, nout, 0);
    float *hdq = get(&gpu, dqkv.d, nqkv); /* the starting gradient, for the repeat */
    cpu.ops->attention_backward(cpu.self, dqkv.c, scr.c, dout.c, qkv.c, att.c, mc, causal, B, T, C, NH, drop_c, 1);
    gpu.ops->attention_backward(gpu.self, dqkv.d, scr.d, dout.d, qkv.d, att.d, md, causal, B, T, C, NH, drop_d, 1);
    snprintf(nm, sizeof nm, "%s dqkv", tag);
    compare(nm, dqkv.c, dqkv.d, nqkv, 0);
    /* determinism */
    float *again = put_like(&dqkv, hdq);
    gpu.ops->attention_backward(gpu.self, again, scr.d, dout.d, qkv.d, att.d, md, causal, B, T, C, NH, drop_d, 1);
    snprintf(nm, sizeof nm, "%s dqkv", tag);
    check_repeat(nm, dqkv.d, again, nqkv);
    set_act(again, 0), gpu.ops->free(gpu.self, again);
    free(hdq);
    /* written (dqkv_add = 0) over NaN: every element of it, nothing read */
    pair_nan(&dqkv);
    cpu.ops->attention_backward(cpu.self, dqkv.c, scr.c, dout.c, qkv.c, att.c, mc, causal, B, T, C, NH, drop_c, 0);
    gpu.ops->attention_backward(gpu.self, dqkv.d, scr.d, dout.d, qkv.d, att.d, md, causal, B, T, C, NH, drop_d, 0);
    snprintf(nm, sizeof nm, "%s dqkv written", tag);
    compare(nm, dqkv.c, dqkv.d, nqkv, 0);
    if (hm) {
        cpu.ops->free(cpu.self, mc);
        gpu.ops->free(gpu.self, md);
        free(hm);
    }
    if (drop_c.step) cpu.ops->free(cpu.self, (void *)drop_c.step), gpu.ops->free(gpu.self, (void *)drop_d.step);
    pair *all[] = {&qkv, &out, &att, &dout, &dqkv, &scr};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(all[i]);
}

/* The attention dropout mask itself: with V = identity-like values, P and
 * p > 0, the kept entries of Pd are visible in out. Checked through the
 * forward with T = HS and v = one-hot rows: out[t, s] = Pd[t, s]. */
static void test_attention_mask_bits(void)
{
    const int B = 2, T = 16, NH = 1, HS = 16, C = NH * HS;
    const size_t nqkv = (size_t)B * T * 3 * C;
    float *h = rand_host(nqkv, -1, 1);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) h[((size_t)b * T + t) * 3 * C + 2 * C + c] = c == t ? 1.0f : 0.0f;
    pair qkv = pair_of(h, nqkv), out = pair_rand((size_t)B * T * C, 0, 0), att = pair_param((size_t)B * T * T, 0, 0);
    tftx_dropout drop = {.p = 0.5f, .seed = 77, .stream = 5};
    cpu.ops->attention_forward(cpu.self, out.c, att.c, qkv.c, NULL, 0, B, T, C, NH, drop);
    gpu.ops->attention_forward(gpu.self, out.d, att.d, qkv.d, NULL, 0, B, T, C, NH, drop);
    float *oc = get(&cpu, out.c, out.n), *od = get(&gpu, out.d, out.n);
    size_t differ = 0;
    for (size_t i = 0; i < out.n; i++) differ += (oc[i] == 0.0f) != (od[i] == 0.0f);
    if (differ) {
        printf("FAIL %-48s %zu dropped entries differ\n", "attention dropout mask", differ);
        failures++;
    } else {
        printf("ok   %-48s same kept entries\n", "attention dropout mask");
    }
    free(oc), free(od), free(h);
    pair_free(&qkv), pair_free(&out), pair_free(&att);
}

static void test_pointwise(size_t N)
{
    char nm[128];
    pair inp = pair_rand(N, -4, 4), out = pair_rand(N, 0, 0), dout = pair_rand(N, -1, 1), dinp = pair_rand(N, -1, 1);
    static const char *const ACT[] = {"gelu", "gelu_tanh", "relu"};
    for (int a = 0; a < 3; a++) {
        cpu.ops->activation_forward(cpu.self, out.c, inp.c, N, (tftx_activation)a);
        gpu.ops->activation_forward(gpu.self, out.d, inp.d, N, (tftx_activation)a);
        snprintf(nm, sizeof nm, "activation %s out", ACT[a]);
        compare(nm, out.c, out.d, N, 0);
        pair_reset(&dinp, -1, 1); /* each backward from the same start (bfloat16 drifts apart otherwise) */
        cpu.ops->activation_backward(cpu.self, dinp.c, dout.c, inp.c, N, (tftx_activation)a, 1);
        gpu.ops->activation_backward(gpu.self, dinp.d, dout.d, inp.d, N, (tftx_activation)a, 1);
        snprintf(nm, sizeof nm, "activation %s dinp", ACT[a]);
        compare(nm, dinp.c, dinp.d, N, 0);
        pair_nan(&dinp);
        cpu.ops->activation_backward(cpu.self, dinp.c, dout.c, inp.c, N, (tftx_activation)a, 0);
        gpu.ops->activation_backward(gpu.self, dinp.d, dout.d, inp.d, N, (tftx_activation)a, 0);
        snprintf(nm, sizeof nm, "activation %s dinp written", ACT[a]);
        compare(nm, dinp.c, dinp.d, N, 0);
    }
    cpu.ops->tanh_forward(cpu.self, out.c, inp.c, N);
    gpu.ops->tanh_forward(gpu.self, out.d, inp.d, N);
    compare("tanh out", out.c, out.d, N, 0);
    { /* backward from the same outputs on both sides: 1 - out^2 cancels
         near |out| = 1, and bfloat16's rounding of out would show there */
        float *ho = get(&gpu, out.d, N);
        pair_write(&out, ho);
        free(ho);
    }
    pair_reset(&dinp, -1, 1);
    cpu.ops->tanh_backward(cpu.self, dinp.c, dout.c, out.c, N);
    gpu.ops->tanh_backward(gpu.self, dinp.d, dout.d, out.d, N);
    compare("tanh dinp", dinp.c, dinp.d, N, 0);
    cpu.ops->residual_forward(cpu.self, out.c, inp.c, dout.c, N, (tftx_dropout){0}, 0);
    gpu.ops->residual_forward(gpu.self, out.d, inp.d, dout.d, N, (tftx_dropout){0}, 0);
    compare("residual out", out.c, out.d, N, 1);
    { /* a + dropout(b): the same mask; a + b*f may be one fused multiply-add on one side */
        const tftx_dropout d = {.p = 0.2f, .seed = 8, .stream = 4};
        cpu.ops->residual_forward(cpu.self, out.c, inp.c, dout.c, N, d, 99);
        gpu.ops->residual_forward(gpu.self, out.d, inp.d, dout.d, N, d, 99);
        compare("residual dropout out", out.c, out.d, N, 0);
    }
    pair_reset(&dinp, -1, 1);
    pair_reset(&out, -1, 1); /* not the dropout sum above: its last bit may differ */
    cpu.ops->residual_backward(cpu.self, dinp.c, out.c, dout.c, N);
    gpu.ops->residual_backward(gpu.self, dinp.d, out.d, dout.d, N);
    compare("residual da", dinp.c, dinp.d, N, 1);
    compare("residual db", out.c, out.d, N, 1);
    cpu.ops->residual_backward(cpu.self, NULL, dinp.c, dout.c, N);
    gpu.ops->residual_backward(gpu.self, NULL, dinp.d, dout.d, N);
    compare("residual db (da NULL)", dinp.c, dinp.d, N, 1);
    /* dropout: the same mask bit for bit, out of place, in place, backward;
       k = 2: the stream from a step in each side's memory */
    const uint64_t step = 123457;
    uint64_t *step_c = put(&cpu, &step, sizeof step), *step_d = put(&gpu, &step, sizeof step);
    for (int k = 0; k < 3; k++) {
        tftx_dropout drop = {.p = k ? 0.3f : 0.0f, .seed = 42, .stream = 7}, drop_d = drop;
        if (k == 2) drop.step = step_c, drop_d.step = step_d;
        uint64_t off = k ? 1000003 : 0;
        cpu.ops->dropout_forward(cpu.self, out.c, inp.c, N, drop, off);
        gpu.ops->dropout_forward(gpu.self, out.d, inp.d, N, drop_d, off);
        snprintf(nm, sizeof nm, "dropout p=%.1f%s out", (double)drop.p, k == 2 ? " step" : "");
        compare(nm, out.c, out.d, N, 1);
        cpu.ops->dropout_forward(cpu.self, inp.c, inp.c, N, drop, off + 5);
        gpu.ops->dropout_forward(gpu.self, inp.d, inp.d, N, drop_d, off + 5);
        snprintf(nm, sizeof nm, "dropout p=%.1f%s in place", (double)drop.p, k == 2 ? " step" : "");
        compare(nm, inp.c, inp.d, N, 1);
        pair_reset(&dinp, -1, 1);
        cpu.ops->dropout_backward(cpu.self, dinp.c, dout.c, N, drop, off, 1);
        gpu.ops->dropout_backward(gpu.self, dinp.d, dout.d, N, drop_d, off, 1);
        snprintf(nm, sizeof nm, "dropout p=%.1f%s dinp", (double)drop.p, k == 2 ? " step" : "");
        /* p > 0: dinp + dout*f may be one fused multiply-add on one side
           and not the other (1 ulp); the masks are the forward's, bit for bit */
        compare(nm, dinp.c, dinp.d, N, !(drop.p > 0.0f));
        pair_nan(&dinp);
        cpu.ops->dropout_backward(cpu.self, dinp.c, dout.c, N, drop, off, 0);
        gpu.ops->dropout_backward(gpu.self, dinp.d, dout.d, N, drop_d, off, 0);
        snprintf(nm, sizeof nm, "dropout p=%.1f%s dinp written", (double)drop.p, k == 2 ? " step" : "");
        compare(nm, dinp.c, dinp.d, N, 1); /* 0 + dout*f: the same product on both sides */
    }
    { /* rows of C taken every 7 rows of a larger tensor (tftx_dropout.row), C odd: rows start anywhere in a group */
        const size_t C = 77, rows = N / C;
        const tftx_dropout d = {.p = 0.3f, .seed = 9, .stream = 2, .row = C, .row_stride = 7 * C};
        cpu.ops->dropout_forward(cpu.self, out.c, inp.c, rows * C, d, 11);
        gpu.ops->dropout_forward(gpu.self, out.d, inp.d, rows * C, d, 11);
        compare("dropout rows out", out.c, out.d, rows * C, 1);
        cpu.ops->residual_forward(cpu.self, out.c, inp.c, dout.c, rows * C, d, 11);
        gpu.ops->residual_forward(gpu.self, out.d, inp.d, dout.d, rows * C, d, 11);
        compare("residual dropout rows out", out.c, out.d, rows * C, 0);
        pair_nan(&dinp);
        cpu.ops->dropout_backward(cpu.self, dinp.c, dout.c, rows * C, d, 11, 0);
        gpu.ops->dropout_backward(gpu.self, dinp.d, dout.d, rows * C, d, 11, 0);
        compare("dropout rows dinp written", dinp.c, dinp.d, rows * C, 1);
    }
    cpu.ops->free(cpu.self, step_c), gpu.ops->free(gpu.self, step_d);
    pair *all[] = {&inp, &out, &dout, &dinp};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(all[i]);
}

static void test_pooling(int B, int T, int C)
{
    pair inp = pair_rand((size_t)B * T * C, -1, 1), out = pair_rand((size_t)B * C, 0, 0);
    pair dout = pair_rand((size_t)B * C, -1, 1), dinp = pair_rand((size_t)B * T * C, -1, 1);
    uint8_t *hm = make_mask(B, T), *md = NULL, *mc = put_both(hm, (size_t)B * T, (void **)&md);
    cpu.ops->pool_first_forward(cpu.self, out.c, inp.c, B, T, C);
    gpu.ops->pool_first_forward(gpu.self, out.d, inp.d, B, T, C);
    compare("pool_first out", out.c, out.d, out.n, 1);
    cpu.ops->pool_first_backward(cpu.self, dinp.c, dout.c, B, T, C);
    gpu.ops->pool_first_backward(gpu.self, dinp.d, dout.d, B, T, C);
    compare("pool_first dinp", dinp.c, dinp.d, dinp.n, 1);
    for (int masked = 0; masked < 2; masked++) {
        cpu.ops->pool_mean_forward(cpu.self, out.c, inp.c, masked ? mc : NULL, B, T, C);
        gpu.ops->pool_mean_forward(gpu.self, out.d, inp.d, masked ? md : NULL, B, T, C);
        compare(masked ? "pool_mean (mask) out" : "pool_mean out", out.c, out.d, out.n, 0);
        cpu.ops->pool_mean_backward(cpu.self, dinp.c, dout.c, masked ? mc : NULL, B, T, C);
        gpu.ops->pool_mean_backward(gpu.self, dinp.d, dout.d, masked ? md : NULL, B, T, C);
        compare(masked ? "pool_mean (mask) dinp" : "pool_mean dinp", dinp.c, dinp.d, dinp.n, 0);
    }
    cpu.ops->free(cpu.self, mc), gpu.ops->free(gpu.self, md), free(hm);
    pair *all[] = {&inp, &out, &dout, &dinp};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(all[i]);
}

/* rows of ld >= V: the padding columns are read by no kernel, the fused
 * one sets them to 0 */
static void test_crossentropy(int N, int V, int ld)
{
    pair logits = pair_rand((size_t)N * ld, -6, 6), probs = pair_rand((size_t)N * ld, 0, 0);
    pair losses = pair_param((size_t)N, 0, 0), dl = pair_rand((size_t)N * ld, -1, 1);
    int32_t *t = malloc((size_t)N * sizeof *t);
    for (int n = 0; n < N; n++) t[n] = n == 1 ? -100 : (int32_t)((n * 7919u) % (unsigned)V);
    int32_t *td = NULL, *tc = put_both(t, (size_t)N * sizeof *t, (void **)&td);
    cpu.ops->crossentropy_forward(cpu.self, losses.c, probs.c, logits.c, tc, N, V, ld);
    gpu.ops->crossentropy_forward(gpu.self, losses.d, probs.d, logits.d, td, N, V, ld);
    compare("crossentropy probs", probs.c, probs.d, probs.n, 0);
    compare("crossentropy losses", losses.c, losses.d, losses.n, 0);
    const float dloss = 1.0f / (float)N;
    float *wd = NULL, *wc = put_both(&dloss, sizeof dloss, (void **)&wd);
    cpu.ops->crossentropy_backward(cpu.self, dl.c, probs.c, tc, wc, N, V, ld);
    gpu.ops->crossentropy_backward(gpu.self, dl.d, probs.d, td, wd, N, V, ld);
    compare("crossentropy dlogits", dl.c, dl.d, dl.n, 0);
    /* fused: the gpu's own forward + backward (into zeros) bit for bit,
       the cpu's within the tolerance */
    float *hl = get(&gpu, logits.d, logits.n);
    pair fused = pair_of(hl, logits.n), fl = pair_param((size_t)N, 0, 0), zd = pair_rand(dl.n, 0, 0);
    cpu.ops->crossentropy_forward(cpu.self, losses.c, probs.c, fused.c, tc, N, V, ld);
    gpu.ops->crossentropy_forward(gpu.self, losses.d, probs.d, fused.d, td, N, V, ld);
    cpu.ops->crossentropy_backward(cpu.self, zd.c, probs.c, tc, wc, N, V, ld);
    gpu.ops->crossentropy_backward(gpu.self, zd.d, probs.d, td, wd, N, V, ld);
    cpu.ops->crossentropy_fused(cpu.self, fl.c, fused.c, probs.c, tc, wc, N, V, ld);
    gpu.ops->crossentropy_fused(gpu.self, fl.d, fused.d, probs.d, td, wd, N, V, ld);
    compare("crossentropy fused losses", losses.c, fl.d, losses.n, 0);
    compare("crossentropy fused dlogits", zd.c, fused.d, zd.n, 0);
    check_repeat("crossentropy fused = forward + backward", zd.d, fused.d, zd.n);
    check_repeat("crossentropy fused losses = forward's", losses.d, fl.d, losses.n);
    free(hl);
    pair_free(&fused), pair_free(&fl), pair_free(&zd);
    cpu.ops->free(cpu.self, tc), gpu.ops->free(gpu.self, td), free(t);
    cpu.ops->free(cpu.self, wc), gpu.ops->free(gpu.self, wd);
    pair *all[] = {&logits, &probs, &losses, &dl};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(all[i]);
}

/* grid: gradients and dout on pair_grid's values, so the sums over rows
 * (in another order on the GPU) must match bit for bit. */
static void test_embedding(int B, int T, int C, int V, int S, int grid)
{
    pair wte = pair_param((size_t)V * C, -1, 1), wpe = pair_param((size_t)T * C, -1, 1),
         wse = pair_param((size_t)S * C, -1, 1);
    const size_t BTC = (size_t)B * T * C;
    pair out = pair_rand(BTC, 0, 0), dout = grid ? pair_grid(BTC, 1) : pair_rand(BTC, -1, 1);
    pair dwte = grid ? pair_grid(wte.n, 0) : pair_param(wte.n, -1, 1),
         dwpe = grid ? pair_grid(wpe.n, 0) : pair_param(wpe.n, -1, 1),
         dwse = grid ? pair_grid(wse.n, 0) : pair_param(wse.n, -1, 1);
    int32_t *tok = malloc((size_t)B * T * sizeof *tok), *seg = malloc((size_t)B * T * sizeof *seg);
    for (int i = 0; i < B * T; i++) { /* repeats; every other sequence ends in a run of padding (token 0) */
        const int pad = (i / T) % 2 && i % T >= T * 3 / 4;
        tok[i] = pad ? 0 : (int32_t)((i * 31u) % (unsigned)V) % 5, seg[i] = (i / 7) % S;
    }
    int32_t *tokd = NULL, *segd = NULL;
    int32_t *tokc = put_both(tok, (size_t)B * T * sizeof *tok, (void **)&tokd);
    int32_t *segc = put_both(seg, (size_t)B * T * sizeof *seg, (void **)&segd);
    for (int with_seg = 0; with_seg < 2; with_seg++) {
        cpu.ops->embedding_forward(cpu.self, out.c, tokc, with_seg ? segc : NULL, wte.c, wpe.c, wse.c, B, T, C);
        gpu.ops->embedding_forward(gpu.self, out.d, tokd, with_seg ? segd : NULL, wte.d, wpe.d, wse.d, B, T, C);
        compare(with_seg ? "embedding (segments) out" : "embedding out", out.c, out.d, out.n, 1);
        cpu.ops->embedding_backward(cpu.self, dwte.c, dwpe.c, dwse.c, dout.c, tokc, with_seg ? segc : NULL, B, T, C);
        gpu.ops->embedding_backward(gpu.self, dwte.d, dwpe.d, dwse.d, dout.d, tokd, with_seg ? segd : NULL, B, T, C);
        compare("embedding dwte", dwte.c, dwte.d, dwte.n, grid);
        compare("embedding dwpe", dwpe.c, dwpe.d, dwpe.n, grid);
        compare(with_seg ? "embedding (segments) dwse" : "embedding dwse", dwse.c, dwse.d, dwse.n, grid);
    }
    cpu.ops->embedding_forward(cpu.self, out.c, tokc, NULL, wte.c, NULL, NULL, B, T, C);
    gpu.ops->embedding_forward(gpu.self, out.d, tokd, NULL, wte.d, NULL, NULL, B, T, C);
    compare("embedding (wte only) out", out.c, out.d, out.n, 1);
    cpu.ops->free(cpu.self, tokc), gpu.ops->free(gpu.self, tokd), free(tok);
    cpu.ops->free(cpu.self, segc), gpu.ops->free(gpu.self, segd), free(seg);
    pair *all[] = {&wte, &wpe, &wse, &out, &dout, &dwte, &dwpe, &dwse};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(all[i]);
}

static void test_utilities(size_t n)
{
    float *h = rand_host(n, -3, 3);
    pair x = pair_new(h, n, 0); /* gradients: float */
    double sc = cpu.ops->sum_squares(cpu.self, x.c, n), sd = gpu.ops->sum_squares(gpu.self, x.d, n);
    double sd2 = gpu.ops->sum_squares(gpu.self, x.d, n);
    int ok = fabs(sc - sd) <= 1e-12 * fabs(sc) && sd == sd2;
    printf("%s %-48s cpu %.17g cuda %.17g\n", ok ? "ok  " : "FAIL", "sum_squares", sc, sd);
    failures += !ok;
    cpu.ops->scale(cpu.self, x.c, n, 0.37f);
    gpu.ops->scale(gpu.self, x.d, n, 0.37f);
    compare("scale", x.c, x.d, n, 1);
    ok = gpu.ops->all_finite(gpu.self, x.d, n) == 1;
    h[n / 2] = NAN;
    gpu.ops->copy_in(gpu.self, x.d, h, n * sizeof *h);
    ok = ok && gpu.ops->all_finite(gpu.self, x.d, n) == 0;
    h[n / 2] = INFINITY;
    gpu.ops->copy_in(gpu.self, x.d, h, n * sizeof *h);
    ok = ok && gpu.ops->all_finite(gpu.self, x.d, n) == 0 && gpu.ops->all_finite(gpu.self, x.d, n / 2) == 1;
    printf("%s %-48s\n", ok ? "ok  " : "FAIL", "all_finite (finite, NaN, Inf, prefix)");
    failures += !ok;
    /* zero and memory round trip */
    gpu.ops->zero(gpu.self, x.d, n * sizeof *h);
    float *z = get(&gpu, x.d, n);
    size_t nz = 0;
    for (size_t i = 0; i < n; i++) nz += z[i] != 0.0f;
    printf("%s %-48s\n", nz ? "FAIL" : "ok  ", "zero");
    failures += nz != 0;
    free(z), free(h);
    pair_free(&x);
}

/* The optimizer step on device memory against step_cpu on host memory:
 * the fused kernel, then the staged fallback (a table without step_cuda). */
/* ------------------------------------------------------------ main */

static void set_string(const plugin *pl, tftx_value *v, const char *name, const char *value)
{
    const tftx_value *pv = tftx_param(pl->desc, v, name);
    if (pv && value) {
        free((char *)pv->s);
        ((tftx_value *)pv)->s = strdup(value);
    }
}

static int no_fuse_bias; /* instances made now get fuse_bias = false */

/* An instance with the given precision and attention ("cublas" or
 * "fused"); NULL with the message in err when create() refuses. */
static void *try_create(const plugin *pl, const char *prec, const char *attention, tftx_error *err)
{
    tftx_value *v = values_from_section(pl->desc, NULL);
    set_string(pl, v, "precision", prec);
    set_string(pl, v, "attention", attention);
    const tftx_value *fb = tftx_param(pl->desc, v, "fuse_bias");
    if (fb && no_fuse_bias) ((tftx_value *)fb)->i = 0;
    void *self = NULL;
    if (pl->desc->create(&tftx_host_services, v, &self, err) != TFTX_OK) self = NULL;
    values_free(pl->desc, v);
    return self;
}

static void *create(const plugin *pl, const char *prec, const char *attention)
{
    tftx_error err = {0};
    void *self = try_create(pl, prec, attention, &err);
    if (!self) {
        fprintf(stderr, "create %s: %s\n", pl->desc->name, err.message);
        exit(1);
    }
    return self;
}

/* The emulator's count of cuBLASLt products (NULL on a real GPU, where
 * the paths are told apart by nothing but speed). */
static unsigned long (*lt_products)(void);

/* test_matmul, checking on the emulator that it made `want` cuBLASLt
 * products (the forward's and the two weight gradients', added and
 * written, when the bias is fused) */
static void lt_count(const char *nm, unsigned long before, unsigned long want)
{
    if (!lt_products) return;
    unsigned long got = lt_products() - before;
    printf("%s %-48s %lu product%s, want %lu\n", got == want ? "ok  " : "FAIL", nm, got, got == 1 ? "" : "s", want);
    failures += got != want;
}

static void matmul_via(int N, int C, int OC, int with_bias, unsigned long want)
{
    unsigned long before = lt_products ? lt_products() : 0;
    test_matmul(N, C, OC, with_bias);
    char nm[128];
    snprintf(nm, sizeof nm, "matmul N=%d C=%d OC=%d bias=%d via cuBLASLt", N, C, OC, with_bias);
    lt_count(nm, before, want);
}

/* test_matmul_act and its count of cuBLASLt products (the GELU tanh form
 * in the epilogues: the forward's, and per backward the weight gradient's
 * and the input gradient's) */
static void matmul_act_via(int N, int C, int OC, int with_bias, tftx_activation act, unsigned long want)
{
    unsigned long before = lt_products ? lt_products() : 0;
    test_matmul_act(N, C, OC, with_bias, act);
    char nm[128];
    snprintf(nm, sizeof nm, "matmul+act%d N=%d C=%d OC=%d bias=%d via cuBLASLt", (int)act, N, C, OC, with_bias);
    lt_count(nm, before, want);
}

/* the products with their activation, each path: the GELU's tanh form in
 * cuBLASLt's epilogues at tf32 and bf16 (gelu_epi: forward 1, two
 * backward calls 2 each with a bias, 1 without: the input gradient's);
 * at fp32 (cuBLASLt's GELU is not that accurate) and for the other
 * activations the two calls (the bias epilogues: forward 1, backward 1
 * each); fuse_bias false, none */
static void matmul_act_cases(int fuse, int gelu_epi)
{
    matmul_act_via(37, 24, 40, 1, TFTX_ACT_GELU_TANH, gelu_epi ? 5 : fuse ? 3 : 0);
    matmul_act_via(16, 32, 48, 0, TFTX_ACT_GELU_TANH, gelu_epi ? 3 : 0);
    matmul_act_via(37, 24, 40, 1, TFTX_ACT_GELU, fuse ? 3 : 0);
    matmul_act_via(9, 13, 11, 1, TFTX_ACT_RELU, fuse ? 3 : 0);
    /* rows of 11 and 13: no GELU epilogue (its input's rows must be
       multiples of 8), the two calls (the bias epilogues still) */
    matmul_act_via(9, 13, 11, 1, TFTX_ACT_GELU_TANH, fuse ? 3 : 0);
}

/* the products again on an instance of precision prec with fuse_bias =
 * false: the bias and activation kernels, no cuBLASLt product */
static void fuse_bias_off_cases(const plugin *pg, const char *prec)
{
    printf("-- %s, fuse_bias false\n", prec);
    void *with = gpu.self;
    no_fuse_bias = 1;
    gpu.self = create(pg, prec, NULL);
    no_fuse_bias = 0;
    matmul_via(37, 65, 33, 1, 0);
    matmul_via(256, 128, 384, 1, 0);
    matmul_act_cases(0, 0);
    pg->desc->destroy(gpu.self);
    gpu.self = with;
}

int main(void)
{
    registry reg;
    memset(&reg, 0, sizeof reg);
    registry_add_dirs(&reg, getenv("TFTX_BUILD_PLUGINS"), NULL);
    char err[1024];
    const plugin *pc = registry_find(&reg, TFTX_KIND_BACKEND, "cpu", err, sizeof err);
    const plugin *pg = pc ? registry_find(&reg, TFTX_KIND_BACKEND, "cuda", err, sizeof err) : NULL;
    if (!pc || !pg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    tftx_error perr = {0};
    if (pg->desc->probe(&tftx_host_services, &perr) != TFTX_OK) {
        const char *m = perr.message;
        if (strncmp(m, "no CUDA device: ", 16) == 0) m += 16;
        printf("no CUDA device: %s\n", m);
        registry_free(&reg);
        return 77;
    }
    /* TFTX_TEST_QUICK=1 (the emulated backend in the sanitizer build, where
       every CUDA thread is a fiber switched by swapcontext): without the
       two largest fused-attention shapes, which test_flash_emulated checks
       against references, and the large embedding case narrower */
    const char *q = getenv("TFTX_TEST_QUICK");
    const int quick = q && strcmp(q, "1") == 0;
    cpu.ops = pc->desc->ops, cpu.self = create(pc, NULL, NULL);
    gpu.ops = pg->desc->ops, gpu.self = create(pg, "fp32", NULL);

    void *emu = dlopen("libtftx_cuda_emu.so", RTLD_NOW | RTLD_NOLOAD); /* loaded with the emulated plugin */
    if (emu) *(void **)&lt_products = dlsym(emu, "emu_lt_products");
    matmul_via(37, 65, 33, 1, 3);
    matmul_via(1, 1, 1, 1, 3);
    matmul_via(9, 13, 11, 0, 0);
    matmul_via(256, 128, 384, 1, 3);
    fuse_bias_off_cases(pg, "fp32");
    matmul_act_cases(1, 0);
    test_layernorm(13, 77);
    test_layernorm(64, 768); /* wider than the fused kernel: the row kernel and colsum */
    test_layernorm(64, 512); /* the fused kernel's widest */
    test_layernorm(1, 1);
    test_layernorm(2000, 200); /* rows past the fused kernel's 96 chunks: several a warp */
    test_layernorm(9, 1030);
    for (int causal = 0; causal <= 1; causal++)
        for (int padded = 0; padded <= 1; padded++)
            for (int d = 0; d <= 1; d++) test_attention(4, 37, 4, 8, causal, padded, d ? 0.2f : 0.0f);
    test_attention(2, 5, 3, 2, 1, 1, 0.25f);
    test_attention(2, 36, 3, 4, 1, 1, 0.2f); /* rows of T a multiple of 4: one draw a group of four */
    test_attention(2, 130, 2, 64, 1, 1, 0.1f);
    test_attention_mask_bits();
    test_pointwise(100003);
    test_pooling(4, 19, 77);
    test_crossentropy(11, 1003, 1003);
    test_crossentropy(4, 50257, 50304); /* GPT-2's vocabulary in rows padded to 64 */
    test_crossentropy(4096, 3, 3);      /* a classifier's head: a third of the gradients are targets' */
    test_embedding(3, 17, 77, 50, 2, 0);
    /* bert-small's B*T and C (64 columns in the quick set: each block of
       32 columns is 256 warps of fibers there) */
    const int emb_c = quick ? 64 : 256;
    test_embedding(32, 128, emb_c, 1000, 2, 1);
    test_utilities(1000003);
    test_optimizer(&reg, "adamw", 0);
    test_optimizer(&reg, "adamw", 1);
    test_optimizer(&reg, "sgd", 0);
    {
        void *fresh = create(pg, "fp32", NULL);
        test_graphs(fresh);
        pg->desc->destroy(fresh);
    }

    /* tf32: inputs of the products rounded to 10-bit mantissas (relative
       error ~5e-4 each), so 300 times the fp32 tolerance; bf16: 8-bit
       mantissas, 8 times coarser again; attention (two products and a
       softmax in between) twice that. The loss curves of tests/gpu/run.sh
       check training at each precision as a whole. */
    static const struct {
        const char *name;
        double scale;
    } REDUCED[] = {{"tf32", 300}, {"bf16", 2400}};
    for (int k = 0; k < 2; k++) {
        printf("-- precision %s\n", REDUCED[k].name);
        pg->desc->destroy(gpu.self);
        gpu.self = create(pg, REDUCED[k].name, NULL);
        act16 = k == 1;
        if (act16) {
            /* activations stored as bfloat16 (8-bit mantissas: 2^-9
               relative each rounding), every kernel that touches them */
            tol_scale = 80;
            test_layernorm(13, 77);
            test_layernorm(64, 768);
            test_pointwise(100003);
            test_pooling(4, 19, 77);
            test_crossentropy(11, 1003, 1024);
            test_embedding(3, 17, 77, 50, 2, 0);
            test_embedding(32, 128, emb_c, 1000, 2, 1);
            test_attention(4, 37, 4, 8, 1, 1, 0.2f);
        }
        tol_scale = REDUCED[k].scale;
        matmul_via(64, 64, 64, 1, 3);
        matmul_via(256, 128, 384, 1, 3);
        matmul_via(33, 17, 9, 1, 3); /* bf16: the weight and bias copies at odd sizes */
        matmul_act_cases(1, 1);
        fuse_bias_off_cases(pg, REDUCED[k].name);
        if (act16) test_weights_after_steps(&reg);
        tol_scale = 2 * REDUCED[k].scale;
        test_attention(2, 130, 2, 64, 1, 1, 0.1f);
        /* the fused kernels (cuda_flash.cuh): head sizes 32 and 64 */
        printf("-- precision %s, attention fused\n", REDUCED[k].name);
        pg->desc->destroy(gpu.self);
        gpu.self = create(pg, REDUCED[k].name, "fused");
        fused_attention = 1;
        for (int causal = 0; causal <= 1; causal++)
            for (int padded = 0; padded <= 1; padded++)
                for (int d = 0; d <= 1; d++) test_attention(4, 37, 2, 32, causal, padded, d ? 0.2f : 0.0f);
        test_attention(2, 36, 2, 32, 1, 1, 0.2f); /* T a multiple of 4: keep bits shared within a warp */
        if (!quick) { /* head size 64, T past a tile */
            test_attention(2, 130, 2, 64, 1, 1, 0.1f);
            test_attention(3, 200, 4, 64, 0, 1, 0.0f);
        }
        fused_attention = 0;
    }
    act16 = 0;
    {
        tftx_error e = {0};
        void *bad = try_create(pg, "fp32", "fused", &e);
        if (bad || !strstr(e.message, "needs precision")) {
            printf("FAIL %-48s %s\n", "attention fused with fp32 refused", bad ? "created" : e.message);
            failures++;
            if (bad) pg->desc->destroy(bad);
        } else {
            printf("ok   %-48s %s\n", "attention fused with fp32 refused", e.message);
        }
    }
    pg->desc->destroy(gpu.self);
    pc->desc->destroy(cpu.self);
    registry_free(&reg);
    printf("%s: %d failure%s\n", failures ? "FAIL" : "PASS", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
