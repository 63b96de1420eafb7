/*
 * test_train.c -- the training loop (host/train.c) with real plugins (cpu
 * backend, bow model, sgd/adamw) on synthetic sequences whose label is
 * decided by which tokens occur: it learns; it is bit-for-bit
 * deterministic; a NaN/Inf loss ends the run as diverged at its step; early
 * stopping stops; gradient accumulation matches a bigger batch; clipping
 * bounds the update; checkpoints are written.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "results.h"
#include "session.h"
#include "testutil.h"
#include "train.h"

#define N_SEQ 600
#define T_MAX 12
#define VOCAB 50

/* Three splits of synthetic data: label 1 iff a token in [40, 50) occurs. */
typedef struct synth {
    uint64_t offsets[3][N_SEQ + 1];
    int32_t ids[3][N_SEQ * T_MAX];
    int32_t labels[3][N_SEQ];
    train_inputs in;
} synth;

static const char *const LABELS[] = {"neg", "pos"};

static void make_data(synth *d)
{
    memset(d, 0, sizeof *d);
    uint64_t x = 12345;
    size_t n[3] = {N_SEQ, N_SEQ / 4, N_SEQ / 4};
    for (int s = 0; s < 3; s++) {
        uint64_t at = 0;
        for (size_t i = 0; i < n[s]; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            int len = 4 + (int)((x >> 33) % (T_MAX - 4));
            int label = (int)((x >> 20) & 1), where = (int)((x >> 13) % (uint64_t)len);
            d->offsets[s][i] = at;
            for (int t = 0; t < len; t++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                int id = 1 + (int)((x >> 33) % 39); /* 1..39: neutral */
                if (label && t == where) id = 40 + (int)((x >> 40) % 10);
                d->ids[s][at++] = id;
            }
            d->labels[s][i] = label;
        }
        d->offsets[s][n[s]] = at;
        d->in.split[s] = (split_view){n[s], T_MAX, d->offsets[s], d->ids[s], d->labels[s]};
    }
    d->in.n_labels = 2;
    d->in.label_names = LABELS;
    d->in.vocab_size = VOCAB;
    d->in.pad_id = 0;
    d->in.data_hash = "synthetic";
    d->in.cache_hash = "none";
    d->in.run_dir = test_tmpdir();
    d->in.seed = 7;
    d->in.threads = 1;
    d->in.progress_fd = -1;
}

typedef struct result {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    train_outcome out;
} result;

static registry reg;
static synth data;

/* Train the configuration `text` (plus optional --set assignments). */
static void train(const char *text, const char *const *sets, size_t n_sets, result *r)
{
    plan p;
    errlist errs = {0};
    char *path = test_write("train.cfg", text);
    int rc = plan_build(&p, path, (char *const *)sets, n_sets, &reg, &errs);
    test_dump_errors(&errs);
    assert_int_equal(rc, 0);
    services_set_context("host", "test", data.in.seed);
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->sb, msgpack_sbuffer_write);
    train_execute(p.runs[0].config, &reg, &data.in, &pk, &r->out);
    msgpack_unpacked_init(&r->u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&r->u, r->sb.data, r->sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    plan_free(&p);
    errlist_free(&errs);
}

static void result_free(result *r)
{
    msgpack_unpacked_destroy(&r->u);
    msgpack_sbuffer_destroy(&r->sb);
}

static double metric(const result *r, const char *a, const char *b)
{
    const msgpack_object *o = mp_get(&r->u.data, a);
    if (b) o = mp_get(o, b);
    assert_non_null(o);
    return o->type == MSGPACK_OBJECT_FLOAT64 ? o->via.f64 : (double)o->via.i64;
}

/* An experiment text: the bow model on the cpu backend, with the given
 * optimizer section body and extra train/model keys. Static storage. */
static const char *cfg(const char *optimizer, const char *train_extra, const char *model_extra)
{
    static char buf[4][1024];
    static int next;
    char *b = buf[next++ & 3];
    snprintf(b, sizeof buf[0],
             "model = { plugin = \"bow\"; d_model = 16; hidden = 32; dropout = 0.0; %s };\n"
             "train = { backend = \"cpu\"; threads = 1; batch_size = 16; shuffle = true; log_every = 5; %s };\n"
             "optimizer = { %s };\n",
             model_extra ? model_extra : "", train_extra ? train_extra : "", optimizer);
    return b;
}

