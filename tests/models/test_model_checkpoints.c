/*
 * test_model_checkpoints.c -- the transformer plugin's Hugging Face checkpoints
 * and initialisation, on the cpu backend.
 *
 *   round trip: load the fixture checkpoint, save it: model.safetensors
 *     holds the fixture's tensors bit for bit (names, shapes, and GPT-2's
 *     Conv1D weights transposed back); config.json has Transformers' keys;
 *     a model created from the saved directory loads the same arena bit
 *     for bit. Also for tftx's own variants (pre-LN encoder with relu,
 *     post-LN decoder with gelu), whose outputs match after the trip.
 *   base-model checkpoints: BertModel names (no "bert." prefix, no
 *     classifier: the initialised one stays), GPT2Model names with the
 *     causal-mask buffers and lm_head.weight that files may carry, and old
 *     LayerNorm gamma/beta names all load.
 *   errors, each naming the tensor or file: a missing tensor, a wrong
 *     shape (both shapes in the message, in the checkpoint's layout), a
 *     float16 tensor, half a classifier, another architecture's
 *     config.json, a missing directory, a truncated file.
 *   initialisation: LayerNorm weights 1, biases 0, weights N(0, init_std),
 *     a stream per tensor, the same for the same run seed.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "modeltest.h"

/* ------------------------------------------------------------ helpers */

static char *tmp_path(const char *name)
{
    return xasprintf("%s/%s", test_tmpdir(), name);
}

static void make_tiny(mt_model *m, const char *dir_name, const char *arch)
{
    char *dir = mt_fixture(dir_name);
    char *pre = xasprintf("pretrained=%s", dir), *a = xasprintf("arch=%s", arch);
    const char *params[] = {a, pre, NULL};
    mt_make(m, "transformer", params, 4, 16);
    tftx_error err = {0};
    tftx_status st = m->ops->load(m->self, dir, &err);
    if (st != TFTX_OK) fprintf(stderr, "load: %s\n", err.message);
    assert_int_equal(st, TFTX_OK);
    free(a), free(pre), free(dir);
}

static void expect_ok(tftx_status st, const tftx_error *err)
{
    if (st != TFTX_OK) fprintf(stderr, "unexpected error: %s\n", err->message);
    assert_int_equal(st, TFTX_OK);
}

/* The error must mention every fragment (NULL-terminated). */
static void expect_error(tftx_status st, const tftx_error *err, ...)
{
    if (st == TFTX_OK) fprintf(stderr, "expected an error, got none\n");
    assert_int_not_equal(st, TFTX_OK);
    va_list ap;
    va_start(ap, err);
    for (const char *frag; (frag = va_arg(ap, const char *));) {
        if (!strstr(err->message, frag)) fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err->message, frag);
        assert_non_null(strstr(err->message, frag));
    }
    va_end(ap);
}

/* Two safetensors files hold the same tensors, bit for bit. */
static void expect_same_tensors(const char *a_path, const char *b_path)
{
    st_file a, b;
    char msg[1024];
    assert_int_equal(st_open(&a, a_path, msg, sizeof msg), 0);
    assert_int_equal(st_open(&b, b_path, msg, sizeof msg), 0);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        const st_tensor *x = &a.tensors[i], *y = st_find(&b, x->name);
        if (!y) fprintf(stderr, "%s lacks %s\n", b_path, x->name);
        assert_non_null(y);
        assert_string_equal(x->dtype, y->dtype);
        assert_int_equal(x->ndim, y->ndim);
        for (int d = 0; d < x->ndim; d++) assert_int_equal(x->shape[d], y->shape[d]);
        assert_int_equal(x->nbytes, y->nbytes);
        if (memcmp(x->data, y->data, x->nbytes) != 0) fprintf(stderr, "%s differs\n", x->name);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    st_close(&a);
    st_close(&b);
}

