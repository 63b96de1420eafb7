/*
 * test_models.c -- the transformer model plugin on the cpu backend against
 * PyTorch.
 *
 * The references come from tests/reference/models.py: tiny BERT and GPT-2
 * models written in plain torch after Transformers' math, computed in
 * float64 from float32 weights (fixtures encoder_tiny/, decoder_tiny/ and
 * model_{encoder,decoder}_tiny.safetensors). The plugin is created with
 * `pretrained` = the fixture checkpoint (so its sizes come from config.json)
 * and loaded from it, then:
 *
 *   encoder: evaluate's logits and forward's loss within 1e-5, every
 *            parameter gradient within 1e-4 (norm: modeltest.h)
 *   decoder: evaluate's per-token losses, the log-probabilities of every
 *            vocabulary entry at every position (evaluate once per target
 *            id v: the loss is -log p(v)) and forward's loss within 1e-5,
 *            every gradient within 1e-4; the tied head's padding rows
 *            (V = 97 taken as 128) stay 0 with no gradient
 *   causality: changing token t' changes no loss before t'
 *   padding: changing padded tokens changes no logit
 *   dropout: with dropout and attention dropout 0.2 in training mode, the
 *            gradient agrees with central differences of the loss at the
 *            same step (the masks are regenerated, not stored), the loss is
 *            the same for the same step and differs for another
 *   train_pass: the loss and gradients of forward + backward, bit for bit,
 *            through step graphs where the backend records them; and
 *            evaluate through graphs as without
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modeltest.h"

#define OUT_TOL 1e-5  /* logits, log-probabilities, losses */
#define GRAD_TOL 1e-4 /* gradients */
#define MAX_B 4       /* the batch size the models are bound to */
#define MAX_T 16

typedef struct ref_batch {
    st_file f;
    int B, T;
    int32_t *tokens, *segments, *labels;
    uint8_t *mask;
    tftx_batch batch;
} ref_batch;

static void ref_open(ref_batch *r, const char *file, int enc)
{
    char *path = mt_fixture(file);
    char msg[1024];
    if (st_open(&r->f, path, msg, sizeof msg) != 0) fprintf(stderr, "%s\n", msg);
    free(path);
    const st_tensor *tok = st_find(&r->f, "tokens");
    assert_non_null(tok);
    r->B = (int)tok->shape[0], r->T = (int)tok->shape[1];
    size_t N = (size_t)r->B * (size_t)r->T;
    r->tokens = mt_ref(&r->f, "tokens", "I32", N);
    r->segments = enc ? mt_ref(&r->f, "segments", "I32", N) : NULL;
    r->mask = enc ? mt_ref(&r->f, "mask", "U8", N) : NULL;
    r->labels = enc ? mt_ref(&r->f, "labels", "I32", (size_t)r->B) : mt_ref(&r->f, "targets", "I32", N);
    r->batch = (tftx_batch){.B = r->B,
                            .T = r->T,
                            .tokens = r->tokens,
                            .segments = r->segments,
                            .mask = r->mask,
                            .labels = r->labels,
                            .step = 0};
}

static void ref_close(ref_batch *r)
{
    free(r->tokens), free(r->segments), free(r->labels), free(r->mask);
    st_close(&r->f);
}

/* The tiny model of a fixture, created from its config.json and loaded;
 * extra: more "key=value" parameters or NULL. */
static void make_tiny(mt_model *m, const char *dir_name, const char *arch, const char *const *extra)
{
    char *dir = mt_fixture(dir_name);
    char *pre = xasprintf("pretrained=%s", dir);
    char *a = xasprintf("arch=%s", arch);
    const char *params[8] = {a, pre};
    for (int i = 0; extra && extra[i]; i++) params[2 + i] = extra[i];
    mt_make(m, "transformer", params, MAX_B, MAX_T);
    tftx_error err = {0};
    tftx_status st = m->ops->load(m->self, dir, &err);
    if (st != TFTX_OK) fprintf(stderr, "load %s: %s\n", dir, err.message);
    assert_int_equal(st, TFTX_OK);
    free(a), free(pre), free(dir);
}

/* forward + backward from zeroed gradients; returns the loss */
static float loss_and_grads(mt_model *m, const tftx_batch *b)
{
    tftx_error err = {0};
    float loss = NAN;
    mt_zero_grads(m);
    assert_int_equal(m->ops->forward(m->self, b, 1, &loss, &err), TFTX_OK);
    assert_int_equal(m->ops->backward(m->self, &err), TFTX_OK);
    return loss;
}