static void learns_and_reports(void **s)
{
    (void)s;
    result r;
    train(cfg("plugin = \"adamw\"; lr = 0.01;", "epochs = 6;", NULL), NULL, 0, &r);
    if (strcmp(r.out.status, "ok")) fprintf(stderr, "%s: %s\n", r.out.status, r.out.error);
    assert_string_equal(r.out.status, "ok");
    assert_true(metric(&r, "final_valid", "accuracy") >= 0.95);
    assert_true(metric(&r, "test", "accuracy") >= 0.95);
    assert_true(metric(&r, "final_valid", "macro_f1") >= 0.95);
    assert_int_equal((int64_t)metric(&r, "steps", NULL), 6 * 38); /* ceil(600/16) per epoch */
    const msgpack_object *tl = mp_get(&r.u.data, "train_loss");
    assert_true(tl->via.array.size > 10);
    double first = tl->via.array.ptr[0].via.array.ptr[1].via.f64;
    double last = tl->via.array.ptr[tl->via.array.size - 1].via.array.ptr[1].via.f64;
    assert_true(last < 0.5 * first);
    assert_int_equal(mp_get(&r.u.data, "valid")->via.array.size, 6); /* once per epoch */
    assert_non_null(mp_get(mp_get(mp_get(&r.u.data, "final_valid"), "recall"), "pos"));
    assert_true(metric(&r, "tokens_per_s", NULL) > 0);
    result_free(&r);
}

static void strip_timings(msgpack_object *m)
{
    static const char *const keys[] = {"train_s", "tokens_per_s", "wall_s", "peak_rss_mib"};
    for (uint32_t i = 0; i < m->via.map.size; i++)
        for (size_t k = 0; k < 4; k++)
            if (mp_str_is(&m->via.map.ptr[i].key, keys[k])) m->via.map.ptr[i].val.type = MSGPACK_OBJECT_NIL;
}

static void deterministic(void **s)
{
    (void)s;
    const char *text = cfg("plugin = \"adamw\"; lr = 0.01;", "epochs = 2;", NULL);
    const char *drop[] = {"model.dropout=0.2"};
    result a, b;
    train(text, drop, 1, &a);
    train(text, drop, 1, &b);
    strip_timings(&a.u.data);
    strip_timings(&b.u.data);
    if (!msgpack_object_equal(a.u.data, b.u.data)) {
        msgpack_object_print(stderr, a.u.data);
        fprintf(stderr, "\n");
        msgpack_object_print(stderr, b.u.data);
        fprintf(stderr, "\n");
    }
    assert_true(msgpack_object_equal(a.u.data, b.u.data));
    result_free(&b);
    /* another seed gives another run */
    data.in.seed = 8;
    train(text, drop, 1, &b);
    strip_timings(&b.u.data);
    assert_false(msgpack_object_equal(a.u.data, b.u.data));
    data.in.seed = 7;
    result_free(&a);
    result_free(&b);
}

static void divergence_is_reported_with_its_step(void **s)
{
    (void)s;
    result r;
    train(cfg("plugin = \"sgd\"; lr = 1e30;", "epochs = 2;", NULL), NULL, 0, &r);
    assert_string_equal(r.out.status, "diverged");
    assert_non_null(strstr(r.out.error, " at step "));
    int64_t at = (int64_t)metric(&r, "diverged_at", NULL);
    assert_true(at >= 1 && at < 76);
    assert_int_equal((int64_t)metric(&r, "steps", NULL), at - 1);
    result_free(&r);
}

static void early_stopping(void **s)
{
    (void)s;
    result r; /* lr 0: the validation loss never improves after the first evaluation */
    train(cfg("plugin = \"sgd\"; lr = 0.0;",
              "epochs = 5; eval_every = 3; early_stop = { metric = \"loss\"; patience = 2; };", NULL),
          NULL, 0, &r);
    assert_string_equal(r.out.status, "ok");
    assert_int_equal((int64_t)metric(&r, "stopped_early", NULL), 1);
    assert_int_equal((int64_t)metric(&r, "steps", NULL), 9); /* evaluations at 3 (best), 6, 9 */
    result_free(&r);
}

