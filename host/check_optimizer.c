/*
 * check_optimizer.c -- `tftx check optimizer NAME`: conformance checks of an
 * optimizer plugin (what each check does and why: check_optimizer.h).
 *
 * Defines the command (cmd_check) and the run (check_optimizer): loading the
 * plugin, its --set parameters, the schema and function-table checks, the
 * report with one verdict line per check, and the instance and OpenMP
 * helpers the other checks share (check_optimizer_int.h). The convergence
 * and trajectory checks are in check_optimizer_runs.c.
 *
 * OpenMP: the host does not link an OpenMP runtime. The plugin's step loop
 * (TFTX_OPT_CPU_STEP) runs on the runtime the plugin brought with it; the
 * thread count is set through that runtime, found with
 * dlopen(RTLD_NOLOAD) once the plugin is loaded (GNU libgomp, LLVM libomp,
 * Intel libiomp5). A plugin that loads none has a serial step.
 */
#include "check_optimizer.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/optimizer.h>

#include "check_optimizer_int.h"
#include "config.h"
#include "runner.h"
#include "schema.h"
#include "tree.h"

/* ------------------------------------------------------------ problem sizes */

#define QUAD_DIM 1000
#define THREAD_DIM 10007 /* threads: odd, so the two halves differ in size */

/* ------------------------------------------------------------ OpenMP */

static void omp_find(omp_runtime *rt)
{
    static const char *const LIBS[] = {"libgomp.so.1", "libomp.so.5", "libomp.so", "libiomp5.so"};
    memset(rt, 0, sizeof *rt);
    for (size_t i = 0; i < sizeof LIBS / sizeof *LIBS; i++) {
        void *h = dlopen(LIBS[i], RTLD_LAZY | RTLD_NOLOAD); /* only if already loaded; kept open */
        if (!h) continue;
        *(void **)&rt->set_num_threads = dlsym(h, "omp_set_num_threads");
        *(void **)&rt->get_max_threads = dlsym(h, "omp_get_max_threads");
        *(void **)&rt->set_dynamic = dlsym(h, "omp_set_dynamic");
        *(void **)&rt->get_dynamic = dlsym(h, "omp_get_dynamic");
        if (rt->set_num_threads && rt->get_max_threads && rt->set_dynamic && rt->get_dynamic) {
            rt->lib = LIBS[i];
            return;
        }
    }
    memset(rt, 0, sizeof *rt);
}

/* Use exactly n threads in the plugin's parallel regions (no-op without a runtime). */
void chk_omp_threads(const omp_runtime *rt, int n)
{
    if (!rt->lib) return;
    rt->set_dynamic(0);
    rt->set_num_threads(n);
}

/* ------------------------------------------------------------ subject */

void *chk_instance_new(const subject *s, tftx_error *err)
{
    void *self = NULL;
    memset(err, 0, sizeof *err);
    services_set_context(s->d->name, NULL, 0);
    tftx_status st = s->d->create(&tftx_host_services, s->values, &self, err);
    services_set_context("host", NULL, 0);
    if (st != TFTX_OK) {
        if (!err->message[0]) snprintf(err->message, sizeof err->message, "create() returned %d", (int)st);
        return NULL;
    }
    return self;
}

/* ------------------------------------------------------------ report */

typedef struct report {
    FILE *out;
    int passed, failed, skipped;
    strbuf failed_names;
} report;

static void verdict(report *rp, const char *check, int pass, const char *detail)
{
    fprintf(rp->out, "%s %-12s %s\n", pass ? "PASS" : "FAIL", check, detail);
    fflush(rp->out);
    if (pass) {
        rp->passed++;
    } else {
        sb_printf(&rp->failed_names, "%s%s", rp->failed ? ", " : "", check);
        rp->failed++;
    }
}

static void sb_clear(strbuf *sb)
{
    sb->len = 0;
    if (sb->data) sb->data[0] = 0;
}

static void skip(report *rp, const char *check, const char *why)
{
    fprintf(rp->out, "SKIP %-12s %s\n", check, why);
    rp->skipped++;
}

/* ------------------------------------------------------------ schema, ops */

const tftx_param_spec *chk_find_spec(const tftx_plugin_desc *d, const char *name)
{
    for (size_t i = 0; i < d->n_params; i++)
        if (d->params[i].name && strcmp(d->params[i].name, name) == 0) return &d->params[i];
    return NULL;
}

static const char *type_name(tftx_param_type t)
{
    static const char *const N[] = {"?",        "an int",  "a float",      "a bool",
                                    "a string", "an enum", "a float list", "a string list"};
    return t >= TFTX_PARAM_INT && t <= TFTX_PARAM_STRING_LIST ? N[t] : "of an unknown type";
}