/* A model created from `dir` alone loads an arena equal to want's. */
static void expect_reload_equal(const char *dir, mt_model *want, int T)
{
    char *pre = xasprintf("pretrained=%s", dir);
    const char *params[] = {pre, NULL};
    mt_model m;
    mt_make(&m, "transformer", params, 4, T);
    tftx_error err = {0};
    expect_ok(m.ops->load(m.self, dir, &err), &err);
    size_t n = want->ops->n_params(want->self);
    assert_int_equal(m.ops->n_params(m.self), n);
    assert_int_equal(m.ops->n_tensors(m.self), want->ops->n_tensors(want->self));
    for (size_t i = 0; i < m.ops->n_tensors(m.self); i++)
        assert_string_equal(m.ops->tensor(m.self, i)->name, want->ops->tensor(want->self, i)->name);
    float *a = mt_params(&m), *b = mt_params(want);
    assert_memory_equal(a, b, n * sizeof *a);
    free(a), free(b), free(pre);
    mt_free(&m);
}

static const cJSON *key(const cJSON *root, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, k);
    if (!v) fprintf(stderr, "config.json lacks \"%s\"\n", k);
    assert_non_null(v);
    return v;
}

/* A copy of a fixture checkpoint with its tensors edited by `edit`:
 * return 0 to drop a tensor; it may rename it (into name), change its
 * dtype or shape (the data is then zeros of the new size). `extra` tensors
 * (F32 zeros) are appended. */
typedef int (*edit_fn)(char *name, size_t namesz, st_entry *e);

static char *write_variant(const char *fixture_dir, const char *out_name, edit_fn edit, const st_entry *extra,
                           size_t n_extra)
{
    char *src_dir = mt_fixture(fixture_dir), *dst_dir = tmp_path(out_name);
    mt_copy_config(src_dir, dst_dir);
    char *src = xasprintf("%s/model.safetensors", src_dir), *dst = xasprintf("%s/model.safetensors", dst_dir);
    st_file f;
    char msg[1024];
    assert_int_equal(st_open(&f, src, msg, sizeof msg), 0);
    st_entry *e = xcalloc(f.n + n_extra, sizeof *e);
    char **names = xcalloc(f.n + n_extra, sizeof *names);
    void **bufs = xcalloc(f.n + n_extra, sizeof *bufs);
    size_t n = 0;
    for (size_t i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        names[n] = xmalloc(256);
        snprintf(names[n], 256, "%s", t->name);
        st_entry x = {.dtype = t->dtype, .ndim = t->ndim, .data = t->data};
        memcpy(x.shape, t->shape, sizeof x.shape);
        if (!edit(names[n], 256, &x)) {
            free(names[n]);
            names[n] = NULL;
            continue;
        }
        size_t numel = 1;
        for (int d = 0; d < x.ndim; d++) numel *= (size_t)x.shape[d];
        if (numel * st_dtype_size(x.dtype) != t->nbytes) x.data = bufs[n] = xcalloc(numel + 1, 8);
        x.name = names[n];
        e[n++] = x;
    }
    for (size_t i = 0; i < n_extra; i++) {
        size_t numel = 1;
        for (int d = 0; d < extra[i].ndim; d++) numel *= (size_t)extra[i].shape[d];
        e[n] = extra[i];
        e[n].data = bufs[n] = xcalloc(numel + 1, 4);
        n++;
    }
    assert_int_equal(st_write(dst, e, n, msg, sizeof msg), 0);
    for (size_t i = 0; i < f.n + n_extra; i++) free(bufs[i]), free(names[i]);
    free(bufs), free(names), free(e);
    st_close(&f);
    free(src), free(dst), free(src_dir);
    return dst_dir;
}

static tftx_status load_dir(mt_model *m, const char *dir, tftx_error *err)
{
    memset(err, 0, sizeof *err);
    return m->ops->load(m->self, dir, err);
}

/* ------------------------------------------------------------ round trips */