static void accumulation_matches_a_bigger_batch(void **s)
{
    (void)s;
    /* 18 steps of 32 sequences stay inside the first epoch (600 sequences) */
    const char *base = cfg("plugin = \"sgd\"; lr = 0.5;", "max_steps = 18;", NULL);
    const char *big[] = {"train.batch_size=32", "train.accumulate=1", "train.shuffle=false", "train.log_every=1"};
    const char *acc[] = {"train.batch_size=8", "train.accumulate=4", "train.shuffle=false", "train.log_every=1"};
    result a, b;
    train(base, big, 4, &a);
    train(base, acc, 4, &b);
    const msgpack_object *la = mp_get(&a.u.data, "train_loss"), *lb = mp_get(&b.u.data, "train_loss");
    assert_int_equal(la->via.array.size, 18);
    assert_int_equal(lb->via.array.size, 18);
    for (uint32_t i = 0; i < 18; i++) {
        double x = la->via.array.ptr[i].via.array.ptr[1].via.f64, y = lb->via.array.ptr[i].via.array.ptr[1].via.f64;
        if (!(fabs(x - y) <= 1e-5 * fabs(x) + 1e-6)) fprintf(stderr, "step %u: %.9g vs %.9g\n", i + 1, x, y);
        assert_true(fabs(x - y) <= 1e-5 * fabs(x) + 1e-6); /* same gradient, other summation order */
    }
    result_free(&a);
    result_free(&b);
}

static void clipping_bounds_the_update(void **s)
{
    (void)s;
    const char *base = cfg("plugin = \"sgd\"; lr = 5.0;", "max_steps = 2;", NULL);
    const char *plain[] = {"train.shuffle=false", "train.log_every=1"};
    const char *clip[] = {"train.shuffle=false", "train.log_every=1", "train.grad_clip=1e-6"};
    result a, b;
    train(base, plain, 2, &a);
    train(base, clip, 3, &b);
    const msgpack_object *la = mp_get(&a.u.data, "train_loss"), *lb = mp_get(&b.u.data, "train_loss");
    double a0 = la->via.array.ptr[0].via.array.ptr[1].via.f64, a1 = la->via.array.ptr[1].via.array.ptr[1].via.f64;
    double b0 = lb->via.array.ptr[0].via.array.ptr[1].via.f64, b1 = lb->via.array.ptr[1].via.array.ptr[1].via.f64;
    assert_true(a0 == b0);             /* same start */
    assert_true(fabs(b1 - b0) < 1e-4); /* an update of norm <= 5e-6 barely moves */
    assert_true(fabs(a1 - a0) > 1e-3); /* unclipped, it does */
    result_free(&a);
    result_free(&b);
}

static void checkpoint_saved(void **s)
{
    (void)s;
    result r;
    train(cfg("plugin = \"adamw\"; lr = 0.01;", "max_steps = 3; save = \"last\";", NULL), NULL, 0, &r);
    assert_string_equal(r.out.status, "ok");
    char *cfg = xasprintf("%s/checkpoint-last/config.json", test_tmpdir());
    char *st = xasprintf("%s/checkpoint-last/model.safetensors", test_tmpdir());
    struct stat sb;
    assert_int_equal(stat(cfg, &sb), 0);
    assert_int_equal(stat(st, &sb), 0);
    assert_true(sb.st_size > 16 * VOCAB * 4);
    free(cfg);
    free(st);
    result_free(&r);
}

