/*
 * modeltest.c -- see modeltest.h.
 */
#include "modeltest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

static registry reg;
static const tftx_plugin_desc *be_desc;
static tftx_value *be_values;
static tftx_backend backend;

static const tftx_plugin_desc *find(tftx_kind kind, const char *name)
{
    char err[1024];
    const plugin *pl = registry_find(&reg, kind, name, err, sizeof err);
    if (!pl) fprintf(stderr, "%s\n", err);
    assert_non_null(pl);
    assert_non_null(pl->desc->ops);
    return pl->desc;
}

/* A section holding "key=value" items typed by the plugin's schema. */
static tnode *section(const tftx_plugin_desc *d, const char *const *params)
{
    tnode *sec = tnode_new(T_GROUP, NULL, "test", 0);
    for (size_t i = 0; params && params[i]; i++) {
        const char *eq = strchr(params[i], '=');
        assert_non_null(eq);
        char *key = xstrdup(params[i]);
        key[eq - params[i]] = 0;
        const char *val = eq + 1;
        const tftx_param_spec *spec = NULL;
        for (size_t k = 0; k < d->n_params; k++)
            if (strcmp(d->params[k].name, key) == 0) spec = &d->params[k];
        if (!spec) fprintf(stderr, "%s has no parameter '%s'\n", d->name, key);
        assert_non_null(spec);
        tnode *n;
        switch (spec->type) {
        case TFTX_PARAM_INT:
        case TFTX_PARAM_BOOL:
            n = tnode_new(spec->type == TFTX_PARAM_INT ? T_INT : T_BOOL, key, "test", 0);
            n->i = strtoll(val, NULL, 10);
            break;
        case TFTX_PARAM_FLOAT:
            n = tnode_new(T_FLOAT, key, "test", 0);
            n->f = strtod(val, NULL);
            break;
        default:
            n = tnode_new(T_STRING, key, "test", 0);
            n->s = xstrdup(val);
            break;
        }
        tnode_add(sec, n);
        free(key);
    }
    return sec;
}

void mt_init(void)
{
    memset(&reg, 0, sizeof reg);
    registry_add_dirs(&reg, getenv("TFTX_BUILD_PLUGINS"), NULL);
    services_set_context("test", "models", 20240607);
    /* TFTX_TEST_BACKEND=cuda runs the same tests on the GPU (ctest's
       *_cuda entries); without a device that is a skip (77), with the
       probe's reason */
    const char *be_name = getenv("TFTX_TEST_BACKEND");
    if (!be_name || !*be_name) be_name = "cpu";
    be_desc = find(TFTX_KIND_BACKEND, be_name);
    if (be_desc->probe) {
        tftx_error perr = {0};
        if (be_desc->probe(&tftx_host_services, &perr) != TFTX_OK) {
            printf("skipped: the %s backend is unavailable: %s\n", be_name, perr.message);
            registry_free(&reg);
            exit(77);
        }
    }
    /* TFTX_TEST_BACKEND_PARAMS="key=value ..." adds backend parameters
       (bools as 0 or 1), e.g. "fuse_bias=0 graphs=0" on the GPU */
    const char *params[16] = {"threads=2"};
    char *extra = xstrdup(getenv("TFTX_TEST_BACKEND_PARAMS") ? getenv("TFTX_TEST_BACKEND_PARAMS") : "");
    int np = 1;
    for (char *save = NULL, *tok = strtok_r(extra, " ", &save); tok && np < 15; tok = strtok_r(NULL, " ", &save))
        params[np++] = tok;
    tnode *sec = section(be_desc, params);
    free(extra);
    be_values = values_from_section(be_desc, sec);
    tnode_free(sec);
    tftx_error err = {0};
    void *self = NULL;
    tftx_status st = be_desc->create(&tftx_host_services, be_values, &self, &err);
    if (st != TFTX_OK) fprintf(stderr, "%s backend: %s\n", be_name, err.message);
    assert_int_equal(st, TFTX_OK);
    backend = (tftx_backend){be_desc->ops, self, be_desc->name};
}

void mt_done(void)
{
    if (backend.self) be_desc->destroy(backend.self);
    values_free(be_desc, be_values);
    registry_free(&reg);
}

void mt_set_backend_ops(const tftx_backend_ops *ops)
{
    backend.ops = ops ? ops : be_desc->ops;
}

const tftx_backend *mt_backend(void)
{
    return &backend;
}

