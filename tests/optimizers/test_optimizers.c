/*
 * test_optimizers.c -- the optimizer plugins (sgd, adam, adamw, adagrad)
 * against torch.optim.
 *
 * The reference trajectories come from tests/reference/optimizers.py
 * (fixtures in tests/reference/fixtures/optim_*.txt): for each case, the
 * weights after each of 10 steps from fixed weights and gradients. Each
 * plugin is loaded from the built-in plugin directory (TFTX_BUILD_PLUGINS),
 * created from the case's parameters through the host's own path
 * (schema_check_value, then values_from_section, so the schema's defaults
 * are the ones used), and stepped with prepare + step_cpu.
 *
 * Tolerance: |got - want| <= max(1e-6 * |want|, 1e-7), i.e. 1e-6 relative,
 * with an absolute floor of 1e-7 for weights near 0 (the weights are O(1),
 * so 1e-7 is about one float32 ulp of the values they were computed from).
 *
 * Also: results are bit-identical with 1, 2 and 3 OpenMP threads; slot
 * counts and names follow torch's state names; bad parameters (betas of
 * the wrong length, nesterov without momentum) are refused with a message.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/optimizer.h>

#include "runner.h"
#include "schema.h"
#include "testutil.h"

#define REL_TOL 1e-6
#define ABS_FLOOR 1e-7

static registry reg;

static const tftx_plugin_desc *load(const char *name)
{
    char err[1024];
    const plugin *pl = registry_find(&reg, TFTX_KIND_OPTIMIZER, name, err, sizeof err);
    if (!pl) fprintf(stderr, "%s\n", err);
    assert_non_null(pl);
    assert_non_null(pl->desc->ops);
    assert_true(pl->desc->ops_size >= sizeof(tftx_optimizer_ops));
    return pl->desc;
}

static const tftx_optimizer_ops *ops_of(const tftx_plugin_desc *d)
{
    return (const tftx_optimizer_ops *)d->ops;
}

static const tftx_param_spec *spec_of(const tftx_plugin_desc *d, const char *name)
{
    for (size_t i = 0; i < d->n_params; i++)
        if (strcmp(d->params[i].name, name) == 0) return &d->params[i];
    return NULL;
}

/* ------------------------------------------------ parameters as a section */

/* A tnode holding `text` (whitespace-separated numbers) typed for `spec`. */
static tnode *param_node(const tftx_param_spec *spec, const char *text)
{
    tnode *n;
    char *end;
    switch (spec->type) {
    case TFTX_PARAM_BOOL:
        n = tnode_new(T_BOOL, spec->name, "fixture", 0);
        n->i = strtoll(text, NULL, 10) != 0;
        return n;
    case TFTX_PARAM_FLOAT_LIST:
        n = tnode_new(T_LIST, spec->name, "fixture", 0);
        for (const char *p = text;; p = end) {
            double x = strtod(p, &end);
            if (end == p) break;
            tnode *kid = tnode_new(T_FLOAT, NULL, "fixture", 0);
            kid->f = x;
            tnode_add(n, kid);
        }
        return n;
    default:
        n = tnode_new(T_FLOAT, spec->name, "fixture", 0);
        n->f = strtod(text, NULL);
        return n;
    }
}

/* Add `name = text` to `section`; with `check`, through the host's schema
 * check (so the value must be one the host would accept). */
static void section_set(tnode *section, const tftx_plugin_desc *d, const char *name, const char *text, int check)
{
    const tftx_param_spec *spec = spec_of(d, name);
    if (!spec) fprintf(stderr, "%s has no parameter '%s'\n", d->name, name);
    assert_non_null(spec);
    tnode *raw = param_node(spec, text);
    if (!check) {
        tnode_add(section, raw);
        return;
    }
    errlist errs = {0};
    tnode *ok = schema_check_value(spec, raw, name, &errs);
    test_dump_errors(&errs);
    assert_non_null(ok);
    tnode_add(section, ok);
    tnode_free(raw);
    errlist_free(&errs);
}

typedef struct optim {
    const tftx_plugin_desc *desc;
    const tftx_optimizer_ops *ops;
    tftx_value *values;
    void *self;
    float lr, weight_decay;
} optim;

