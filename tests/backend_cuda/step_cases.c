/*
 * step_cases.c -- the cases of test_cuda_kernels about what a training
 * step keeps in the cuda backend between kernels (step_cases.h): the
 * optimizer step over ranges of the arena, the bf16 copy of the weights it
 * refreshes, and step graphs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>

#include "kernel_pairs.h"
#include "runner.h"
#include "step_cases.h"

/* An instance of optimizer plugin `name` with its defaults (*pl, *v: its
 * plugin and values, for destroy and values_free); NULL after a failure
 * counted under `what`. */
static void *optimizer_of(registry *reg, const char *name, const char *what, const plugin **pl, tftx_value **v)
{
    char err[1024];
    *pl = registry_find(reg, TFTX_KIND_OPTIMIZER, name, err, sizeof err);
    *v = *pl ? values_from_section((*pl)->desc, NULL) : NULL;
    void *o = NULL;
    tftx_error e = {0};
    if (*pl && (*pl)->desc->create(&tftx_host_services, *v, &o, &e) == TFTX_OK) return o;
    printf("FAIL %s: %s\n", what, *pl ? e.message : err);
    failures++;
    if (*v) values_free((*pl)->desc, *v);
    return NULL;
}

void test_optimizer(registry *reg, const char *name, int staged)
{
    const plugin *pl;
    tftx_value *v;
    char nm[96];
    snprintf(nm, sizeof nm, "optimizer %s", name);
    void *o = optimizer_of(reg, name, nm, &pl, &v);
    if (!o) return;
    tftx_optimizer_ops ops = *(const tftx_optimizer_ops *)pl->desc->ops;
    if (staged) ops.step_cuda = NULL;
    const size_t n = 100003;
    int ns = ops.n_slots(o);
    pair w = pair_param(n, -1, 1), g = pair_param(n, -1, 1), s[TFTX_OPT_MAX_SLOTS];
    float *sc[TFTX_OPT_MAX_SLOTS], *sd[TFTX_OPT_MAX_SLOTS];
    for (int k = 0; k < ns; k++) s[k] = pair_param(n, 0, 0.5f), sc[k] = s[k].c, sd[k] = s[k].d;
    /* ranges longer and shorter than a CUDA block's, both groups, the last
       10 elements in none; step 3 changes the ranges (the backend's copy
       must follow) */
    const tftx_opt_range cut[4] = {{0, 20000, 0}, {20000, 3, 1}, {20003, 50000, 0}, {70003, n - 70013, 1}};
    const tftx_opt_range all = {0, n, 0};
    for (int step = 1; step <= 3; step++) {
        tftx_opt_step st[TFTX_OPT_GROUPS] = {{.step = step, .lr = 1e-2f, .weight_decay = 0.1f},
                                             {.step = step, .lr = 1e-2f}};
        for (int k = 0; k < TFTX_OPT_GROUPS; k++) ops.prepare(o, &st[k]);
        const tftx_opt_range *r = step < 3 ? cut : &all;
        size_t nr = step < 3 ? 4 : 1;
        tftx_error e1 = {0}, e2 = {0};
        tftx_status r1 = cpu.ops->optimizer_step(cpu.self, &ops, o, st, r, nr, w.c, g.c, sc, &e1);
        tftx_status r2 = gpu.ops->optimizer_step(gpu.self, &ops, o, st, r, nr, w.d, g.d, sd, &e2);
        if (r1 != TFTX_OK || r2 != TFTX_OK) {
            printf("FAIL optimizer %s step: %s %s\n", name, e1.message, e2.message);
            failures++;
            break;
        }
    }
    snprintf(nm, sizeof nm, "optimizer %s (%s) weights", name, staged ? "staged" : "step_cuda");
    compare(nm, w.c, w.d, n, 1);
    for (int k = 0; k < ns; k++) {
        snprintf(nm, sizeof nm, "optimizer %s (%s) slot %d", name, staged ? "staged" : "step_cuda", k);
        compare(nm, s[k].c, s[k].d, n, 1);
        pair_free(&s[k]);
    }
    pair_free(&w), pair_free(&g);
    pl->desc->destroy(o);
    values_free(pl->desc, v);
}

/* Precision bf16: the linear layers read their weights in the bfloat16
 * copy of the arena made after each optimizer step, and convert them
 * themselves again once copy_in wrote new ones. A layer lying in an arena
 * (weight, bias, seven more floats), against the cpu: before any step,
 * after one and after two (lr 0.5: the weights move), after new weights
 * were copied in. */