/* Every gradient against grad.<name> of the fixture; prints the worst. */
static void expect_grads(mt_model *m, const st_file *f, const char *label)
{
    float *g = mt_grads(m);
    size_t n = m->ops->n_tensors(m->self), n_ref = 0;
    for (size_t i = 0; i < f->n; i++) n_ref += strncmp(f->tensors[i].name, "grad.", 5) == 0;
    assert_int_equal(n, n_ref); /* every parameter of the reference model, no more */
    double worst = 0;
    const char *worst_name = "";
    size_t floored = 0;
    for (size_t i = 0; i < n; i++) {
        const tftx_tensor_info *t = m->ops->tensor(m->self, i);
        char *key = xasprintf("grad.%s", t->name);
        float *want = mt_ref(f, key, "F32", t->numel);
        double abs_err, rel = mt_rel_err(g + t->offset, want, t->numel, &abs_err);
        if (abs_err <= MT_ABS_FLOOR && rel > GRAD_TOL)
            floored++; /* e.g. key biases: zero in exact math */
        else if (rel > worst)
            worst = rel, worst_name = t->name;
        mt_expect_close(key, g + t->offset, want, t->numel, GRAD_TOL);
        free(want);
        free(key);
    }
    printf("%s: %zu gradients, worst relative error %.2g (%s); %zu more within the absolute floor\n", label, n, worst,
           worst_name, floored);
    free(g);
}

/* ------------------------------------------------------------ encoder */

static void test_encoder_matches_torch(void **state)
{
    (void)state;
    mt_model m;
    make_tiny(&m, "encoder_tiny", "encoder", NULL);
    assert_int_equal(m.ops->task(m.self), TFTX_TASK_CLASSIFY);
    assert_int_equal(m.ops->n_outputs(m.self), 3); /* from config.json's id2label */
    assert_non_null(mt_tensor(&m, "bert.encoder.layer.1.attention.self.value.weight"));
    ref_batch r;
    ref_open(&r, "model_encoder_tiny.safetensors", 1);
    tftx_error err = {0};

    float logits[3 * 3];
    assert_int_equal(m.ops->evaluate(m.self, &r.batch, logits, &err), TFTX_OK);
    float *want = mt_ref(&r.f, "logits", "F32", 9);
    mt_expect_close("encoder logits", logits, want, 9, OUT_TOL);
    printf("encoder: logits relative error %.2g\n", mt_rel_err(logits, want, 9, NULL));
    free(want);

    float loss = loss_and_grads(&m, &r.batch);
    float *want_loss = mt_ref(&r.f, "loss", "F32", 1);
    mt_expect_close("encoder loss", &loss, want_loss, 1, OUT_TOL);
    printf("encoder: loss %.7f (torch %.7f)\n", loss, *want_loss);
    free(want_loss);
    expect_grads(&m, &r.f, "encoder");

    /* backward accumulates: a second pass without zeroing doubles */
    float *g1 = mt_grads(&m);
    assert_int_equal(m.ops->forward(m.self, &r.batch, 1, &loss, &err), TFTX_OK);
    assert_int_equal(m.ops->backward(m.self, &err), TFTX_OK);
    float *g2 = mt_grads(&m);
    size_t n = m.ops->n_params(m.self);
    for (size_t i = 0; i < n; i++) g1[i] *= 2;
    mt_expect_close("accumulated gradients", g2, g1, n, 1e-6);
    free(g1), free(g2);

    ref_close(&r);
    mt_free(&m);
}

static void test_encoder_padding_is_ignored(void **state)
{
    (void)state;
    mt_model m;
    make_tiny(&m, "encoder_tiny", "encoder", NULL);
    ref_batch r;
    ref_open(&r, "model_encoder_tiny.safetensors", 1);
    tftx_error err = {0};
    float before[9], after[9];
    assert_int_equal(m.ops->evaluate(m.self, &r.batch, before, &err), TFTX_OK);
    size_t N = (size_t)r.B * (size_t)r.T, changed = 0;
    for (size_t i = 0; i < N; i++)
        if (!r.mask[i]) r.tokens[i] = (int32_t)(7 + i % 50), r.segments[i] = 1, changed++;
    assert_true(changed > 0);
    assert_int_equal(m.ops->evaluate(m.self, &r.batch, after, &err), TFTX_OK);
    assert_memory_equal(before, after, sizeof before);
    ref_close(&r);
    mt_free(&m);
}

/* The encoder's last block is the [CLS] tail (block.c), each row's
 * dropout masks drawn at its place in the whole tensor in one call
 * (tftx_dropout.row); a model made with TFTX_CLS_TAIL=0 takes the full
 * path: the loss and the gradients must be the same. */