/* Create an instance from `section`; returns create()'s status, with the
 * message in err. */
static tftx_status optim_create(optim *o, const char *name, const tnode *section, tftx_error *err)
{
    memset(o, 0, sizeof *o);
    memset(err, 0, sizeof *err);
    o->desc = load(name);
    o->ops = ops_of(o->desc);
    o->values = values_from_section(o->desc, section);
    o->lr = (float)tftx_param(o->desc, o->values, "lr")->f;
    const tftx_value *wd = tftx_param(o->desc, o->values, "weight_decay");
    o->weight_decay = wd ? (float)wd->f : 0.0f;
    tftx_status st = o->desc->create(&tftx_host_services, o->values, &o->self, err);
    if (st != TFTX_OK) {
        values_free(o->desc, o->values);
        o->values = NULL;
    }
    return st;
}

static void optim_free(optim *o)
{
    if (o->self) o->desc->destroy(o->self);
    values_free(o->desc, o->values);
}

/* Slots for n elements, each at its slot_init value. */
static float **slots_new(const optim *o, size_t n)
{
    int ns = o->ops->n_slots(o->self);
    assert_in_range(ns, 0, TFTX_OPT_MAX_SLOTS);
    float **s = xcalloc(TFTX_OPT_MAX_SLOTS, sizeof *s);
    for (int k = 0; k < ns; k++) {
        s[k] = xmalloc(n * sizeof **s);
        float init = o->ops->slot_init(o->self, k);
        for (size_t i = 0; i < n; i++) s[k][i] = init;
    }
    return s;
}

static void slots_free(float **s)
{
    for (int k = 0; k < TFTX_OPT_MAX_SLOTS; k++) free(s[k]);
    free(s);
}

/* One update of elements [0, n) at step t (1-based), given as two ranges
 * of the decayed group (the no_decay group's scalars, weight decay 0, go
 * unused: PyTorch's reference has one parameter group). */
static void optim_step(const optim *o, int64_t t, size_t n, float *w, const float *g, float **slots)
{
    tftx_opt_step st[TFTX_OPT_GROUPS] = {{.step = t, .lr = o->lr, .weight_decay = o->weight_decay},
                                         {.step = t, .lr = o->lr}};
    for (int k = 0; k < TFTX_OPT_GROUPS; k++) o->ops->prepare(o->self, &st[k]);
    const tftx_opt_range ranges[2] = {{0, n / 2, TFTX_OPT_GROUP_DECAY}, {n / 2, n - n / 2, TFTX_OPT_GROUP_DECAY}};
    o->ops->step_cpu(o->self, st, ranges, 2, w, g, (float *const *)slots);
}

/* ------------------------------------------------ fixtures */

#define MAX_CASES 64
#define MAX_STEPS 16

typedef struct inputs {
    char *cases[MAX_CASES];
    size_t n_cases, n, steps;
    float *w0;
    float *grad[MAX_STEPS];
} inputs;

static char *fixture_path(const char *file)
{
    const char *src = getenv("TFTX_SOURCE_DIR");
    assert_non_null(src);
    return xasprintf("%s/tests/reference/fixtures/%s", src, file);
}

/* Parse exactly n floats from text into out (allocated). */
static float *parse_floats(const char *text, size_t n)
{
    float *out = xmalloc((n ? n : 1) * sizeof *out);
    const char *p = text;
    for (size_t i = 0; i < n; i++) {
        char *end;
        out[i] = strtof(p, &end);
        if (end == p) fprintf(stderr, "fixture line has %zu values, expected %zu\n", i, n);
        assert_true(end != p);
        p = end;
    }
    return out;
}

static char *next_line(char **cursor)
{
    char *line = *cursor;
    if (!*line) return NULL;
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = 0, *cursor = nl + 1;
    else
        *cursor = line + strlen(line);
    return line;
}