void test_weights_after_steps(registry *reg)
{
    char nm[128];
    const plugin *pl;
    tftx_value *v;
    void *o = optimizer_of(reg, "sgd", "weights after steps", &pl, &v);
    if (!o) return;
    const tftx_optimizer_ops *ops = pl->desc->ops;
    const int N = 33, C = 20, OC = 12;
    const size_t nw = (size_t)OC * C, n = nw + OC + 7;
    pair w = pair_param(n, -1, 1), g = pair_param(n, -1, 1), s[TFTX_OPT_MAX_SLOTS];
    pair inp = pair_rand((size_t)N * C, -1, 1), out = pair_rand((size_t)N * OC, 0, 0);
    pair dout = pair_rand((size_t)N * OC, -1, 1), dinp = pair_rand((size_t)N * C, 0, 0);
    float *sc[TFTX_OPT_MAX_SLOTS], *sd[TFTX_OPT_MAX_SLOTS];
    const int ns = ops->n_slots(o);
    for (int k = 0; k < ns; k++) s[k] = pair_param(n, 0, 0), sc[k] = s[k].c, sd[k] = s[k].d;
    const tftx_opt_range all = {0, n, 0};
    static const char *const WHEN[] = {"before a step", "after a step", "after two steps", "after copy_in"};
    for (int round = 0; round < 4; round++) {
        if (round == 1 || round == 2) {
            tftx_opt_step st[TFTX_OPT_GROUPS] = {{.step = round, .lr = 0.5f}, {.step = round, .lr = 0.5f}};
            for (int k = 0; k < TFTX_OPT_GROUPS; k++) ops->prepare(o, &st[k]);
            tftx_error e1 = {0}, e2 = {0};
            if (cpu.ops->optimizer_step(cpu.self, ops, o, st, &all, 1, w.c, g.c, sc, &e1) != TFTX_OK ||
                gpu.ops->optimizer_step(gpu.self, ops, o, st, &all, 1, w.d, g.d, sd, &e2) != TFTX_OK) {
                printf("FAIL weights after steps: %s %s\n", e1.message, e2.message);
                failures++;
                break;
            }
        }
        if (round == 3) pair_reset(&w, -1, 1);
        for (int with_bias = 0; with_bias <= 1; with_bias++) {
            cpu.ops->matmul_forward(cpu.self, out.c, inp.c, w.c, with_bias ? w.c + nw : NULL, N, C, OC);
            gpu.ops->matmul_forward(gpu.self, out.d, inp.d, w.d, with_bias ? w.d + nw : NULL, N, C, OC);
            snprintf(nm, sizeof nm, "bf16 weights %s: out%s", WHEN[round], with_bias ? " (bias)" : "");
            compare(nm, out.c, out.d, out.n, 0);
        }
        cpu.ops->matmul_backward(cpu.self, dinp.c, NULL, NULL, dout.c, inp.c, w.c, N, C, OC, 0, 1);
        gpu.ops->matmul_backward(gpu.self, dinp.d, NULL, NULL, dout.d, inp.d, w.d, N, C, OC, 0, 1);
        snprintf(nm, sizeof nm, "bf16 weights %s: dinp", WHEN[round]);
        compare(nm, dinp.c, dinp.d, dinp.n, 0);
    }
    for (int k = 0; k < ns; k++) pair_free(&s[k]);
    pair *all_pairs[] = {&w, &g, &inp, &out, &dout, &dinp};
    for (size_t i = 0; i < sizeof all_pairs / sizeof *all_pairs; i++) pair_free(all_pairs[i]);
    pl->desc->destroy(o);
    values_free(pl->desc, v);
}

/* Step graphs (backend.h), on a fresh instance (its working memory not yet
 * grown): recording runs nothing; each launch reads the memory as it is
 * then (new inputs, a new dropout step in device memory), matching the cpu
 * kernels bit for bit; a working buffer that would have to grow while
 * recording fails the recording and leaves the instance usable; a graph
 * recorded before the working memory moved is refused as stale. */