static void test_roundtrip_hf(void **state)
{
    (void)state;
    static const char *const arch[] = {"encoder", "decoder"};
    static const char *const fixture[] = {"encoder_tiny", "decoder_tiny"};
    for (int k = 0; k < 2; k++) {
        mt_model m;
        make_tiny(&m, fixture[k], arch[k]);
        char *dir = tmp_path(k == 0 ? "enc_saved" : "dec_saved");
        tftx_error err = {0};
        expect_ok(m.ops->save(m.self, dir, &err), &err);

        char *fix_dir = mt_fixture(fixture[k]);
        char *a = xasprintf("%s/model.safetensors", fix_dir), *b = xasprintf("%s/model.safetensors", dir);
        expect_same_tensors(a, b);

        char *cpath = xasprintf("%s/config.json", dir);
        char *text = mio_read_text(cpath, NULL);
        assert_non_null(text);
        cJSON *root = cJSON_Parse(text);
        assert_non_null(root);
        if (k == 0) {
            assert_string_equal(key(root, "model_type")->valuestring, "bert");
            assert_string_equal(cJSON_GetArrayItem(key(root, "architectures"), 0)->valuestring,
                                "BertForSequenceClassification");
            assert_int_equal(key(root, "hidden_size")->valueint, 32);
            assert_int_equal(key(root, "num_hidden_layers")->valueint, 2);
            assert_int_equal(key(root, "num_attention_heads")->valueint, 4);
            assert_int_equal(key(root, "intermediate_size")->valueint, 64);
            assert_int_equal(key(root, "max_position_embeddings")->valueint, 16);
            assert_int_equal(key(root, "vocab_size")->valueint, 101);
            assert_string_equal(key(root, "hidden_act")->valuestring, "gelu");
            assert_true(key(root, "layer_norm_eps")->valuedouble == 1e-12);
            assert_int_equal(cJSON_GetArraySize(key(root, "id2label")), 3);
            assert_null(cJSON_GetObjectItem(root, "tftx_norm"));
        } else {
            assert_string_equal(key(root, "model_type")->valuestring, "gpt2");
            assert_string_equal(cJSON_GetArrayItem(key(root, "architectures"), 0)->valuestring, "GPT2LMHeadModel");
            assert_int_equal(key(root, "n_embd")->valueint, 24);
            assert_int_equal(key(root, "n_layer")->valueint, 2);
            assert_int_equal(key(root, "n_head")->valueint, 3);
            assert_int_equal(key(root, "n_positions")->valueint, 16);
            assert_string_equal(key(root, "activation_function")->valuestring, "gelu_new");
            assert_true(key(root, "layer_norm_epsilon")->valuedouble == 1e-5);
        }
        cJSON_Delete(root);
        expect_reload_equal(dir, &m, 16);
        free(text), free(cpath), free(a), free(b), free(fix_dir), free(dir);
        mt_free(&m);
    }
}

/* tftx's own variants survive a save/create/load trip with equal outputs. */
static void test_roundtrip_variants(void **state)
{
    (void)state;
    static const char *const enc[] = {"arch=encoder",  "norm=pre",     "activation=relu", "layers=2",
                                      "d_model=16",    "heads=2",      "d_ff=24",         "max_len=8",
                                      "vocab_size=30", "num_labels=4", "init_std=0.3",    NULL};
    static const char *const dec[] = {"arch=decoder", "norm=post", "activation=gelu", "layers=1",     "d_model=12",
                                      "heads=3",      "max_len=8", "vocab_size=20",   "init_std=0.3", NULL};
    const char *const *params[] = {enc, dec};
    for (int k = 0; k < 2; k++) {
        mt_model m;
        mt_make(&m, "transformer", params[k], 4, 8);
        int enc_model = k == 0;
        if (enc_model)
            assert_non_null(mt_tensor(&m, "bert.encoder.ln_f.weight"));
        else
            assert_null(mt_tensor(&m, "transformer.ln_f.weight"));
        char *dir = tmp_path(enc_model ? "enc_pre" : "dec_post");
        tftx_error err = {0};
        expect_ok(m.ops->save(m.self, dir, &err), &err);

        int32_t tokens[2 * 6] = {1, 5, 9, 13, 2, 0, 3, 4, 19, 11, 6, 7},
                           labels[2 * 6] = {3, 1, 0, 2, 1, 2, 1, 4, 2, 3, 5, 1};
        tftx_batch b = {.B = 2, .T = 6, .tokens = tokens, .labels = labels};
        float out1[12], out2[12];
        expect_ok(m.ops->evaluate(m.self, &b, out1, &err), &err);

        char *pre = xasprintf("pretrained=%s", dir);
        const char *p2[] = {pre, NULL};
        mt_model m2;
        mt_make(&m2, "transformer", p2, 4, 8);
        expect_ok(m2.ops->load(m2.self, dir, &err), &err);
        assert_int_equal(m2.ops->n_outputs(m2.self), m.ops->n_outputs(m.self));
        expect_ok(m2.ops->evaluate(m2.self, &b, out2, &err), &err);
        assert_memory_equal(out1, out2, (enc_model ? 2 * 4 : 12) * sizeof(float));
        mt_free(&m2);
        expect_reload_equal(dir, &m, 8);
        free(pre), free(dir);
        mt_free(&m);
    }
}