static void test_cls_tail_equals_full_block(void **state)
{
    (void)state;
    static const char *const extra[] = {"dropout=0.2", "attn_dropout=0.2", NULL};
    mt_model tail, full;
    make_tiny(&tail, "encoder_tiny", "encoder", extra);
    setenv("TFTX_CLS_TAIL", "0", 1);
    make_tiny(&full, "encoder_tiny", "encoder", extra);
    unsetenv("TFTX_CLS_TAIL");
    ref_batch r;
    ref_open(&r, "model_encoder_tiny.safetensors", 1);
    tftx_batch b = r.batch;
    b.step = 5;
    float lt = loss_and_grads(&tail, &b), lf = loss_and_grads(&full, &b);
    mt_expect_close("loss, full last block against the tail", &lf, &lt, 1, 1e-6);
    float *gt = mt_grads(&tail), *gf = mt_grads(&full);
    mt_expect_close("gradients, full last block against the tail", gf, gt, tail.ops->n_params(tail.self), 1e-5);
    free(gt), free(gf);
    ref_close(&r);
    mt_free(&tail);
    mt_free(&full);
}

/* ------------------------------------------------------- training passes
 *
 * train_pass must give the bits of forward + backward, pass after pass:
 * on a backend with step graphs the first pass of a shape runs kernel by
 * kernel, the second is recorded and launched, later ones are launched,
 * and a graph whose working memory moved (a larger shape grew it) is
 * recorded again. A wrapper counts the graph calls. With `refuse`, every
 * recording fails as a real one can (graph_end returns NULL, nothing ran):
 * the model runs the pass kernel by kernel and records no more. */
static const tftx_backend_ops *real_ops;
static int n_begin, n_launch, n_stale, total_stale, refuse;

static tftx_status count_begin(void *self, tftx_error *err)
{
    n_begin++;
    return real_ops->graph_begin(self, err);
}

static void *count_end(void *self, tftx_error *err)
{
    void *g = real_ops->graph_end(self, err);
    if (g && refuse) {
        real_ops->graph_free(self, g);
        snprintf(err->message, sizeof err->message, "recording refused by the test");
        return NULL;
    }
    return g;
}

static tftx_status count_launch(void *self, void *graph, tftx_error *err)
{
    tftx_status st = real_ops->graph_launch(self, graph, err);
    if (st == TFTX_OK)
        n_launch++;
    else
        n_stale++;
    return st;
}

/* The backend's table with the graph calls counted (real_ops: its own). */
static tftx_backend_ops counting_table(void)
{
    real_ops = mt_backend()->ops;
    tftx_backend_ops counted = *real_ops;
    if (real_ops->graph_begin) {
        counted.graph_begin = count_begin;
        counted.graph_end = count_end;
        counted.graph_launch = count_launch;
    }
    return counted;
}

/* A B x T batch of the fixture's sequences and tokens, repeated where it
 * has fewer, from sequence and token `shift` on; the decoder's targets are
 * the next tokens. */
static tftx_batch tile_batch(const ref_batch *r, int B, int T, int shift, int enc, int32_t *tok, int32_t *seg,
                             uint8_t *mask, int32_t *lab)
{
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t, j = (size_t)((b + shift) % r->B) * r->T + (t + shift) % r->T;
            tok[i] = r->tokens[j];
            if (enc) seg[i] = r->segments[j], mask[i] = r->mask[j] || t >= r->T;
        }
        if (enc)
            lab[b] = r->labels[(b + shift) % r->B];
        else
            for (int t = 0; t < T; t++) lab[(size_t)b * T + t] = t + 1 < T ? tok[(size_t)b * T + t + 1] : -100;
    }
    return (tftx_batch){
        .B = B, .T = T, .tokens = tok, .segments = enc ? seg : NULL, .mask = enc ? mask : NULL, .labels = lab};
}

/* The tensors whose gradients differ between two passes (a failure's
 * report: which layer a difference starts in). */
static void print_grad_diff(const mt_model *m, const float *a, const float *b, const char *what)
{
    size_t nt = m->ops->n_tensors(m->self), shown = 0;
    for (size_t i = 0; i < nt; i++) {
        const tftx_tensor_info *t = m->ops->tensor(m->self, i);
        size_t bad = 0;
        double worst = 0;
        for (size_t j = t->offset; j < t->offset + t->numel; j++) {
            if (memcmp(&a[j], &b[j], sizeof *a) == 0) continue;
            bad++;
            double d = fabs((double)a[j] - b[j]) / (fabs((double)a[j]) + 1e-30);
            if (!(d <= worst)) worst = d;
        }
        if (bad && shown++ < 12)
            printf("  %s: %s: %zu of %zu differ, worst relative %.3g\n", what, t->name, bad, t->numel, worst);
    }
    if (!shown) printf("  %s: no gradient differs\n", what);
}