void test_graphs(void *fresh)
{
    void *saved = gpu.self;
    gpu.self = fresh;
    tftx_error e = {0};
    char msg[1100];
    const size_t N = 4099;
    pair x = pair_rand(N, -2, 2), out = pair_rand(N, 0, 0);
    const uint64_t step0 = 11;
    uint64_t *sc = put(&cpu, &step0, sizeof step0), *sd = put(&gpu, &step0, sizeof step0);
    const tftx_dropout dc = {.p = 0.3f, .seed = 9, .stream = 4, .step = sc};
    tftx_dropout dd = dc;
    dd.step = sd;
    float *sentinel = rand_host(N, 5, 6);
    gpu.ops->copy_in(gpu.self, out.d, sentinel, N * sizeof *sentinel);

    int rc = gpu.ops->graph_begin(gpu.self, &e);
    gpu.ops->dropout_forward(gpu.self, out.d, x.d, N, dd, 0);
    void *g = rc == TFTX_OK ? gpu.ops->graph_end(gpu.self, &e) : NULL;
    check("graph: dropout recorded", g != NULL, g ? "" : e.message);
    if (!g) goto done;
    float *now = get(&gpu, out.d, N);
    check("graph: recording ran nothing", memcmp(now, sentinel, N * sizeof *now) == 0, "");
    free(now);
    float *first = NULL;
    for (uint64_t k = 0; k < 2; k++) {
        const uint64_t step = 100 + k;
        float *h = rand_host(N, -2, 2);
        cpu.ops->copy_in(cpu.self, x.c, h, N * sizeof *h), gpu.ops->copy_in(gpu.self, x.d, h, N * sizeof *h);
        cpu.ops->copy_in(cpu.self, sc, &step, sizeof step), gpu.ops->copy_in(gpu.self, sd, &step, sizeof step);
        rc = gpu.ops->graph_launch(gpu.self, g, &e);
        cpu.ops->dropout_forward(cpu.self, out.c, x.c, N, dc, 0);
        snprintf(msg, sizeof msg, "graph: launch %d, new inputs and step", (int)k + 1);
        compare(msg, out.c, out.d, N, 1);
        free(h);
        float *mask = get(&gpu, out.d, N);
        for (size_t i = 0; i < N; i++) mask[i] = mask[i] == 0.0f;
        if (!first) {
            first = mask;
        } else {
            check("graph: another step, another mask", memcmp(first, mask, N * sizeof *mask) != 0, "");
            free(mask);
        }
    }
    free(first);
    gpu.ops->graph_free(gpu.self, g);

    /* attention's pointer arrays live in working memory that grows on
       demand: a first call while recording cannot grow it */
    const int B = 2, T = 9, NH = 2, HS = 4, C = NH * HS;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    pair qkv = pair_rand(nqkv, -1, 1), ao = pair_rand(nout, 0, 0), att = pair_rand(natt, 0, 0);
    rc = gpu.ops->graph_begin(gpu.self, &e);
    gpu.ops->attention_forward(gpu.self, ao.d, att.d, qkv.d, NULL, 1, B, T, C, NH, dd);
    g = rc == TFTX_OK ? gpu.ops->graph_end(gpu.self, &e) : NULL;
    check("graph: growing while recording fails it", !g && strstr(e.message, "grow"), g ? "recorded" : e.message);
    if (g) gpu.ops->graph_free(gpu.self, g);
    gpu.ops->attention_forward(gpu.self, ao.d, att.d, qkv.d, NULL, 1, B, T, C, NH, dd);
    cpu.ops->attention_forward(cpu.self, ao.c, att.c, qkv.c, NULL, 1, B, T, C, NH, dc);
    compare("graph: the instance works after a failed one", ao.c, ao.d, nout, 0);
    check("graph: the instance is not failed", gpu.ops->all_finite(gpu.self, ao.d, nout) == 1, "");

    /* now grown for B sequences: recorded, launched; a call for more
       sequences moves the pointer arrays, and the graph is stale */
    rc = gpu.ops->graph_begin(gpu.self, &e);
    gpu.ops->attention_forward(gpu.self, ao.d, att.d, qkv.d, NULL, 1, B, T, C, NH, dd);
    g = rc == TFTX_OK ? gpu.ops->graph_end(gpu.self, &e) : NULL;
    check("graph: attention recorded once grown", g != NULL, g ? "" : e.message);
    if (g) {
        check("graph: attention launched", gpu.ops->graph_launch(gpu.self, g, &e) == TFTX_OK, "");
        compare("graph: attention launched, its output", ao.c, ao.d, nout, 0);
        pair big = pair_rand(nqkv * 2, -1, 1), bo = pair_rand(nout * 2, 0, 0), ba = pair_rand(natt * 2, 0, 0);
        gpu.ops->attention_forward(gpu.self, bo.d, ba.d, big.d, NULL, 1, 2 * B, T, C, NH, dd);
        rc = gpu.ops->graph_launch(gpu.self, g, &e);
        check("graph: stale after the working memory moved", rc == TFTX_ERR_INVALID, e.message);
        gpu.ops->graph_free(gpu.self, g);
        pair *bigs[] = {&big, &bo, &ba};
        for (size_t i = 0; i < 3; i++) pair_free(bigs[i]);
    }
    pair *atts[] = {&qkv, &ao, &att};
    for (size_t i = 0; i < 3; i++) pair_free(atts[i]);
done:
    free(sentinel);
    cpu.ops->free(cpu.self, sc), gpu.ops->free(gpu.self, sd);
    pair_free(&x), pair_free(&out);
    gpu.self = saved;
}