/* The loader already refused unsound schemas; the optimizer conventions. */
static int check_schema(const subject *s, strbuf *why)
{
    const tftx_plugin_desc *d = s->d;
    const tftx_param_spec *lr = chk_find_spec(d, "lr"), *wd = chk_find_spec(d, "weight_decay");
    int ok = 1;
    if (!lr) {
        sb_printf(why, "declares no parameter 'lr' (every optimizer needs a FLOAT lr: the schedule scales it)");
        ok = 0;
    } else if (lr->type != TFTX_PARAM_FLOAT) {
        sb_printf(why, "'lr' is %s, expected a float (the host refuses such an optimizer)", type_name(lr->type));
        ok = 0;
    }
    if (wd && wd->type != TFTX_PARAM_FLOAT) {
        sb_printf(why, "%s'weight_decay' is %s, expected a float", ok ? "" : "; ", type_name(wd->type));
        ok = 0;
    }
    if (ok) {
        sb_printf(why,
                  "%zu parameters pass the loader's checks (defaults in range, enum defaults among their "
                  "choices, none twice); lr is a float (default %g)",
                  d->n_params, lr->def_float);
        if (wd)
            sb_printf(why, "; weight_decay is a float (default %g)", wd->def_float);
        else
            sb_printf(why, "; no weight_decay");
    }
    return ok;
}

static int check_ops(subject *s, strbuf *why)
{
    const tftx_plugin_desc *d = s->d;
    const tftx_optimizer_ops *o = d->ops;
    size_t need = offsetof(tftx_optimizer_ops, step_cpu) + sizeof o->step_cpu;
    if (!o) {
        sb_printf(why, "no function table (ops is NULL)");
        return 0;
    }
    if (d->ops_size < need) {
        sb_printf(why, "ops_size %zu is smaller than the %zu bytes up to step_cpu", d->ops_size, need);
        return 0;
    }
    const char *missing = !o->n_slots     ? "n_slots"
                          : !o->slot_name ? "slot_name"
                          : !o->slot_init ? "slot_init"
                          : !o->prepare   ? "prepare"
                          : !o->step_cpu  ? "step_cpu"
                                          : NULL;
    if (missing) {
        sb_printf(why, "%s is NULL", missing);
        return 0;
    }
    s->ops = o;
    tftx_error err;
    void *self = chk_instance_new(s, &err);
    if (!self) {
        sb_printf(why, "create() refused the parameters: %s", err.message);
        return 0;
    }
    int ok = 1, n = o->n_slots(self);
    if (n < 0 || n > TFTX_OPT_MAX_SLOTS) {
        sb_printf(why, "n_slots() = %d, expected 0..%d", n, TFTX_OPT_MAX_SLOTS);
        ok = 0;
    }
    for (int k = 0; ok && k < n; k++) {
        const char *name = o->slot_name(self, k);
        float init = o->slot_init(self, k);
        if (!name || !name[0]) {
            sb_printf(why, "slot_name(%d) is %s", k, name ? "empty" : "NULL");
            ok = 0;
        } else if (!isfinite(init)) {
            sb_printf(why, "slot_init(%d) = %g is not finite", k, (double)init);
            ok = 0;
        }
        for (int j = 0; ok && j < k; j++)
            if (strcmp(o->slot_name(self, j), name) == 0) {
                sb_printf(why, "slots %d and %d are both named '%s'", j, k, name);
                ok = 0;
            }
    }
    if (ok) {
        void *again = chk_instance_new(s, &err);
        if (!again) {
            sb_printf(why, "a second create() with the same parameters failed: %s", err.message);
            ok = 0;
        } else {
            if (o->n_slots(again) != n) {
                sb_printf(why, "n_slots() is %d in one instance and %d in another with the same parameters", n,
                          o->n_slots(again));
                ok = 0;
            }
            d->destroy(again);
        }
    }
    if (ok) {
        sb_printf(why, "table of %zu bytes (the host calls the first %zu); %d slot%s", d->ops_size, need, n,
                  n == 1 ? "" : "s");
        for (int k = 0; k < n; k++)
            sb_printf(why, "%s%s (starts at %g)", k ? ", " : ": ", o->slot_name(self, k),
                      (double)o->slot_init(self, k));
        int has_cuda = d->ops_size >= offsetof(tftx_optimizer_ops, step_cuda) + sizeof o->step_cuda && o->step_cuda;
        sb_printf(why, "; step_cuda %s", has_cuda ? "present (not exercised here)" : "absent");
        s->n_slots = n;
    }
    d->destroy(self);
    return ok;
}

/* ------------------------------------------------------------ parameters */

