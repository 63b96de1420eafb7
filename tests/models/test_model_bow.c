/*
 * test_model_bow.c -- the bow (bag-of-words) model plugin on the cpu backend.
 *
 *   training: plain SGD written here (w -= lr * g over the arena) on a
 *     small synthetic task (the label is the class whose keywords a
 *     sequence holds) takes the loss below a fifth of its start and fits
 *     the batch.
 *   gradients: with dropout 0.3 in training mode, at a fixed step, the
 *     gradient agrees with central differences of the loss at the largest
 *     entry of every tensor and at a few others; embedding rows of tokens
 *     that occur only under the padding mask get exactly zero.
 *   checkpoints: save, create from the directory, load: the same arena
 *     and the same logits; missing or mis-shaped tensors are errors naming
 *     them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modeltest.h"

enum { V = 40, B = 12, T = 8, L = 3 };

/* Sequence b: label b % 3, 2-6 real tokens of which half or more are
 * keywords of its class (ids 10*label .. 10*label+9); ids 30..39 are
 * neutral; the rest is padding (id 39 under mask 0). */
static void make_batch(int32_t *tokens, uint8_t *mask, int32_t *labels)
{
    uint32_t s = 12345;
    for (int b = 0; b < B; b++) {
        labels[b] = b % L;
        int n = 2 + b % 5;
        for (int t = 0; t < T; t++) {
            s = s * 1664525u + 1013904223u;
            int kw = (int)(s >> 16) % 10;
            mask[b * T + t] = t < n;
            if (t >= n)
                tokens[b * T + t] = 39;
            else if (t % 2 == 0)
                tokens[b * T + t] = 10 * labels[b] + kw;
            else
                tokens[b * T + t] = 30 + kw % 9; /* 30..38: 39 only pads */
        }
    }
}

static void test_bow_trains(void **state)
{
    (void)state;
    static const char *const params[] = {"vocab_size=40", "d_model=16",   "hidden=32", "num_labels=3",
                                         "dropout=0.1",   "init_std=0.1", NULL};
    mt_model m;
    mt_make(&m, "bow", params, B, T);
    assert_int_equal(m.ops->task(m.self), TFTX_TASK_CLASSIFY);
    assert_int_equal(m.ops->n_outputs(m.self), L);
    int32_t tokens[B * T], labels[B];
    uint8_t mask[B * T];
    make_batch(tokens, mask, labels);
    tftx_batch batch = {.B = B, .T = T, .tokens = tokens, .mask = mask, .labels = labels};
    tftx_error err = {0};
    size_t n = m.ops->n_params(m.self);
    float first = 0, loss = 0;
    for (int step = 0; step < 100; step++) {
        batch.step = (uint64_t)step;
        mt_zero_grads(&m);
        assert_int_equal(m.ops->forward(m.self, &batch, 1, &loss, &err), TFTX_OK);
        assert_int_equal(m.ops->backward(m.self, &err), TFTX_OK);
        if (step == 0) first = loss;
        float *w = mt_params(&m), *g = mt_grads(&m);
        for (size_t i = 0; i < n; i++) w[i] -= 0.5f * g[i];
        mt_set_params(&m, w);
        free(w), free(g);
    }
    printf("bow: loss %.4f -> %.4f after 100 SGD steps\n", first, loss);
    assert_true(loss < 0.2f * first);
    float logits[B * L];
    assert_int_equal(m.ops->evaluate(m.self, &batch, logits, &err), TFTX_OK);
    for (int b = 0; b < B; b++) {
        int best = 0;
        for (int k = 1; k < L; k++)
            if (logits[b * L + k] > logits[b * L + best]) best = k;
        assert_int_equal(best, labels[b]);
    }
    mt_free(&m);
}

static void test_bow_gradients(void **state)
{
    (void)state;
    static const char *const params[] = {"vocab_size=40", "d_model=8",   "hidden=12",
                                         "num_labels=3",  "dropout=0.3", "activation=gelu_tanh",
                                         "init_std=0.5",  NULL};
    mt_model m;
    mt_make(&m, "bow", params, B, T);
    int32_t tokens[B * T], labels[B];
    uint8_t mask[B * T];
    make_batch(tokens, mask, labels);
    tftx_batch batch = {.B = B, .T = T, .tokens = tokens, .mask = mask, .labels = labels, .step = 3};
    tftx_error err = {0};
    mt_zero_grads(&m);
    float loss;
    assert_int_equal(m.ops->forward(m.self, &batch, 1, &loss, &err), TFTX_OK);
    assert_int_equal(m.ops->backward(m.self, &err), TFTX_OK);
    float *g = mt_grads(&m), *w = mt_params(&m);

    /* written (the host's first pass of a step): over NaN, the same bits */
    assert_non_null(m.ops->writes_grads);
    assert_int_equal(m.ops->writes_grads(m.self), 1);
    const size_t n = m.ops->n_params(m.self);
    float *nan_g = malloc(n * sizeof *nan_g);
    for (size_t i = 0; i < n; i++) nan_g[i] = NAN;
    mt_backend()->ops->copy_in(mt_backend()->self, m.ops->grads(m.self), nan_g, n * sizeof *nan_g);
    tftx_batch first = batch;
    first.write_grads = 1;
    float loss_w;
    assert_int_equal(m.ops->forward(m.self, &first, 1, &loss_w, &err), TFTX_OK);
    assert_int_equal(m.ops->backward(m.self, &err), TFTX_OK);
    float *gw = mt_grads(&m);
    assert_true(loss_w == loss);
    assert_memory_equal(gw, g, n * sizeof *g);
    free(gw), free(nan_g);

    /* token 39 only pads: its embedding row gets nothing */
    const tftx_tensor_info *emb = mt_tensor(&m, "embeddings.weight");
    assert_non_null(emb);
    for (int c = 0; c < 8; c++) assert_true(g[emb->offset + 39 * 8 + c] == 0.0f);

    const float h = 1e-2f;
    size_t checked = 0;
    for (size_t i = 0; i < m.ops->n_tensors(m.self); i++) {
        const tftx_tensor_info *t = m.ops->tensor(m.self, i);
        size_t at[3] = {t->offset, t->offset + t->numel / 2, t->offset + t->numel - 1};
        for (size_t k = t->offset; k < t->offset + t->numel; k++)
            if (fabsf(g[k]) > fabsf(g[at[0]])) at[0] = k;
        for (int j = 0; j < 3; j++) {
            size_t p = at[j];
            float keep = w[p], lp, lm;
            w[p] = keep + h;
            mt_set_params(&m, w);
            assert_int_equal(m.ops->forward(m.self, &batch, 1, &lp, &err), TFTX_OK);
            w[p] = keep - h;
            mt_set_params(&m, w);
            assert_int_equal(m.ops->forward(m.self, &batch, 1, &lm, &err), TFTX_OK);
            w[p] = keep;
            mt_set_params(&m, w);
            double fd = ((double)lp - (double)lm) / (2.0 * h);
            if (!(fabs(fd - g[p]) <= 0.02 * fabs(g[p]) + 2e-4)) {
                fprintf(stderr, "%s[%zu]: gradient %.6g, central difference %.6g\n", t->name, p - t->offset, g[p], fd);
                fail();
            }
            checked++;
        }
    }
    printf("bow: %zu gradient entries agree with central differences\n", checked);
    free(g), free(w);
    mt_free(&m);
}