static void check_train_passes(const char *dir, const char *arch, const char *file, int enc)
{
    static const char *const extra[] = {"dropout=0.2", "attn_dropout=0.2", NULL};
    const int graphs = real_ops->graph_begin != NULL;
    mt_model m;
    make_tiny(&m, dir, arch, extra);
    ref_batch r;
    ref_open(&r, file, enc);
    size_t N = (size_t)MAX_B * MAX_T, n = m.ops->n_params(m.self);
    int32_t *tok = malloc(N * sizeof *tok), *seg = malloc(N * sizeof *seg), *lab = malloc(N * sizeof *lab);
    uint8_t *mask = malloc(N);
    /* the small shape (one sequence, half its tokens) twice (run, then
       recorded), again, the bound shape twice (larger than any batch of
       the other tests, its first pass grows the backend's working
       memory), the small one (stale: recorded again), the bound one; each
       pass a new step */
    const int full[] = {0, 0, 0, 1, 1, 0, 1}, passes = 7;
    n_begin = n_launch = n_stale = 0;
    for (int k = 0; k < passes; k++) {
        tftx_batch b = full[k] ? tile_batch(&r, MAX_B, MAX_T, 0, enc, tok, seg, mask, lab)
                               : tile_batch(&r, 1, r.T / 2, 0, enc, tok, seg, mask, lab);
        b.step = (uint64_t)(k + 1);
        float le = loss_and_grads(&m, &b);
        float *ge = mt_grads(&m);
        mt_zero_grads(&m);
        tftx_error err = {0};
        float lg = NAN;
        assert_int_equal(m.ops->train_pass(m.self, &b, &lg, &err), TFTX_OK);
        float *gg = mt_grads(&m);
        if (lg != le || memcmp(ge, gg, n * sizeof *ge) != 0) {
            printf("%s train_pass %d (%d x %d): loss %.9g against %.9g, gradients %s\n", arch, k, b.B, b.T, lg, le,
                   memcmp(ge, gg, n * sizeof *ge) ? "differ" : "agree");
            print_grad_diff(&m, ge, gg, "train_pass against forward + backward");
            /* each way again: is either not the same twice? */
            loss_and_grads(&m, &b);
            float *ge2 = mt_grads(&m);
            print_grad_diff(&m, ge, ge2, "forward + backward twice");
            mt_zero_grads(&m);
            assert_int_equal(m.ops->train_pass(m.self, &b, &lg, &err), TFTX_OK);
            float *gg2 = mt_grads(&m);
            print_grad_diff(&m, gg, gg2, "train_pass twice");
            free(ge2), free(gg2);
        }
        assert_true(lg == le);
        assert_memory_equal(ge, gg, n * sizeof *ge);
        free(ge), free(gg);
    }
    printf("%s: %d training passes equal forward + backward bit for bit; graphs recorded %d, launched %d, stale %d\n",
           arch, passes, n_begin, n_launch, n_stale);
    if (graphs && !refuse) {
        assert_int_equal(n_launch, passes - 2); /* all but the first pass of each shape */
        assert_int_equal(n_begin, 2 + n_stale);
        total_stale += n_stale;
    } else if (graphs) {
        assert_int_equal(n_begin, 1); /* refused once: no more tries */
        assert_int_equal(n_launch, 0);
    }
    free(tok), free(seg), free(lab), free(mask);
    ref_close(&r);
    mt_free(&m);
}

/* The gradient arena with NaN in every tensor, 0 in the padding. */
static void nan_grads(mt_model *m)
{
    size_t n = m->ops->n_params(m->self), nt = m->ops->n_tensors(m->self);
    float *h = calloc(n, sizeof *h);
    for (size_t i = 0; i < nt; i++) {
        const tftx_tensor_info *t = m->ops->tensor(m->self, i);
        for (size_t j = 0; j < t->numel; j++) h[t->offset + j] = NAN;
    }
    mt_backend()->ops->copy_in(mt_backend()->self, m->ops->grads(m->self), h, n * sizeof *h);
    free(h);
}

/* Written gradients (tftx_batch.write_grads, the host's first pass of a
 * step): a pass over gradients holding NaN gives the bits of one added to
 * zeroed gradients, by forward + backward and by train_pass (run as it
 * is, recorded, launched), dropout on; the padding stays 0. */