/* The --set values as a resolved optimizer section (schema-checked). */
static tnode *section_from_sets(const tftx_plugin_desc *d, char *const *sets, size_t n_sets, errlist *errs)
{
    tnode *root = tnode_new(T_GROUP, NULL, "--set", 0);
    for (size_t i = 0; i < n_sets; i++) {
        if (!strchr(sets[i], '=') || sets[i][0] == '=') {
            errlist_add(errs, "--set %s: expected KEY=VALUE, KEY a parameter of the plugin (lr=0.01)", sets[i]);
            continue;
        }
        char *a = strncmp(sets[i], "optimizer.", 10) == 0 ? xstrdup(sets[i]) : xasprintf("optimizer.%s", sets[i]);
        config_apply_set(root, a, errs);
        free(a);
    }
    tnode *section = tnode_new(T_GROUP, "optimizer", "--set", 0);
    const tnode *given = tnode_get(root, "optimizer");
    const char **names = xcalloc(d->n_params + 1, sizeof *names);
    for (size_t i = 0; i < d->n_params; i++) names[i] = d->params[i].name;
    for (size_t k = 0; given && given->type == T_GROUP && k < given->n_kids; k++) {
        const tnode *kid = given->kids[k];
        const tftx_param_spec *spec = chk_find_spec(d, kid->name);
        if (!spec) {
            const char *hint = closest_name(kid->name, names, d->n_params);
            errlist_add(errs, "%s: unknown parameter '%s' for optimizer plugin '%s'%s%s%s", tnode_where(kid), kid->name,
                        d->name, hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
            continue;
        }
        char *path = xasprintf("optimizer.%s", kid->name);
        tnode *v = schema_check_value(spec, kid, path, errs);
        if (v) tnode_add(section, v);
        free(path);
    }
    free(names);
    tnode_free(root);
    if (errs->n) {
        tnode_free(section);
        return NULL;
    }
    return section;
}

/* ------------------------------------------------------------ the run */

static const char *const CHECKS[] = {"schema",      "ops",     "quadratic", "rosenbrock", "restore",
                                     "determinism", "threads", "nan",       "ranges"};
#define N_CHECKS (sizeof CHECKS / sizeof *CHECKS)

static int plugin_exists(registry *reg, const char *name)
{
    size_t n;
    char **names = registry_names(reg, TFTX_KIND_OPTIMIZER, &n);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        found |= strcmp(names[i], name) == 0;
        free(names[i]);
    }
    free(names);
    return found;
}

static void summary(report *rp, const char *name)
{
    if (!rp->failed)
        fprintf(rp->out, "optimizer %s: all %zu checks passed\n", name, N_CHECKS);
    else
        fprintf(rp->out, "optimizer %s: %d of %zu checks failed (%s)%s\n", name, rp->failed, N_CHECKS,
                rp->failed_names.data, rp->skipped ? ", the rest skipped" : "");
}