static void test_bow_checkpoint(void **state)
{
    (void)state;
    static const char *const params[] = {"vocab_size=40",   "d_model=8",    "hidden=12", "num_labels=3",
                                         "activation=gelu", "init_std=0.5", NULL};
    mt_model m, m2;
    mt_make(&m, "bow", params, B, T);
    char *dir = xasprintf("%s/bow_saved", test_tmpdir());
    tftx_error err = {0};
    assert_int_equal(m.ops->save(m.self, dir, &err), TFTX_OK);
    char *pre = xasprintf("pretrained=%s", dir);
    const char *p2[] = {pre, NULL};
    mt_make(&m2, "bow", p2, B, T); /* sizes from config.json */
    assert_int_equal(m2.ops->n_params(m2.self), m.ops->n_params(m.self));
    assert_int_equal(m2.ops->load(m2.self, dir, &err), TFTX_OK);
    float *a = mt_params(&m), *b = mt_params(&m2);
    assert_memory_equal(a, b, m.ops->n_params(m.self) * sizeof *a);
    int32_t tokens[B * T], labels[B];
    uint8_t mask[B * T];
    make_batch(tokens, mask, labels);
    tftx_batch batch = {.B = B, .T = T, .tokens = tokens, .mask = NULL, .labels = labels};
    float l1[B * L], l2[B * L];
    assert_int_equal(m.ops->evaluate(m.self, &batch, l1, &err), TFTX_OK);
    assert_int_equal(m2.ops->evaluate(m2.self, &batch, l2, &err), TFTX_OK);
    assert_memory_equal(l1, l2, sizeof l1);
    mt_free(&m2);

    /* a model of another size: the error names the tensor and both shapes */
    static const char *const wide[] = {"vocab_size=40", "d_model=8", "hidden=16", "num_labels=3", NULL};
    mt_make(&m2, "bow", wide, B, T);
    assert_int_not_equal(m2.ops->load(m2.self, dir, &err), TFTX_OK);
    if (!strstr(err.message, "hidden.weight") || !strstr(err.message, "[12, 8]") || !strstr(err.message, "[16, 8]"))
        fprintf(stderr, "unexpected message: %s\n", err.message);
    assert_non_null(strstr(err.message, "hidden.weight"));
    assert_non_null(strstr(err.message, "[12, 8]"));
    assert_non_null(strstr(err.message, "[16, 8]"));
    mt_free(&m2);

    /* a missing tensor */
    char *st_path = xasprintf("%s/model.safetensors", dir);
    st_file f;
    char msg[1024];
    assert_int_equal(st_open(&f, st_path, msg, sizeof msg), 0);
    st_entry e[8];
    size_t n = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (strcmp(f.tensors[i].name, "classifier.bias") == 0) continue;
        e[n] =
            (st_entry){.name = f.tensors[i].name, .dtype = "F32", .ndim = f.tensors[i].ndim, .data = f.tensors[i].data};
        memcpy(e[n].shape, f.tensors[i].shape, sizeof e[n].shape);
        n++;
    }
    char *dir2 = xasprintf("%s/bow_broken", test_tmpdir());
    mt_copy_config(dir, dir2);
    char *st2 = xasprintf("%s/model.safetensors", dir2);
    assert_int_equal(st_write(st2, e, n, msg, sizeof msg), 0);
    st_close(&f);
    assert_int_not_equal(m.ops->load(m.self, dir2, &err), TFTX_OK);
    assert_non_null(strstr(err.message, "classifier.bias"));
    free(st2), free(dir2), free(st_path), free(a), free(b), free(pre), free(dir);
    mt_free(&m);
}

int main(void)
{
    mt_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bow_trains),
        cmocka_unit_test(test_bow_gradients),
        cmocka_unit_test(test_bow_checkpoint),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mt_done();
    return rc;
}