static void check_written_grads(const char *dir, const char *arch, const char *file, int enc)
{
    static const char *const extra[] = {"dropout=0.2", "attn_dropout=0.2", NULL};
    mt_model m;
    make_tiny(&m, dir, arch, extra);
    assert_non_null(m.ops->writes_grads);
    assert_int_equal(m.ops->writes_grads(m.self), 1);
    ref_batch r;
    ref_open(&r, file, enc);
    const size_t n = m.ops->n_params(m.self);
    tftx_batch b = r.batch;
    b.step = 5;
    const float le = loss_and_grads(&m, &b);
    float *ge = mt_grads(&m);
    b.write_grads = 1;
    for (int k = 0; k < 4; k++) {
        tftx_error err = {0};
        float l = NAN;
        nan_grads(&m);
        if (k == 0) {
            assert_int_equal(m.ops->forward(m.self, &b, 1, &l, &err), TFTX_OK);
            assert_int_equal(m.ops->backward(m.self, &err), TFTX_OK);
        } else {
            assert_int_equal(m.ops->train_pass(m.self, &b, &l, &err), TFTX_OK);
        }
        float *g = mt_grads(&m);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += memcmp(&g[i], &ge[i], sizeof *g) != 0;
        if (bad) printf("%s written pass %d: %zu of %zu gradients differ from added ones\n", arch, k, bad, n);
        assert_true(l == le);
        assert_int_equal(bad, 0);
        free(g);
    }
    printf("%s: written gradients equal added ones bit for bit (forward + backward, 3 train passes)\n", arch);
    free(ge);
    ref_close(&r);
    mt_free(&m);
}

static void test_written_gradients_equal_added(void **state)
{
    (void)state;
    check_written_grads("encoder_tiny", "encoder", "model_encoder_tiny.safetensors", 1);
    check_written_grads("decoder_tiny", "decoder", "model_decoder_tiny.safetensors", 0);
}

static void test_train_pass_equals_forward_backward(void **state)
{
    (void)state;
    tftx_backend_ops counted = counting_table();
    if (!real_ops->graph_begin)
        printf("backend '%s' records no step graphs: train_pass runs kernel by kernel\n", mt_backend()->name);
    mt_set_backend_ops(&counted);
    total_stale = 0;
    for (refuse = 0; refuse < (real_ops->graph_begin ? 2 : 1); refuse++) {
        check_train_passes("encoder_tiny", "encoder", "model_encoder_tiny.safetensors", 1);
        check_train_passes("decoder_tiny", "decoder", "model_decoder_tiny.safetensors", 0);
    }
    /* the cuda backend keeps attention's pointer arrays (B*NH of each
       operand) in its working memory: the first bound-size batch grows it */
    if (!strcmp(mt_backend()->name, "cuda")) assert_true(total_stale >= 1);
    refuse = 0;
    mt_set_backend_ops(NULL);
}

/* evaluate() through graphs: the same outputs as a model bound without
 * them, batch after batch of new contents and two shapes. */
static void check_evaluations(const char *dir, const char *arch, const char *file, int enc)
{
    tftx_backend_ops plain = *real_ops;
    plain.graph_begin = NULL, plain.graph_end = NULL, plain.graph_launch = NULL, plain.graph_free = NULL;
    mt_model m, ref;
    make_tiny(&m, dir, arch, NULL); /* with the counting table */
    mt_set_backend_ops(&plain);
    make_tiny(&ref, dir, arch, NULL);
    ref_batch r;
    ref_open(&r, file, enc);
    size_t N = (size_t)MAX_B * MAX_T, out_n = enc ? (size_t)MAX_B * m.ops->n_outputs(m.self) : N;
    int32_t *tok = malloc(N * sizeof *tok), *seg = malloc(N * sizeof *seg), *lab = malloc(N * sizeof *lab);
    uint8_t *mask = malloc(N);
    float *out = malloc(out_n * sizeof *out), *want = malloc(out_n * sizeof *want);
    const int passes = 6;
    n_begin = n_launch = n_stale = 0;
    for (int k = 0; k < passes; k++) {
        tftx_batch b =
            tile_batch(&r, k % 3 == 2 ? 1 : MAX_B, k % 3 == 2 ? r.T / 2 : MAX_T, k, enc, tok, seg, mask, lab);
        size_t n = enc ? (size_t)b.B * m.ops->n_outputs(m.self) : (size_t)b.B * b.T;
        tftx_error err = {0};
        assert_int_equal(m.ops->evaluate(m.self, &b, out, &err), TFTX_OK);
        assert_int_equal(ref.ops->evaluate(ref.self, &b, want, &err), TFTX_OK);
        assert_memory_equal(out, want, n * sizeof *out);
    }
    printf("%s: %d evaluations equal those without graphs bit for bit; graphs recorded %d, launched %d\n", arch, passes,
           n_begin, n_launch);
    /* 4 x 16: pass 0 runs, 1 is recorded, 3 and 4 launch; 1 x T/2: 2 runs, 5 is recorded */
    if (real_ops->graph_begin) {
        assert_int_equal(n_launch, 4);
        assert_int_equal(n_begin, 2);
    }
    free(tok), free(seg), free(lab), free(mask), free(out), free(want);
    ref_close(&r);
    mt_free(&m);
    mt_free(&ref);
}