int check_optimizer(registry *reg, const char *name, char *const *sets, size_t n_sets, FILE *out)
{
    if (!plugin_exists(reg, name)) {
        fprintf(stderr, "tftx: no optimizer plugin named '%s' (looked for tftx_optimizer_%s.so in:", name, name);
        for (size_t i = 0; i < reg->n_dirs; i++) fprintf(stderr, " %s", reg->dirs[i]);
        fprintf(stderr, "; add a directory with TFTX_PLUGIN_PATH)\n");
        return 2;
    }
    report rp = {.out = out};
    char err[1024];
    const plugin *pl = registry_find(reg, TFTX_KIND_OPTIMIZER, name, err, sizeof err);
    if (!pl) {
        fprintf(out, "optimizer %s: the loader refused it\n", name);
        verdict(&rp, "schema", 0, err);
        for (size_t i = 1; i < N_CHECKS; i++) skip(&rp, CHECKS[i], "the plugin does not load");
        summary(&rp, name);
        sb_free(&rp.failed_names);
        return 1;
    }
    subject s = {.pl = pl, .d = pl->desc};
    errlist errs = {0};
    tnode *section = section_from_sets(s.d, sets, n_sets, &errs);
    if (!section) {
        errlist_print(&errs, "tftx: ");
        errlist_free(&errs);
        return 2;
    }
    s.values = values_from_section(s.d, section);
    tnode_free(section);
    fprintf(out, "optimizer %s %s: %s\n  file: %s\n", s.d->name, s.d->version, s.d->summary, pl->path);

    strbuf why = {0};
    int ok = check_schema(&s, &why);
    verdict(&rp, "schema", ok, why.data);
    if (ok) {
        const tftx_value *lr = tftx_param(s.d, s.values, "lr"), *wd = tftx_param(s.d, s.values, "weight_decay");
        s.lr = lr->f;
        s.lr_set = lr->is_set;
        s.wd = wd ? wd->f : 0;
    }
    sb_clear(&why);
    if (ok && !pl->available) {
        sb_printf(&why, "the plugin cannot run here: %s", pl->why);
        ok = 0;
    } else if (ok) {
        ok = check_ops(&s, &why);
    }
    if (ok || why.len)
        verdict(&rp, "ops", ok, why.data);
    else
        skip(&rp, "ops", "needs a sound schema");
    if (!ok) {
        for (size_t i = 2; i < N_CHECKS; i++) skip(&rp, CHECKS[i], "needs a sound schema and function table");
    } else {
        omp_find(&s.omp);
        s.threads = s.omp.lib ? s.omp.get_max_threads() : 1;
        int dynamic = s.omp.lib ? s.omp.get_dynamic() : 0;
        problem quad, rosen, big;
        chk_quad_make(&quad, QUAD_DIM);
        chk_rosen_make(&rosen);
        chk_quad_make(&big, THREAD_DIM);
        char goal[128];
        snprintf(goal, sizeof goal, "loss below %g of its start (%.4g)", QUAD_GOAL,
                 quad.loss_grad(&quad, quad.w0, NULL));

        struct {
            const char *name;
            int (*run)(const subject *, const problem *, strbuf *);
            const problem *q;
        } traj[] = {{"restore", chk_restore, &big},
                    {"determinism", chk_determinism, &big},
                    {"threads", chk_threads, &big},
                    {"nan", chk_nan, &big},
                    {"ranges", chk_ranges, &big}};

        chk_omp_threads(&s.omp, 1); /* small problems: a team costs more than it saves */
        sb_clear(&why);
        ok = chk_converges(&s, &quad, goal, "loss ratio", &why);
        verdict(&rp, "quadratic", ok, why.data);
        sb_clear(&why);
        char rgoal[128];
        snprintf(rgoal, sizeof rgoal, "within %g of (1, 1) from (-1.2, 1)", ROSEN_GOAL);
        ok = chk_converges(&s, &rosen, rgoal, "distance", &why);
        verdict(&rp, "rosenbrock", ok, why.data);
        chk_omp_threads(&s.omp, s.threads);
        for (size_t i = 0; i < sizeof traj / sizeof *traj; i++) {
            sb_clear(&why);
            ok = traj[i].run(&s, traj[i].q, &why);
            verdict(&rp, traj[i].name, ok, why.data);
        }
        if (s.omp.lib) s.omp.set_dynamic(dynamic);
        chk_problem_free(&quad);
        chk_problem_free(&rosen);
        chk_problem_free(&big);
    }
    summary(&rp, name);
    sb_free(&why);
    sb_free(&rp.failed_names);
    values_free(s.d, s.values);
    return rp.failed ? 1 : 0;
}

static const char USAGE[] = "usage: tftx check optimizer NAME [--set KEY=VALUE]...\n"
                            "  conformance checks of an optimizer plugin: schema, function table, convergence on a\n"
                            "  quadratic and on Rosenbrock's function, state save/restore, determinism (runs and\n"
                            "  thread counts), NaN gradients; KEY is a parameter of the plugin (--set lr=0.01)\n";

int cmd_check(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "optimizer") != 0) {
        if (argc >= 1) {
            tftx_kind k;
            if (kind_parse(argv[0], &k) == 0)
                fprintf(stderr, "tftx: check: only optimizer plugins have conformance checks so far\n");
            else
                fprintf(stderr, "tftx: check: unknown plugin kind '%s'\n", argv[0]);
        }
        fputs(USAGE, stderr);
        return 2;
    }
    const char *name = NULL;
    char **sets = xcalloc((size_t)argc + 1, sizeof *sets);
    size_t n_sets = 0;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--set") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tftx: --set needs a value\n");
                rc = 2;
            } else {
                sets[n_sets++] = argv[++i];
            }
        } else if (strncmp(a, "--set=", 6) == 0) {
            sets[n_sets++] = argv[i] + 6;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            free(sets);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tftx: check: unknown option '%s'\n%s", a, USAGE);
            rc = 2;
        } else if (!name) {
            name = a;
        } else {
            fprintf(stderr, "tftx: check: unexpected argument '%s'\n%s", a, USAGE);
            rc = 2;
        }
    }
    if (!rc && !name) {
        fprintf(stderr, "tftx: check: which optimizer?\n%s", USAGE);
        rc = 2;
    }
    if (!rc) {
        registry reg;
        registry_init(&reg);
        rc = check_optimizer(&reg, name, sets, n_sets, stdout);
        registry_free(&reg);
    }
    free(sets);
    return rc;
}