static void inputs_load(inputs *in)
{
    memset(in, 0, sizeof *in);
    char *path = fixture_path("optim_inputs.txt");
    char *text = read_file(path, NULL);
    if (!text) fprintf(stderr, "cannot read %s\n", path);
    assert_non_null(text);
    char *cur = text, *line;
    while ((line = next_line(&cur))) {
        if (strncmp(line, "cases ", 6) == 0) {
            for (char *save, *tok = strtok_r(line + 6, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                assert_true(in->n_cases < MAX_CASES);
                in->cases[in->n_cases++] = xstrdup(tok);
            }
        } else if (strncmp(line, "n ", 2) == 0) {
            in->n = strtoul(line + 2, NULL, 10);
        } else if (strncmp(line, "steps ", 6) == 0) {
            in->steps = strtoul(line + 6, NULL, 10);
            assert_true(in->steps <= MAX_STEPS);
        } else if (strncmp(line, "w0 ", 3) == 0) {
            in->w0 = parse_floats(line + 3, in->n);
        } else if (strncmp(line, "grad ", 5) == 0) {
            char *end;
            long t = strtol(line + 5, &end, 10);
            assert_in_range(t, 1, (long)in->steps);
            in->grad[t - 1] = parse_floats(end, in->n);
        }
    }
    assert_true(in->n > 0 && in->w0);
    for (size_t t = 0; t < in->steps; t++) assert_non_null(in->grad[t]);
    free(text);
    free(path);
}

static void inputs_free(inputs *in)
{
    for (size_t i = 0; i < in->n_cases; i++) free(in->cases[i]);
    for (size_t t = 0; t < in->steps; t++) free(in->grad[t]);
    free(in->w0);
}

typedef struct case_stats {
    size_t bad;   /* weights out of tolerance */
    size_t exact; /* weights equal to torch's bit for bit */
    size_t total;
    double worst; /* largest |got - want| / tolerance */
} case_stats;

/* Run one case file against its plugin. */
static case_stats run_case(const inputs *in, const char *name)
{
    char *file = xasprintf("optim_%s.txt", name);
    char *path = fixture_path(file);
    char *text = read_file(path, NULL);
    if (!text) fprintf(stderr, "cannot read %s\n", path);
    assert_non_null(text);

    optim o = {0};
    tnode *section = tnode_new(T_GROUP, NULL, "fixture", 0);
    float *w = xmalloc(in->n * sizeof *w);
    memcpy(w, in->w0, in->n * sizeof *w);
    float **slots = NULL;
    case_stats cs = {0};
    size_t steps_seen = 0;

    char *cur = text, *line;
    while ((line = next_line(&cur))) {
        if (strncmp(line, "optimizer ", 10) == 0) {
            o.desc = load(line + 10);
        } else if (strncmp(line, "param ", 6) == 0) {
            assert_non_null(o.desc);
            char *sp = strchr(line + 6, ' ');
            assert_non_null(sp);
            *sp = 0;
            section_set(section, o.desc, line + 6, sp + 1, 1);
        } else if (strncmp(line, "step ", 5) == 0) {
            if (!slots) {
                tftx_error err;
                tftx_status st = optim_create(&o, o.desc->name, section, &err);
                if (st != TFTX_OK) fprintf(stderr, "%s: create failed: %s\n", name, err.message);
                assert_int_equal(st, TFTX_OK);
                slots = slots_new(&o, in->n);
            }
            char *end;
            long t = strtol(line + 5, &end, 10);
            assert_int_equal(t, (long)steps_seen + 1);
            optim_step(&o, t, in->n, w, in->grad[t - 1], slots);
            float *want = parse_floats(end, in->n);
            for (size_t i = 0; i < in->n; i++) {
                double diff = fabs((double)w[i] - (double)want[i]);
                double tol = fmax(REL_TOL * fabs((double)want[i]), ABS_FLOOR);
                cs.total++;
                cs.exact += w[i] == want[i];
                if (diff / tol > cs.worst || isnan(diff)) cs.worst = isnan(diff) ? INFINITY : diff / tol;
                if (!(diff <= tol)) {
                    if (cs.bad < 5)
                        fprintf(stderr, "%s: step %ld, element %zu: got %.9g, torch %.9g\n", name, t, i, (double)w[i],
                                (double)want[i]);
                    cs.bad++;
                }
            }
            free(want);
            steps_seen++;
        }
    }
    assert_int_equal(steps_seen, in->steps);
    slots_free(slots);
    optim_free(&o);
    tnode_free(section);
    free(w);
    free(text);
    free(path);
    free(file);
    return cs;
}

static void test_reference_trajectories(void **state)
{
    (void)state;
    inputs in;
    inputs_load(&in);
    assert_true(in.n_cases >= 20);
    size_t failed = 0;
    for (size_t c = 0; c < in.n_cases; c++) {
        case_stats cs = run_case(&in, in.cases[c]);
        printf("  %-22s %5.1f%% bit-identical to torch, worst error %.2f of the tolerance%s\n", in.cases[c],
               100.0 * (double)cs.exact / (double)cs.total, cs.worst, cs.bad ? "  FAILED" : "");
        failed += cs.bad != 0;
    }
    inputs_free(&in);
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------ thread independence */

/* Deterministic values in about [-scale, scale] without a generator. */
static float hashed(size_t i, uint32_t salt, float scale)
{
    uint32_t x = (uint32_t)i * 2654435761u ^ salt * 2246822519u;
    x ^= x >> 15, x *= 2246822519u, x ^= x >> 13;
    return scale * ((float)(x & 0xffffff) / 8388608.0f - 1.0f);
}

/* The whole state (weights and slots) after 3 steps with `threads` threads. */
static float *run_threads(const optim *o, size_t n, int threads)
{
    omp_set_num_threads(threads);
    int seen = 0;
#pragma omp parallel
    {
#pragma omp single
        seen = omp_get_num_threads();
    }
    assert_int_equal(seen, threads); /* the plugin's loop will use as many */
    int ns = o->ops->n_slots(o->self);
    float *w = xmalloc(n * sizeof *w), *g = xmalloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) w[i] = hashed(i, 1, 1.0f);
    float **slots = slots_new(o, n);
    for (int t = 1; t <= 3; t++) {
        for (size_t i = 0; i < n; i++) g[i] = hashed(i, (uint32_t)t + 10, t == 2 ? 0.01f : 1.0f);
        optim_step(o, t, n, w, g, slots);
    }
    float *all = xmalloc((size_t)(1 + ns) * n * sizeof *all);
    memcpy(all, w, n * sizeof *w);
    for (int k = 0; k < ns; k++) memcpy(all + (size_t)(1 + k) * n, slots[k], n * sizeof *w);
    free(w);
    free(g);
    slots_free(slots);
    return all;
}

static void test_thread_count_independent(void **state)
{
    (void)state;
    static const struct {
        const char *plugin, *param, *value;
    } CONFIGS[] = {
        {"sgd", NULL, NULL},      {"sgd", "momentum", "0.9"}, {"sgd", "nesterov", "1"},  {"adam", "amsgrad", "0"},
        {"adam", "amsgrad", "1"}, {"adamw", "amsgrad", "0"},  {"adamw", "amsgrad", "1"}, {"adagrad", NULL, NULL},
    };
    const size_t n = 100003; /* odd: uneven chunks and scalar tails */
    int saved = omp_get_max_threads();
    for (size_t c = 0; c < sizeof CONFIGS / sizeof *CONFIGS; c++) {
        tnode *section = tnode_new(T_GROUP, NULL, "test", 0);
        const tftx_plugin_desc *d = load(CONFIGS[c].plugin);
        section_set(section, d, "weight_decay", "0.01", 1);
        if (CONFIGS[c].param) section_set(section, d, CONFIGS[c].param, CONFIGS[c].value, 1);
        if (strcmp(CONFIGS[c].plugin, "sgd") == 0 && CONFIGS[c].param && strcmp(CONFIGS[c].param, "nesterov") == 0)
            section_set(section, d, "momentum", "0.9", 1);
        optim o;
        tftx_error err;
        assert_int_equal(optim_create(&o, d->name, section, &err), TFTX_OK);
        size_t total = (size_t)(1 + o.ops->n_slots(o.self)) * n;
        float *one = run_threads(&o, n, 1);
        for (int threads = 2; threads <= 3; threads++) {
            float *many = run_threads(&o, n, threads);
            if (memcmp(one, many, total * sizeof *one) != 0)
                fprintf(stderr, "%s %s=%s: %d threads differ from 1\n", CONFIGS[c].plugin,
                        CONFIGS[c].param ? CONFIGS[c].param : "-", CONFIGS[c].value ? CONFIGS[c].value : "-", threads);
            assert_memory_equal(one, many, total * sizeof *one);
            free(many);
        }
        free(one);
        optim_free(&o);
        tnode_free(section);
    }
    omp_set_num_threads(saved);
}

/* ------------------------------------------------ slots */

static void expect_slots(const char *plugin_name, const char *param, const char *value, const char *const *names,
                         int count, float init)
{
    tnode *section = tnode_new(T_GROUP, NULL, "test", 0);
    const tftx_plugin_desc *d = load(plugin_name);
    if (param) section_set(section, d, param, value, 1);
    optim o;
    tftx_error err;
    assert_int_equal(optim_create(&o, plugin_name, section, &err), TFTX_OK);
    assert_int_equal(o.ops->n_slots(o.self), count);
    for (int k = 0; k < count; k++) {
        assert_string_equal(o.ops->slot_name(o.self, k), names[k]);
        assert_true(o.ops->slot_init(o.self, k) == init);
    }
    assert_null(o.ops->slot_name(o.self, count));
    assert_null(o.ops->slot_name(o.self, -1));
    optim_free(&o);
    tnode_free(section);
}

static void test_slots(void **state)
{
    (void)state;
    static const char *const MOMENTUM[] = {"momentum_buffer"};
    static const char *const ADAM[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    static const char *const SUM[] = {"sum"};
    expect_slots("sgd", NULL, NULL, NULL, 0, 0);
    expect_slots("sgd", "momentum", "0.9", MOMENTUM, 1, 0);
    expect_slots("adam", NULL, NULL, ADAM, 2, 0);
    expect_slots("adam", "amsgrad", "1", ADAM, 3, 0);
    expect_slots("adamw", NULL, NULL, ADAM, 2, 0);
    expect_slots("adamw", "amsgrad", "1", ADAM, 3, 0);
    expect_slots("adagrad", NULL, NULL, SUM, 1, 0);
    expect_slots("adagrad", "initial_accumulator_value", "0.25", SUM, 1, 0.25f);
}

/* ------------------------------------------------ bad parameters */

static void expect_refused(const char *plugin_name, const char *param, const char *value, const char *fragment)
{
    tnode *section = tnode_new(T_GROUP, NULL, "test", 0);
    const tftx_plugin_desc *d = load(plugin_name);
    section_set(section, d, param, value, 0);
    optim o;
    tftx_error err;
    tftx_status st = optim_create(&o, plugin_name, section, &err);
    if (st == TFTX_OK || !strstr(err.message, fragment))
        fprintf(stderr, "%s %s=%s: status %d, message '%s', wanted '%s'\n", plugin_name, param, value, st, err.message,
                fragment);
    assert_int_equal(st, TFTX_ERR_INVALID);
    assert_non_null(strstr(err.message, fragment));
    assert_null(o.self);
    tnode_free(section);
}

static void test_bad_parameters(void **state)
{
    (void)state;
    const char *adams[] = {"adam", "adamw"};
    for (int k = 0; k < 2; k++) {
        expect_refused(adams[k], "betas", "0.9", "betas must be a list of 2 numbers");
        expect_refused(adams[k], "betas", "0.9 0.99 0.999", "got 3 numbers");
        expect_refused(adams[k], "betas", "", "got 0 numbers");
        expect_refused(adams[k], "betas", "0.9 1", "betas[1] must be in [0, 1)");
    }
    expect_refused("sgd", "nesterov", "1", "nesterov needs momentum > 0");
}

int main(void)
{
    memset(&reg, 0, sizeof reg);
    registry_add_dirs(&reg, getenv("TFTX_BUILD_PLUGINS"), NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_trajectories),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_bad_parameters),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    registry_free(&reg);
    return rc;
}
