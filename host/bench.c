/*
 * bench.c -- `tftx bench FILE.cfg [--steps N] [--warmup N] [--set K=V]...`:
 * times full training steps (zero gradients, forward, backward, optimizer
 * step) of the configured model on random token batches, and prints
 * ms/step, tokens/s and achieved GFLOP/s.
 *
 * Batch shape: train.batch_size sequences of data.max_len tokens (no
 * padding). FLOPs per token of a forward pass are counted as 2 per weight of
 * every matrix multiplication (2-D parameters other than embeddings, plus the
 * tied LM head of a decoder) and 4*T*C per layer for attention (scores and
 * weighted sum); a training step counts 3 forward passes (backward is
 * twice the forward), the usual convention.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "session.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double flops_per_token(const run_session *s, int T, int lm)
{
    double matmul = 0, attn = 0;
    size_t nt = s->model->n_tensors(s->model_self);
    for (size_t i = 0; i < nt; i++) {
        const tftx_tensor_info *t = s->model->tensor(s->model_self, i);
        int embedding = strstr(t->name, "embeddings") || strstr(t->name, "wte") || strstr(t->name, "wpe");
        if (t->ndim == 2 && !embedding) matmul += 2.0 * (double)t->numel;
        if (lm && strstr(t->name, "wte")) matmul += 2.0 * (double)t->numel; /* tied LM head */
        /* one query projection per layer: 4*T*C attention FLOPs per token */
        if (strstr(t->name, "attention.self.query.weight") || strstr(t->name, "attn.c_attn.weight"))
            attn += 4.0 * T * (double)t->shape[1];
    }
    return matmul + attn;
}

int cmd_bench(int argc, char **argv)
{
    const char *file = NULL;
    char **sets = NULL;
    size_t n_sets = 0;
    long steps = 10, warmup = 2;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "--steps") || !strcmp(argv[i], "--warmup")) && i + 1 < argc) {
            long v = strtol(argv[i + 1], NULL, 10);
            if (!strcmp(argv[i], "--steps")) steps = v;
            else warmup = v;
            i++;
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            sets = xrealloc(sets, (n_sets + 1) * sizeof *sets);
            sets[n_sets++] = argv[++i];
        } else if (argv[i][0] != '-' && !file) {
            file = argv[i];
        } else {
            fprintf(stderr, "usage: tftx bench FILE.cfg [--steps N] [--warmup N] [--set KEY=VALUE]...\n");
            free(sets);
            return 2;
        }
    }
    if (!file || steps < 1 || warmup < 0) {
        fprintf(stderr, "usage: tftx bench FILE.cfg [--steps N] [--warmup N] [--set KEY=VALUE]...\n");
        free(sets);
        return 2;
    }
    registry reg;
    registry_init(&reg);
    plan p;
    errlist errs = {0};
    if (plan_build(&p, file, sets, n_sets, &reg, &errs) != 0) {
        errlist_print(&errs, "");
        errlist_free(&errs);
        registry_free(&reg);
        free(sets);
        return 2;
    }
    const tnode *cfg = p.runs[0].config;
    const tnode *bn = tnode_path(cfg, "train.batch_size"), *tn = tnode_path(cfg, "data.max_len");
    int B = bn ? (int)bn->i : 32, T = tn ? (int)tn->i : 128;
    session_hints h = {0, 0, T, B, 0};
    run_session s;
    tftx_error err = {0};
    services_set_context("host", p.runs[0].id, p.runs[0].seed);
    int rc = 0;
    if (session_open(&s, cfg, &reg, &h, &err) != TFTX_OK) {
        fprintf(stderr, "tftx: %s: %s\n", file, err.message);
        rc = 1;
        goto out;
    }
    int lm = s.model->task(s.model_self) == TFTX_TASK_LM;
    int k = s.model->n_outputs(s.model_self);
    const tftx_value *vv = tftx_param(s.model_pl->desc, s.model_vals, "vocab_size");
    int V = vv ? (int)vv->i : k;
    int32_t *tokens = xmalloc((size_t)B * T * sizeof *tokens), *labels = xmalloc((size_t)B * T * sizeof *labels);
    uint8_t *mask = xmalloc((size_t)B * T);
    tftx_rng rng = tftx_host_services.rng_stream(7);
    for (size_t i = 0; i < (size_t)B * T; i++) {
        tokens[i] = (int32_t)(tftx_host_services.rng_u64(&rng) % (uint64_t)V);
        mask[i] = 1;
    }
    for (size_t i = 0; i < (size_t)B * T; i++)
        labels[i] = lm ? ((i + 1) % (size_t)T ? tokens[i + 1] : -100)
                       : (int32_t)(tftx_host_services.rng_u64(&rng) % (uint64_t)k);
    tftx_batch batch = {.B = B, .T = T, .tokens = tokens, .mask = mask, .labels = labels};
    double *ms = xmalloc((size_t)steps * sizeof *ms), loss_first = 0, loss_last = 0;
    for (long i = 0; i < warmup + steps && rc == 0; i++) {
        double t0 = now_seconds();
        float loss;
        session_start_step(&s);
        batch.step = (uint64_t)i;
        if (session_train_pass(&s, &batch, 1, &loss, &err) != TFTX_OK ||
            session_optimizer_step(&s, s.lr, &err) != TFTX_OK) {
            fprintf(stderr, "tftx: step %ld: %s\n", i + 1, err.message);
            rc = 1;
            break;
        }
        s.backend.ops->sync(s.backend.self);
        if (i == 0) loss_first = loss;
        loss_last = loss;
        if (i >= warmup) ms[i - warmup] = 1e3 * (now_seconds() - t0);
    }
    if (rc == 0) {
        double mean = 0;
        for (long i = 0; i < steps; i++) mean += ms[i] / (double)steps;
        qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
        double median = ms[steps / 2];
        double tokens_per_step = (double)B * T;
        double gflop = 3.0 * flops_per_token(&s, T, lm) * tokens_per_step / 1e9;
        /* where it ran: the thread count, and the precision of a backend that has one */
        char where[96];
        const tftx_value *prec = tftx_param(s.backend_pl->desc, s.backend_vals, "precision");
        const tftx_value *graphs = tftx_param(s.backend_pl->desc, s.backend_vals, "graphs");
        int nt = s.backend.ops->threads(s.backend.self);
        if (prec && prec->s)
            snprintf(where, sizeof where, "precision %s%s", prec->s,
                     !graphs ? "" : graphs->i ? ", step graphs" : ", no step graphs");
        else
            snprintf(where, sizeof where, "%d thread%s", nt, nt == 1 ? "" : "s");
        printf("%s: %s %s on %s (%s), %zu parameters, batch %d x %d tokens\n", file, s.model_pl->desc->name,
               lm ? "LM" : "classifier", s.backend.name, where, s.n_weights, B, T);
        printf("  %ld steps after %ld warm-up: median %.2f ms/step (mean %.2f, min %.2f, max %.2f)\n", steps, warmup,
               median, mean, ms[0], ms[steps - 1]);
        printf("  %.0f tokens/s, %.1f GFLOP/s (%.2f GFLOP/step); loss %.4f -> %.4f\n", tokens_per_step / (median / 1e3),
               gflop / (median / 1e3), gflop, loss_first, loss_last);
    }
    free(ms);
    free(tokens);
    free(labels);
    free(mask);
    session_close(&s);
out:
    plan_free(&p);
    registry_free(&reg);
    errlist_free(&errs);
    free(sets);
    return rc;
}