tftx_status mt_create(mt_model *m, const char *plugin_name, const char *const *params, tftx_error *err)
{
    memset(m, 0, sizeof *m);
    memset(err, 0, sizeof *err);
    m->desc = find(TFTX_KIND_MODEL, plugin_name);
    assert_true(m->desc->ops_size >= sizeof(tftx_model_ops));
    m->ops = m->desc->ops;
    m->be = &backend;
    tnode *sec = section(m->desc, params);
    m->values = values_from_section(m->desc, sec);
    tnode_free(sec);
    tftx_status st = m->desc->create(&tftx_host_services, m->values, &m->self, err);
    if (st != TFTX_OK) {
        values_free(m->desc, m->values);
        m->values = NULL;
        m->self = NULL;
    }
    return st;
}

void mt_make(mt_model *m, const char *plugin_name, const char *const *params, int B, int T)
{
    tftx_error err;
    tftx_status st = mt_create(m, plugin_name, params, &err);
    if (st != TFTX_OK) fprintf(stderr, "create %s: %s\n", plugin_name, err.message);
    assert_int_equal(st, TFTX_OK);
    st = m->ops->bind(m->self, &backend, B, T, &err);
    if (st != TFTX_OK) fprintf(stderr, "bind %s: %s\n", plugin_name, err.message);
    assert_int_equal(st, TFTX_OK);
}

void mt_free(mt_model *m)
{
    if (m->self) m->desc->destroy(m->self);
    if (m->values) values_free(m->desc, m->values);
    memset(m, 0, sizeof *m);
}

static float *copy_arena(mt_model *m, const float *src)
{
    size_t n = m->ops->n_params(m->self);
    float *h = xmalloc(n * sizeof *h);
    backend.ops->copy_out(backend.self, h, src, n * sizeof *h);
    return h;
}

float *mt_params(mt_model *m)
{
    return copy_arena(m, m->ops->params(m->self));
}

float *mt_grads(mt_model *m)
{
    return copy_arena(m, m->ops->grads(m->self));
}

void mt_set_params(mt_model *m, const float *host)
{
    backend.ops->copy_in(backend.self, m->ops->params(m->self), host, m->ops->n_params(m->self) * sizeof(float));
}

void mt_zero_grads(mt_model *m)
{
    backend.ops->zero(backend.self, m->ops->grads(m->self), m->ops->n_params(m->self) * sizeof(float));
}

const tftx_tensor_info *mt_tensor(mt_model *m, const char *name)
{
    size_t n = m->ops->n_tensors(m->self);
    for (size_t i = 0; i < n; i++) {
        const tftx_tensor_info *t = m->ops->tensor(m->self, i);
        if (strcmp(t->name, name) == 0) return t;
    }
    return NULL;
}

char *mt_fixture(const char *rel)
{
    const char *src = getenv("TFTX_SOURCE_DIR");
    assert_non_null(src);
    return xasprintf("%s/tests/reference/fixtures/%s", src, rel);
}

void *mt_ref(const st_file *f, const char *name, const char *dtype, size_t numel)
{
    const st_tensor *t = st_find(f, name);
    if (!t) fprintf(stderr, "fixture has no tensor %s\n", name);
    assert_non_null(t);
    assert_string_equal(t->dtype, dtype);
    if (t->numel != numel) fprintf(stderr, "fixture %s: %zu elements, expected %zu\n", name, t->numel, numel);
    assert_int_equal(t->numel, numel);
    void *copy = xmalloc(t->nbytes ? t->nbytes : 1);
    memcpy(copy, t->data, t->nbytes);
    return copy;
}

double mt_rel_err(const float *a, const float *b, size_t n, double *abs_err)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= diff)) diff = d; /* NaN propagates */
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    if (abs_err) *abs_err = diff;
    return diff / (scale > 1e-6 ? scale : 1e-6);
}

void mt_expect_close(const char *what, const float *got, const float *want, size_t n, double tol)
{
    double abs_err;
    double rel = mt_rel_err(got, want, n, &abs_err);
    if (!(rel <= tol || abs_err <= MT_ABS_FLOOR)) {
        fprintf(stderr, "%s: relative error %.3g > %.1g (max |diff| %.3g over %zu values)\n", what, rel, tol, abs_err,
                n);
        for (size_t i = 0; i < n && i < 6; i++) fprintf(stderr, "  [%zu] got %.9g want %.9g\n", i, got[i], want[i]);
        fail();
    }
}

void mt_copy_config(const char *src_dir, const char *dst_dir)
{
    char *src = xasprintf("%s/config.json", src_dir), *dst = xasprintf("%s/config.json", dst_dir);
    char msg[1024];
    assert_int_equal(mio_mkdirs(dst_dir, msg, sizeof msg), 0);
    char *text = mio_read_text(src, NULL);
    assert_non_null(text);
    assert_int_equal(mio_write_text(dst, text, msg, sizeof msg), 0);
    free(text);
    free(src);
    free(dst);
}