/* ------------------------------------------------------------ base models */

static int bert_model_names(char *name, size_t sz, st_entry *e)
{
    (void)e;
    if (strncmp(name, "classifier.", 11) == 0) return 0;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", name + 5); /* drop "bert." */
    /* old checkpoints: LayerNorm gamma/beta */
    char *ln = strstr(tmp, "LayerNorm.weight");
    if (ln) strcpy(ln, "LayerNorm.gamma");
    ln = strstr(tmp, "LayerNorm.bias");
    if (ln) strcpy(ln, "LayerNorm.beta");
    snprintf(name, sz, "%s", tmp);
    return 1;
}

static int gpt2_model_names(char *name, size_t sz, st_entry *e)
{
    (void)e;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", name + 12); /* drop "transformer." */
    snprintf(name, sz, "%s", tmp);
    return 1;
}

static void test_base_model_checkpoints(void **state)
{
    (void)state;
    tftx_error err;
    /* BertModel: the classifier keeps its initialisation */
    mt_model ref, m;
    make_tiny(&ref, "encoder_tiny", "encoder");
    char *dir = write_variant("encoder_tiny", "bert_base", bert_model_names, NULL, 0);
    char *fix = mt_fixture("encoder_tiny");
    char *pre = xasprintf("pretrained=%s", fix);
    const char *params[] = {pre, NULL};
    mt_make(&m, "transformer", params, 4, 16);
    float *init = mt_params(&m);
    expect_ok(load_dir(&m, dir, &err), &err);
    float *got = mt_params(&m), *want = mt_params(&ref);
    const tftx_tensor_info *cw = mt_tensor(&m, "classifier.weight");
    assert_non_null(cw);
    size_t n = m.ops->n_params(m.self), cls = cw->offset; /* the classifier comes last */
    assert_memory_equal(got, want, cls * sizeof *got);
    assert_memory_equal(got + cls, init + cls, (n - cls) * sizeof *got);
    assert_memory_not_equal(got + cls, want + cls, (n - cls) * sizeof *got);
    free(init), free(got), free(want), free(dir), free(pre), free(fix);
    mt_free(&m);
    mt_free(&ref);

    /* GPT2Model names, plus the buffers and tied head some files carry */
    make_tiny(&ref, "decoder_tiny", "decoder");
    st_entry extra[] = {
        {.name = "h.0.attn.bias", .dtype = "F32", .ndim = 4, .shape = {1, 1, 16, 16}},
        {.name = "h.0.attn.masked_bias", .dtype = "F32", .ndim = 0},
        {.name = "lm_head.weight", .dtype = "F32", .ndim = 2, .shape = {97, 24}},
    };
    dir = write_variant("decoder_tiny", "gpt2_base", gpt2_model_names, extra, 3);
    fix = mt_fixture("decoder_tiny");
    pre = xasprintf("pretrained=%s", fix);
    const char *p2[] = {pre, NULL};
    mt_make(&m, "transformer", p2, 4, 16);
    expect_ok(load_dir(&m, dir, &err), &err);
    got = mt_params(&m), want = mt_params(&ref);
    assert_memory_equal(got, want, m.ops->n_params(m.self) * sizeof *got);
    free(got), free(want), free(dir), free(pre), free(fix);
    mt_free(&m);
    mt_free(&ref);
}