static void test_evaluate_through_graphs(void **state)
{
    (void)state;
    tftx_backend_ops counted = counting_table();
    for (int enc = 1; enc >= 0; enc--) {
        mt_set_backend_ops(&counted);
        if (enc)
            check_evaluations("encoder_tiny", "encoder", "model_encoder_tiny.safetensors", 1);
        else
            check_evaluations("decoder_tiny", "decoder", "model_decoder_tiny.safetensors", 0);
    }
    mt_set_backend_ops(NULL);
}

/* A backend's attention_sizes decides the attention buffers the model
 * allocates: `att` once per layer, `scratch` once. Through a wrapper that
 * asks for EXTRA_ATT and EXTRA_SCRATCH floats more than the probabilities
 * (multiples of the arena's 64-byte alignment), the activation arena grows
 * by exactly layers * EXTRA_ATT + EXTRA_SCRATCH floats, and the model
 * computes the same loss. */
#define EXTRA_ATT 4096
#define EXTRA_SCRATCH 1024
static size_t biggest_alloc;
static const tftx_backend_ops *inner;

static void *counting_alloc(void *self, size_t bytes)
{
    if (bytes > biggest_alloc) biggest_alloc = bytes;
    return inner->alloc(self, bytes);
}

static void more_attention(void *self, int B, int T, int C, int NH, size_t *att, size_t *scratch)
{
    (void)self, (void)C;
    *att = (size_t)B * NH * T * T + EXTRA_ATT;
    *scratch = (size_t)B * NH * T * T + EXTRA_SCRATCH;
}

static void test_attention_sizes_come_from_the_backend(void **state)
{
    (void)state;
    inner = mt_backend()->ops;
    tftx_backend_ops counting = *inner, sized = *inner;
    counting.alloc = sized.alloc = counting_alloc;
    sized.attention_sizes = more_attention;
    ref_batch r;
    ref_open(&r, "model_decoder_tiny.safetensors", 0);
    size_t arena[2];
    float loss[2];
    for (int k = 0; k < 2; k++) {
        mt_set_backend_ops(k ? &sized : &counting);
        biggest_alloc = 0;
        mt_model m;
        make_tiny(&m, "decoder_tiny", "decoder", NULL);
        arena[k] = biggest_alloc;
        loss[k] = loss_and_grads(&m, &r.batch);
        if (k) {
            size_t layers = 0;
            char name[64];
            for (;; layers++) {
                snprintf(name, sizeof name, "transformer.h.%zu.ln_1.weight", layers);
                if (!mt_tensor(&m, name)) break;
            }
            assert_true(layers > 0);
            printf("activation arena %zu -> %zu bytes (%zu layers)\n", arena[0], arena[1], layers);
            assert_int_equal(arena[1] - arena[0], (layers * EXTRA_ATT + EXTRA_SCRATCH) * sizeof(float));
        }
        mt_free(&m);
    }
    mt_set_backend_ops(NULL);
    assert_true(loss[0] == loss[1]);
    ref_close(&r);
}

/* ------------------------------------------------------------ decoder */