static void resume_continues_exactly(void **s)
{
    (void)s;
    const char *text = cfg("plugin = \"adamw\"; lr = 0.01;", "save = \"last\";", NULL);
    char *dir_a = xasprintf("%s/straight", test_tmpdir()), *dir_b = xasprintf("%s/first-half", test_tmpdir());
    char *dir_c = xasprintf("%s/second-half", test_tmpdir());
    char *resume = xasprintf("train.resume_from=\"%s/checkpoint-last\"", dir_b);
    const char *straight[] = {"train.max_steps=45", "model.dropout=0.2"};
    const char *first[] = {"train.max_steps=20", "model.dropout=0.2"};
    const char *second[] = {"train.max_steps=45", "model.dropout=0.2", resume};
    result a, b, c;
    data.in.run_dir = dir_a;
    train(text, straight, 2, &a);
    data.in.run_dir = dir_b;
    train(text, first, 2, &b);
    data.in.run_dir = dir_c;
    train(text, second, 3, &c); /* 20 steps in epoch 1 restored, then into epoch 2 */
    data.in.run_dir = test_tmpdir();
    assert_string_equal(c.out.status, "ok");
    assert_int_equal((int64_t)metric(&c, "resumed_at", NULL), 20);
    const char *files[] = {"model.safetensors", "optimizer.safetensors"};
    for (int f = 0; f < 2; f++) {
        char *pa = xasprintf("%s/checkpoint-last/%s", dir_a, files[f]),
             *pc = xasprintf("%s/checkpoint-last/%s", dir_c, files[f]);
        size_t na, nc;
        char *xa = read_file(pa, &na), *xc = read_file(pc, &nc);
        assert_non_null(xa);
        assert_non_null(xc);
        assert_int_equal(na, nc);
        assert_memory_equal(xa, xc, na); /* bit for bit the uninterrupted run */
        free(xa), free(xc), free(pa), free(pc);
    }
    char *state = xasprintf("%s/checkpoint-last/trainer_state.json", dir_c);
    char *json = read_file(state, NULL);
    assert_non_null(strstr(json, "\"global_step\":\t45"));
    free(json), free(state);
    result_free(&a), result_free(&b), result_free(&c);
    free(dir_a), free(dir_b), free(dir_c), free(resume);
}

/* Which elements of the arena decay, per the tensors' names. */
static void decay_flags(const char *const *sets, size_t n_sets, char *flags, size_t *n_params, run_session *out)
{
    plan p;
    errlist errs = {0};
    char *path = test_write("decay.cfg", cfg("plugin = \"adamw\";", NULL, NULL));
    assert_int_equal(plan_build(&p, path, (char *const *)sets, n_sets, &reg, &errs), 0);
    session_hints h = {VOCAB, 2, T_MAX, 4, 1};
    tftx_error err = {0};
    assert_int_equal(session_open(out, p.runs[0].config, &reg, &h, &err), TFTX_OK);
    *n_params = out->n_params;
    size_t covered = 0;
    for (size_t i = 0; i < out->n_ranges; i++) {
        const tftx_opt_range *r = &out->ranges[i];
        memset(flags + r->offset, r->group == TFTX_OPT_GROUP_DECAY ? 'd' : '-', r->n);
        covered += r->n;
    }
    assert_int_equal(covered, out->n_weights); /* every parameter in exactly one range */
    plan_free(&p);
    errlist_free(&errs);
}

static void no_decay_follows_tensor_names(void **s)
{
    (void)s;
    run_session ses;
    size_t n;
    char *flags = xcalloc(1, 1 << 20);
    decay_flags(NULL, 0, flags, &n, &ses);
    size_t nt = ses.model->n_tensors(ses.model_self), biases = 0;
    for (size_t i = 0; i < nt; i++) {
        const tftx_tensor_info *t = ses.model->tensor(ses.model_self, i);
        int is_bias = strstr(t->name, "bias") != NULL;
        biases += is_bias;
        for (size_t k = 0; k < t->numel; k++) assert_int_equal(flags[t->offset + k], is_bias ? '-' : 'd');
    }
    assert_true(biases >= 2);
    session_close(&ses);
    const char *none[] = {"optimizer.no_decay=[]"};
    decay_flags(none, 1, flags, &n, &ses);
    for (size_t k = 0; k < n; k++) assert_int_equal(flags[k], 'd');
    session_close(&ses);
    free(flags);
}

static int setup(void **s)
{
    (void)s;
    memset(&reg, 0, sizeof reg);
    registry_add_dirs(&reg, getenv("TFTX_BUILD_PLUGINS"), NULL);
    make_data(&data);
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    registry_free(&reg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(learns_and_reports),
        cmocka_unit_test(deterministic),
        cmocka_unit_test(divergence_is_reported_with_its_step),
        cmocka_unit_test(early_stopping),
        cmocka_unit_test(accumulation_matches_a_bigger_batch),
        cmocka_unit_test(clipping_bounds_the_update),
        cmocka_unit_test(checkpoint_saved),
        cmocka_unit_test(resume_continues_exactly),
        cmocka_unit_test(no_decay_follows_tensor_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