/* ------------------------------------------------------------ errors */

static int drop_key_weight(char *name, size_t sz, st_entry *e)
{
    (void)sz, (void)e;
    return strcmp(name, "bert.encoder.layer.1.attention.self.key.weight") != 0;
}

static int shrink_intermediate(char *name, size_t sz, st_entry *e)
{
    (void)sz;
    if (strcmp(name, "bert.encoder.layer.0.intermediate.dense.weight") == 0) e->shape[0] = 63;
    return 1;
}

static int half_precision(char *name, size_t sz, st_entry *e)
{
    (void)sz;
    if (strcmp(name, "bert.pooler.dense.weight") == 0) e->dtype = "F16";
    return 1;
}

static int drop_classifier_bias(char *name, size_t sz, st_entry *e)
{
    (void)sz, (void)e;
    return strcmp(name, "classifier.bias") != 0;
}

static int untransposed_fc(char *name, size_t sz, st_entry *e)
{
    (void)sz;
    if (strcmp(name, "transformer.h.0.mlp.c_fc.weight") == 0) e->shape[0] = 96, e->shape[1] = 24;
    return 1;
}

static void test_load_errors(void **state)
{
    (void)state;
    tftx_error err;
    mt_model m;
    make_tiny(&m, "encoder_tiny", "encoder");
    char *dir = write_variant("encoder_tiny", "no_key", drop_key_weight, NULL, 0);
    expect_error(load_dir(&m, dir, &err), &err, "bert.encoder.layer.1.attention.self.key.weight", "missing", "[32, 32]",
                 NULL);
    free(dir);
    dir = write_variant("encoder_tiny", "bad_shape", shrink_intermediate, NULL, 0);
    expect_error(load_dir(&m, dir, &err), &err, "bert.encoder.layer.0.intermediate.dense.weight", "[63, 32]",
                 "[64, 32]", NULL);
    free(dir);
    dir = write_variant("encoder_tiny", "f16", half_precision, NULL, 0);
    expect_error(load_dir(&m, dir, &err), &err, "bert.pooler.dense.weight", "F16", "F32", NULL);
    free(dir);
    dir = write_variant("encoder_tiny", "half_classifier", drop_classifier_bias, NULL, 0);
    expect_error(load_dir(&m, dir, &err), &err, "classifier.bias", "missing", NULL);
    free(dir);
    char *gpt = mt_fixture("decoder_tiny");
    expect_error(load_dir(&m, gpt, &err), &err, "config.json", "gpt2", NULL);
    free(gpt);
    dir = tmp_path("does_not_exist");
    expect_error(load_dir(&m, dir, &err), &err, "does_not_exist", NULL);
    free(dir);

    /* a truncated file: the header promises more than there is */
    dir = write_variant("encoder_tiny", "truncated", drop_key_weight, NULL, 0);
    char *st_path = xasprintf("%s/model.safetensors", dir);
    assert_int_equal(truncate(st_path, 64), 0);
    expect_error(load_dir(&m, dir, &err), &err, "model.safetensors", NULL);
    free(st_path), free(dir);
    mt_free(&m);

    /* the decoder's shapes are reported in the checkpoint's (Conv1D) layout */
    make_tiny(&m, "decoder_tiny", "decoder");
    dir = write_variant("decoder_tiny", "gpt2_fc", untransposed_fc, NULL, 0);
    expect_error(load_dir(&m, dir, &err), &err, "transformer.h.0.mlp.c_fc.weight", "[96, 24]", "[24, 96]", NULL);
    free(dir);
    mt_free(&m);

    /* create() reads config.json: an unknown model type, or another arch */
    char *bad = tmp_path("t5");
    char msg[256];
    assert_int_equal(mio_mkdirs(bad, msg, sizeof msg), 0);
    char *cfg = xasprintf("%s/config.json", bad);
    assert_int_equal(mio_write_text(cfg, "{\"model_type\": \"t5\"}", msg, sizeof msg), 0);
    char *pre = xasprintf("pretrained=%s", bad);
    const char *p1[] = {pre, NULL};
    expect_error(mt_create(&m, "transformer", p1, &err), &err, "t5", "not supported", NULL);
    /* n_inner null is 4 * n_embd: an n_embd that would overflow it is an
       error, not a wrapped size (a fuzzer's find) */
    assert_int_equal(mio_write_text(cfg, "{\"model_type\": \"gpt2\", \"n_embd\": 710666114, \"n_inner\": null}",
                                    msg, sizeof msg),
                     0);
    expect_error(mt_create(&m, "transformer", p1, &err), &err, "n_embd", "too large", NULL);
    free(pre), free(cfg), free(bad);
    char *enc = mt_fixture("encoder_tiny");
    pre = xasprintf("pretrained=%s", enc);
    const char *p2[] = {"arch=decoder", pre, NULL};
    expect_error(mt_create(&m, "transformer", p2, &err), &err, "arch", "bert", NULL);
    free(pre), free(enc);
}