static void test_decoder_matches_torch(void **state)
{
    (void)state;
    mt_model m;
    make_tiny(&m, "decoder_tiny", "decoder", NULL);
    assert_int_equal(m.ops->task(m.self), TFTX_TASK_LM);
    int V = m.ops->n_outputs(m.self);
    assert_int_equal(V, 97);
    assert_null(mt_tensor(&m, "lm_head.weight")); /* tied to wte */
    ref_batch r;
    ref_open(&r, "model_decoder_tiny.safetensors", 0);
    size_t N = (size_t)r.B * (size_t)r.T;
    tftx_error err = {0};

    float *losses = xmalloc(N * sizeof *losses);
    assert_int_equal(m.ops->evaluate(m.self, &r.batch, losses, &err), TFTX_OK);
    float *want = mt_ref(&r.f, "token_losses", "F32", N);
    mt_expect_close("decoder token losses", losses, want, N, OUT_TOL);
    for (size_t i = 0; i < N; i++)
        if (r.labels[i] < 0) assert_true(losses[i] == 0.0f);
    free(want);

    /* log p(v) at every position: evaluate with every target = v */
    float *logp = xmalloc(N * (size_t)V * sizeof *logp);
    int32_t *targets = xmalloc(N * sizeof *targets);
    tftx_batch b = r.batch;
    b.labels = targets;
    for (int v = 0; v < V; v++) {
        for (size_t i = 0; i < N; i++) targets[i] = v;
        assert_int_equal(m.ops->evaluate(m.self, &b, losses, &err), TFTX_OK);
        for (size_t i = 0; i < N; i++) logp[i * (size_t)V + (size_t)v] = -losses[i];
    }
    want = mt_ref(&r.f, "logprobs", "F32", N * (size_t)V);
    mt_expect_close("decoder log-probabilities", logp, want, N * (size_t)V, OUT_TOL);
    printf("decoder: log-probabilities relative error %.2g\n", mt_rel_err(logp, want, N * (size_t)V, NULL));
    free(want), free(logp), free(targets), free(losses);

    float loss = loss_and_grads(&m, &r.batch);
    float *want_loss = mt_ref(&r.f, "loss", "F32", 1);
    mt_expect_close("decoder loss", &loss, want_loss, 1, OUT_TOL);
    printf("decoder: loss %.7f (torch %.7f)\n", loss, *want_loss);
    free(want_loss);
    expect_grads(&m, &r.f, "decoder");

    /* the tied head's rows padded to 128 (layout.c): 31 rows of zeros
       after wte that no tensor covers; no gradient reaches them */
    const tftx_tensor_info *wte = mt_tensor(&m, "transformer.wte.weight"), *wpe = mt_tensor(&m, "transformer.wpe.weight");
    size_t numel = 0;
    for (size_t i = 0; i < m.ops->n_tensors(m.self); i++) numel += m.ops->tensor(m.self, i)->numel;
    const size_t pad = (128 - 97) * (size_t)wte->shape[1];
    assert_int_equal(m.ops->n_params(m.self), numel + pad);
    assert_int_equal(wpe->offset, wte->offset + wte->numel + pad);
    float *p = mt_params(&m), *g = mt_grads(&m);
    for (size_t i = wte->offset + wte->numel; i < wpe->offset; i++) assert_true(p[i] == 0.0f && g[i] == 0.0f);
    free(p), free(g);
    ref_close(&r);
    mt_free(&m);
}

static void test_decoder_is_causal(void **state)
{
    (void)state;
    mt_model m;
    make_tiny(&m, "decoder_tiny", "decoder", NULL);
    ref_batch r;
    ref_open(&r, "model_decoder_tiny.safetensors", 0);
    int B = r.B, T = r.T, V = m.ops->n_outputs(m.self);
    size_t N = (size_t)B * (size_t)T;
    int32_t *full = xmalloc(N * sizeof *full);
    for (size_t i = 0; i < N; i++) full[i] = r.labels[i] >= 0 ? r.labels[i] : 5; /* a loss everywhere */
    tftx_batch b = r.batch;
    b.labels = full;
    tftx_error err = {0};
    float *base = xmalloc(N * sizeof *base), *now = xmalloc(N * sizeof *now);
    assert_int_equal(m.ops->evaluate(m.self, &b, base, &err), TFTX_OK);
    int32_t *tokens = xmalloc(N * sizeof *tokens);
    b.tokens = tokens;
    for (int tc = 0; tc < T; tc++) {
        memcpy(tokens, r.tokens, N * sizeof *tokens);
        for (int bb = 0; bb < B; bb++) tokens[bb * T + tc] = (r.tokens[bb * T + tc] + 1 + tc) % V;
        assert_int_equal(m.ops->evaluate(m.self, &b, now, &err), TFTX_OK);
        for (int bb = 0; bb < B; bb++) {
            for (int t = 0; t < tc; t++) /* the past: bit for bit */
                if (memcmp(&now[bb * T + t], &base[bb * T + t], sizeof(float)) != 0) {
                    fprintf(stderr, "changing token %d changed the loss at %d (row %d)\n", tc, t, bb);
                    fail();
                }
            assert_true(now[bb * T + tc] != base[bb * T + tc]); /* the changed position itself */
        }
    }
    free(tokens), free(full), free(base), free(now);
    ref_close(&r);
    mt_free(&m);
}

/* ------------------------------------------------------------ dropout */

/* Central differences of the training loss (dropout on, fixed step) at the
 * largest gradient entry of a few tensors. */
static void check_dropout_gradients(const char *dir, const char *arch, const char *const *tensors)
{
    static const char *const extra[] = {"dropout=0.2", "attn_dropout=0.2", NULL};
    mt_model m;
    make_tiny(&m, dir, arch, extra);
    ref_batch r;
    ref_open(&r, arch[0] == 'e' ? "model_encoder_tiny.safetensors" : "model_decoder_tiny.safetensors", arch[0] == 'e');
    tftx_error err = {0};
    tftx_batch b = r.batch;
    b.step = 5;
    float l_train, l_again, l_eval, l_other;
    assert_int_equal(m.ops->forward(m.self, &b, 1, &l_again, &err), TFTX_OK);
    assert_int_equal(m.ops->forward(m.self, &b, 0, &l_eval, &err), TFTX_OK);
    b.step = 6;
    assert_int_equal(m.ops->forward(m.self, &b, 1, &l_other, &err), TFTX_OK);
    b.step = 5;
    l_train = loss_and_grads(&m, &b);
    assert_true(l_train == l_again); /* same step, same masks */
    assert_true(l_train != l_eval);  /* dropout is on in training */
    assert_true(l_train != l_other); /* another step, other masks */

    float *g = mt_grads(&m), *w = mt_params(&m);
    const float h = 1e-2f;
    for (int k = 0; tensors[k]; k++) {
        const tftx_tensor_info *t = mt_tensor(&m, tensors[k]);
        if (!t) fprintf(stderr, "no tensor %s\n", tensors[k]);
        assert_non_null(t);
        size_t at = t->offset;
        for (size_t i = t->offset; i < t->offset + t->numel; i++)
            if (fabsf(g[i]) > fabsf(g[at])) at = i;
        float keep = w[at], lp, lm;
        w[at] = keep + h;
        mt_set_params(&m, w);
        assert_int_equal(m.ops->forward(m.self, &b, 1, &lp, &err), TFTX_OK);
        w[at] = keep - h;
        mt_set_params(&m, w);
        assert_int_equal(m.ops->forward(m.self, &b, 1, &lm, &err), TFTX_OK);
        w[at] = keep;
        mt_set_params(&m, w);
        double fd = ((double)lp - (double)lm) / (2.0 * h);
        printf("%s dropout: %s[%zu] gradient %.6g, central difference %.6g\n", arch, t->name, at - t->offset, g[at],
               fd);
        if (!(fabs(fd - g[at]) <= 0.02 * fabs(g[at]) + 2e-4)) {
            fprintf(stderr, "%s: gradient %.6g but central difference %.6g\n", t->name, g[at], fd);
            fail();
        }
    }
    free(g), free(w);
    ref_close(&r);
    mt_free(&m);
}

static void test_dropout_gradients(void **state)
{
    (void)state;
    static const char *const enc[] = {"bert.embeddings.word_embeddings.weight",
                                      "bert.embeddings.LayerNorm.weight",
                                      "bert.encoder.layer.0.attention.self.key.weight",
                                      "bert.encoder.layer.0.attention.self.value.weight",
                                      "bert.encoder.layer.1.intermediate.dense.weight",
                                      "bert.pooler.dense.weight",
                                      "classifier.weight",
                                      NULL};
    static const char *const dec[] = {"transformer.wte.weight",
                                      "transformer.wpe.weight",
                                      "transformer.h.0.attn.c_attn.weight",
                                      "transformer.h.1.mlp.c_proj.weight",
                                      "transformer.h.1.ln_2.weight",
                                      "transformer.ln_f.bias",
                                      NULL};
    check_dropout_gradients("encoder_tiny", "encoder", enc);
    check_dropout_gradients("decoder_tiny", "decoder", dec);
}

/* Each test starts from the backend's own table: one that failed may have
 * left a wrapper of its own stack set. */
static int own_table(void **state)
{
    (void)state;
    mt_set_backend_ops(NULL);
    return 0;
}

int main(void)
{
    mt_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_encoder_matches_torch, own_table),
        cmocka_unit_test_setup(test_encoder_padding_is_ignored, own_table),
        cmocka_unit_test_setup(test_decoder_matches_torch, own_table),
        cmocka_unit_test_setup(test_decoder_is_causal, own_table),
        cmocka_unit_test_setup(test_dropout_gradients, own_table),
        cmocka_unit_test_setup(test_cls_tail_equals_full_block, own_table),
        cmocka_unit_test_setup(test_train_pass_equals_forward_backward, own_table),
        cmocka_unit_test_setup(test_written_gradients_equal_added, own_table),
        cmocka_unit_test_setup(test_evaluate_through_graphs, own_table),
        cmocka_unit_test_setup(test_attention_sizes_come_from_the_backend, own_table),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mt_done();
    return rc;
}