/* ------------------------------------------------------------ init */

static void test_initialisation(void **state)
{
    (void)state;
    static const char *const params[] = {"layers=2",   "d_model=64",    "heads=4", "vocab_size=200",
                                         "max_len=32", "init_std=0.05", NULL};
    mt_model a, b;
    mt_make(&a, "transformer", params, 2, 8);
    mt_make(&b, "transformer", params, 2, 8);
    float *wa = mt_params(&a), *wb = mt_params(&b);
    size_t n = a.ops->n_params(a.self);
    assert_memory_equal(wa, wb, n * sizeof *wa); /* same run seed, same weights */
    size_t total = 0;
    for (size_t i = 0; i < a.ops->n_tensors(a.self); i++) {
        const tftx_tensor_info *t = a.ops->tensor(a.self, i);
        const float *w = wa + t->offset;
        assert_int_equal(t->offset, total); /* one contiguous arena, in table order */
        total += t->numel;
        size_t len = strlen(t->name);
        int is_ln_weight = strstr(t->name, "LayerNorm.weight") != NULL;
        int is_bias = len > 5 && strcmp(t->name + len - 5, ".bias") == 0;
        if (is_ln_weight || is_bias) {
            for (size_t k = 0; k < t->numel; k++) assert_true(w[k] == (is_ln_weight ? 1.0f : 0.0f));
            continue;
        }
        double s = 0, s2 = 0;
        for (size_t k = 0; k < t->numel; k++) s += w[k], s2 += (double)w[k] * w[k];
        double mean = s / (double)t->numel, sd = sqrt(s2 / (double)t->numel - mean * mean);
        if (t->numel >= 1000 && fabs(sd - 0.05) > 0.005) {
            fprintf(stderr, "%s: standard deviation %g, expected 0.05\n", t->name, sd);
            fail();
        }
    }
    assert_int_equal(total, n);
    /* q and k draw from their own streams */
    const tftx_tensor_info *q = mt_tensor(&a, "bert.encoder.layer.0.attention.self.query.weight");
    const tftx_tensor_info *k = mt_tensor(&a, "bert.encoder.layer.0.attention.self.key.weight");
    assert_int_equal(k->offset, q->offset + q->numel); /* packed q|k|v rows */
    assert_memory_not_equal(wa + q->offset, wa + k->offset, q->numel * sizeof *wa);
    free(wa), free(wb);
    mt_free(&a);
    mt_free(&b);
}

int main(void)
{
    mt_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_hf),           cmocka_unit_test(test_roundtrip_variants),
        cmocka_unit_test(test_base_model_checkpoints), cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_initialisation),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mt_done();
    return rc;
}
