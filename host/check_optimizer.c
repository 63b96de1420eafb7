/*
 * check_optimizer.c -- `tftx check optimizer NAME`: conformance checks of an
 * optimizer plugin (what each check does and why: check_optimizer.h).
 *
 * The checks drive the plugin the way the host's training loop does: one
 * create() per instance, weights, gradients and slots as host-owned float
 * arrays, and per step prepare() then step_cpu() with the step count
 * (1-based), the learning rate and the weight decay in tftx_opt_step.
 * Gradients come from closed-form problems computed here in double.
 *
 * OpenMP: the host does not link an OpenMP runtime. The plugin's step loop
 * (TFTX_OPT_CPU_STEP) runs on the runtime the plugin brought with it; the
 * thread count is set through that runtime, found with
 * dlopen(RTLD_NOLOAD) once the plugin is loaded (GNU libgomp, LLVM libomp,
 * Intel libiomp5). A plugin that loads none has a serial step.
 */
#include "check_optimizer.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/optimizer.h>
#include <tftx/random.h>

#include "config.h"
#include "runner.h"
#include "schema.h"
#include "tree.h"

/* ------------------------------------------------------------ budgets */

#define QUAD_DIM 1000
#define QUAD_GOAL 1e-3     /* loss / starting loss */
#define QUAD_BUDGET 5000   /* steps per learning rate */
#define ROSEN_GOAL 1e-2    /* distance to (1, 1) */
#define ROSEN_BUDGET 50000 /* steps per learning rate */
#define TRAJ_DIM 1000      /* restore, determinism, nan */
#define THREAD_DIM 10007   /* threads: odd, so the two halves differ in size */
#define RESTORE_BEFORE 7   /* steps before the copy */
#define RESTORE_AFTER 13   /* steps compared after it */
#define TRAJ_STEPS 20      /* determinism, threads */
#define NAN_WARMUP 5       /* steps before the step with a NaN gradient */
#define NAN_INDEX 437      /* the element that gets it */

static const double LR_LADDER[] = {1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0};
#define N_LADDER (sizeof LR_LADDER / sizeof *LR_LADDER)

/* Streams of the problems' random numbers (tftx_uniform_at). */
enum { RNG_KEY = 0x746674785f636b31ull };
enum { S_CURVATURE = 1, S_CENTRE = 2, S_START = 3, S_NOISE = 4 };

/* ------------------------------------------------------------ OpenMP */

typedef struct omp_runtime {
    const char *lib; /* NULL: none loaded */
    void (*set_num_threads)(int);
    int (*get_max_threads)(void);
    void (*set_dynamic)(int);
    int (*get_dynamic)(void);
} omp_runtime;

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
static void omp_threads(const omp_runtime *rt, int n)
{
    if (!rt->lib) return;
    rt->set_dynamic(0);
    rt->set_num_threads(n);
}

/* ------------------------------------------------------------ subject */

typedef struct subject {
    const plugin *pl;
    const tftx_plugin_desc *d;
    const tftx_optimizer_ops *ops;
    tftx_value *values;
    double lr, wd; /* the plugin's lr and weight_decay (default or --set) */
    int lr_set;    /* lr came from --set */
    int n_slots;
    omp_runtime omp;
    int threads; /* the runtime's thread count before the checks */
} subject;

static void *instance_new(const subject *s, tftx_error *err)
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

/* Weights, slots and step count of one run: the whole optimizer state. */
typedef struct run_state {
    size_t n;
    int n_slots;
    int64_t step;
    float *w;
    float *slot[TFTX_OPT_MAX_SLOTS];
} run_state;

static void state_init(run_state *r, const subject *s, const void *self, size_t n, const float *w0)
{
    memset(r, 0, sizeof *r);
    r->n = n;
    r->n_slots = s->n_slots;
    r->w = xmalloc(n * sizeof *r->w);
    memcpy(r->w, w0, n * sizeof *r->w);
    for (int k = 0; k < r->n_slots; k++) {
        r->slot[k] = xmalloc(n * sizeof *r->slot[k]);
        float init = s->ops->slot_init(self, k);
        for (size_t i = 0; i < n; i++) r->slot[k][i] = init;
    }
}

static void state_copy(run_state *dst, const run_state *src)
{
    dst->step = src->step;
    memcpy(dst->w, src->w, src->n * sizeof *src->w);
    for (int k = 0; k < src->n_slots; k++) memcpy(dst->slot[k], src->slot[k], src->n * sizeof *src->slot[k]);
}

static void state_free(run_state *r)
{
    free(r->w);
    for (int k = 0; k < r->n_slots; k++) free(r->slot[k]);
    memset(r, 0, sizeof *r);
}

/* One optimizer step, as session_optimizer_step takes it for one segment. */
static void opt_step(const subject *s, void *self, run_state *r, const float *g, double lr, double wd)
{
    tftx_opt_step st = {.step = ++r->step, .lr = (float)lr, .weight_decay = (float)wd};
    s->ops->prepare(self, &st);
    s->ops->step_cpu(self, &st, r->n, r->w, g, r->slot);
}

/* ------------------------------------------------------------ problems */

typedef struct problem {
    size_t n;
    float *w0;
    double *a, *c; /* quadratic: curvatures and centre */
    /* loss at w; gradient into g */
    double (*loss_grad)(const struct problem *p, const float *w, float *g);
    /* the figure compared with goal (smaller is better) */
    double (*figure)(const struct problem *p, const float *w, double loss, double loss0);
    double goal;
    int64_t budget;
} problem;

static double u01(uint64_t stream, uint64_t i)
{
    return (double)tftx_uniform_at(RNG_KEY, stream, i);
}

/* f(w) = 0.5 * sum_i a_i (w_i - c_i)^2, gradient a_i (w_i - c_i) */
static double quad_loss_grad(const problem *p, const float *w, float *g)
{
    double loss = 0;
    for (size_t i = 0; i < p->n; i++) {
        double d = (double)w[i] - p->c[i];
        loss += 0.5 * p->a[i] * d * d;
        if (g) g[i] = (float)(p->a[i] * d);
    }
    return loss;
}

static double quad_figure(const problem *p, const float *w, double loss, double loss0)
{
    (void)p, (void)w;
    return loss / loss0;
}

/* a_i in [0.5, 5], c_i and the start in [-1, 1] */
static void quad_make(problem *p, size_t n)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->a = xmalloc(n * sizeof *p->a);
    p->c = xmalloc(n * sizeof *p->c);
    p->w0 = xmalloc(n * sizeof *p->w0);
    for (size_t i = 0; i < n; i++) {
        p->a[i] = 0.5 + 4.5 * u01(S_CURVATURE, i);
        p->c[i] = 2 * u01(S_CENTRE, i) - 1;
        p->w0[i] = (float)(2 * u01(S_START, i) - 1);
    }
    p->loss_grad = quad_loss_grad;
    p->figure = quad_figure;
    p->goal = QUAD_GOAL;
    p->budget = QUAD_BUDGET;
}

/* f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 */
static double rosen_loss_grad(const problem *p, const float *w, float *g)
{
    (void)p;
    double x = w[0], y = w[1], r = y - x * x;
    if (g) {
        g[0] = (float)(-2 * (1 - x) - 400 * x * r);
        g[1] = (float)(200 * r);
    }
    return (1 - x) * (1 - x) + 100 * r * r;
}

static double rosen_figure(const problem *p, const float *w, double loss, double loss0)
{
    (void)p, (void)loss, (void)loss0;
    return hypot((double)w[0] - 1, (double)w[1] - 1);
}

static void rosen_make(problem *p)
{
    memset(p, 0, sizeof *p);
    p->n = 2;
    p->w0 = xmalloc(2 * sizeof *p->w0);
    p->w0[0] = -1.2f;
    p->w0[1] = 1.0f;
    p->loss_grad = rosen_loss_grad;
    p->figure = rosen_figure;
    p->goal = ROSEN_GOAL;
    p->budget = ROSEN_BUDGET;
}

static void problem_free(problem *p)
{
    free(p->w0);
    free(p->a);
    free(p->c);
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

static const tftx_param_spec *find_spec(const tftx_plugin_desc *d, const char *name)
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
    const tftx_param_spec *lr = find_spec(d, "lr"), *wd = find_spec(d, "weight_decay");
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
    void *self = instance_new(s, &err);
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
        void *again = instance_new(s, &err);
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

/* ------------------------------------------------------------ convergence */

typedef struct attempt {
    double lr;
    int64_t reached; /* steps taken when the goal was met; -1: not within the budget */
    int64_t steps;   /* steps taken in all */
    double figure;   /* at the end of the attempt */
    int blew_up;     /* the loss became NaN or infinite */
} attempt;

/* Descend from p->w0 with learning rate lr and weight decay 0 in a fresh
 * instance. Returns -1 (err set) when create() fails. */
static int descend(const subject *s, const problem *p, double lr, attempt *at, tftx_error *err)
{
    memset(at, 0, sizeof *at);
    at->lr = lr;
    at->reached = -1;
    void *self = instance_new(s, err);
    if (!self) return -1;
    run_state r;
    state_init(&r, s, self, p->n, p->w0);
    float *g = xmalloc(p->n * sizeof *g);
    double loss0 = p->loss_grad(p, r.w, g);
    for (int64_t t = 0;; t++) {
        double loss = t == 0 ? loss0 : p->loss_grad(p, r.w, g);
        at->steps = t;
        if (!isfinite(loss)) {
            at->blew_up = 1;
            break;
        }
        at->figure = p->figure(p, r.w, loss, loss0);
        if (at->figure <= p->goal) {
            at->reached = t;
            break;
        }
        if (t == p->budget) break;
        opt_step(s, self, &r, g, lr, 0.0);
    }
    free(g);
    state_free(&r);
    s->d->destroy(self);
    return 0;
}

static int lr_allowed(const subject *s, double lr)
{
    const tftx_param_spec *spec = find_spec(s->d, "lr");
    return !(spec->has_min && lr < spec->min) && !(spec->has_max && lr > spec->max);
}

static void attempt_str(const attempt *a, const char *figure_name, strbuf *sb)
{
    if (a->blew_up)
        sb_printf(sb, "the loss became non-finite at step %" PRId64, a->steps);
    else
        sb_printf(sb, "%s %.2g after %" PRId64 " steps", figure_name, a->figure, a->steps);
}

/* The plugin's lr first, then the ladder; stop at the first that reaches
 * the goal. `goal` says what was reached ("loss below 1e-3 of its start"),
 * `figure_name` names the figure ("loss ratio"). */
static int check_converges(const subject *s, const problem *p, const char *goal, const char *figure_name, strbuf *why)
{
    double lrs[N_LADDER + 1];
    size_t n = 0;
    lrs[n++] = s->lr;
    for (size_t i = 0; i < N_LADDER; i++)
        if (fabs(LR_LADDER[i] - s->lr) > 1e-9 * LR_LADDER[i] && lr_allowed(s, LR_LADDER[i])) lrs[n++] = LR_LADDER[i];
    attempt tries[N_LADDER + 1];
    size_t done = 0;
    int found = -1;
    for (size_t i = 0; i < n && found < 0; i++, done++) {
        tftx_error err;
        if (descend(s, p, lrs[i], &tries[i], &err) != 0) {
            sb_printf(why, "create() failed: %s", err.message);
            return 0;
        }
        if (tries[i].reached >= 0) found = (int)i;
    }
    if (found == 0) {
        sb_printf(why, "%s at step %" PRId64 " with lr %g (the plugin's %s)", goal, tries[0].reached, lrs[0],
                  s->lr_set ? "--set value" : "default");
        return 1;
    }
    if (found > 0) {
        sb_printf(why, "%s at step %" PRId64 " with lr %g (from the ladder; with the plugin's lr %g: ", goal,
                  tries[found].reached, lrs[found], lrs[0]);
        attempt_str(&tries[0], figure_name, why);
        sb_printf(why, ")");
        return 1;
    }
    sb_printf(why, "no lr reached %s within %" PRId64 " steps:", goal, p->budget);
    for (size_t i = 0; i < done; i++) {
        sb_printf(why, "%s lr %g: ", i ? "," : "", tries[i].lr);
        attempt_str(&tries[i], figure_name, why);
    }
    return 0;
}

/* ------------------------------------------------------------ trajectories */

/* The gradient of a trajectory step: the quadratic's at the current
 * weights plus noise that depends only on the step count and the element,
 * so that every slot sees varied values. */
static void traj_grad(const problem *q, const run_state *r, float *g)
{
    uint64_t stream = S_NOISE | ((uint64_t)(r->step + 1) << 8);
    for (size_t i = 0; i < q->n; i++) g[i] = (float)(q->a[i] * ((double)r->w[i] - q->c[i]) + (u01(stream, i) - 0.5));
}

static size_t diff_floats(const float *x, const float *y, size_t n, size_t skip, size_t *first)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, &x[i], sizeof a);
        memcpy(&b, &y[i], sizeof b);
        if (i == skip || a == b) continue;
        if (!count) *first = i;
        count++;
    }
    return count;
}

/* Compare two states bit for bit (element `skip` left out); describe the
 * first difference in `why`. Returns 1 when they differ. */
static int states_differ(const subject *s, const void *self, const run_state *a, const run_state *b, size_t skip,
                         const char *a_name, const char *b_name, strbuf *why)
{
    size_t first = 0, count = diff_floats(a->w, b->w, a->n, skip, &first);
    if (count) {
        sb_printf(why, "w[%zu] = %.9g %s vs %.9g %s (%zu of %zu weights differ)", first, (double)a->w[first], a_name,
                  (double)b->w[first], b_name, count, a->n);
        return 1;
    }
    for (int k = 0; k < a->n_slots; k++) {
        count = diff_floats(a->slot[k], b->slot[k], a->n, skip, &first);
        if (count) {
            sb_printf(why, "slot %s[%zu] = %.9g %s vs %.9g %s (%zu of %zu elements differ)", s->ops->slot_name(self, k),
                      first, (double)a->slot[k][first], a_name, (double)b->slot[k][first], b_name, count, a->n);
            return 1;
        }
    }
    return 0;
}

/* Two instances side by side over the same problem. */
typedef struct pair {
    void *self[2];
    run_state r[2];
    float *g;
} pair;

static int pair_open(pair *p, const subject *s, const problem *q, strbuf *why)
{
    memset(p, 0, sizeof *p);
    tftx_error err;
    for (int i = 0; i < 2; i++) {
        if (!(p->self[i] = instance_new(s, &err))) {
            sb_printf(why, "create() failed: %s", err.message);
            if (i) {
                state_free(&p->r[0]);
                s->d->destroy(p->self[0]);
            }
            return -1;
        }
        state_init(&p->r[i], s, p->self[i], q->n, q->w0);
    }
    p->g = xmalloc(q->n * sizeof *p->g);
    return 0;
}

static void pair_close(pair *p, const subject *s)
{
    for (int i = 0; i < 2; i++) {
        state_free(&p->r[i]);
        s->d->destroy(p->self[i]);
    }
    free(p->g);
}

/* Step instance i of the pair with its own trajectory gradient. */
static void pair_step(pair *p, int i, const subject *s, const problem *q)
{
    traj_grad(q, &p->r[i], p->g);
    opt_step(s, p->self[i], &p->r[i], p->g, s->lr, s->wd);
}

static int check_restore(const subject *s, const problem *q, strbuf *why)
{
    pair p;
    if (pair_open(&p, s, q, why) != 0) return 0;
    for (int t = 0; t < RESTORE_BEFORE; t++) pair_step(&p, 0, s, q);
    /* the copy goes into instance 1, which has taken no step: a restart */
    state_copy(&p.r[1], &p.r[0]);
    int ok = 1;
    for (int t = 0; t < RESTORE_AFTER && ok; t++) {
        pair_step(&p, 0, s, q);
        pair_step(&p, 1, s, q);
        strbuf d = {0};
        if (states_differ(s, p.self[0], &p.r[0], &p.r[1], (size_t)-1, "uninterrupted", "restored", &d)) {
            sb_printf(why, "step %" PRId64 " (%d after the restore): %s", p.r[0].step, t + 1, d.data);
            ok = 0;
        }
        sb_free(&d);
    }
    if (ok)
        sb_printf(why,
                  "%d steps, then weights, %d slot%s and the step count copied into a fresh instance: the next %d "
                  "steps are bit-identical to the uninterrupted run (%zu elements)",
                  RESTORE_BEFORE, s->n_slots, s->n_slots == 1 ? "" : "s", RESTORE_AFTER, q->n);
    pair_close(&p, s);
    return ok;
}

/* Two fresh runs, instance 0 with threads[0] OpenMP threads, instance 1
 * with threads[1]. */
static int check_same_runs(const subject *s, const problem *q, const int threads[2], const char *names[2], strbuf *why)
{
    pair p;
    if (pair_open(&p, s, q, why) != 0) return 0;
    int ok = 1;
    for (int t = 0; t < TRAJ_STEPS && ok; t++) {
        for (int i = 0; i < 2; i++) {
            omp_threads(&s->omp, threads[i]);
            pair_step(&p, i, s, q);
        }
        strbuf d = {0};
        if (states_differ(s, p.self[0], &p.r[0], &p.r[1], (size_t)-1, names[0], names[1], &d)) {
            sb_printf(why, "step %d: %s", t + 1, d.data);
            ok = 0;
        }
        sb_free(&d);
    }
    omp_threads(&s->omp, s->threads);
    pair_close(&p, s);
    return ok;
}

static int check_determinism(const subject *s, const problem *q, strbuf *why)
{
    int threads[2] = {s->threads, s->threads};
    const char *names[2] = {"(run 1)", "(run 2)"};
    if (!check_same_runs(s, q, threads, names, why)) return 0;
    sb_printf(why, "two fresh runs of %d steps are bit-identical (weights and slots, %zu elements", TRAJ_STEPS, q->n);
    if (s->omp.lib) sb_printf(why, ", %d OpenMP thread%s", s->threads, s->threads == 1 ? "" : "s");
    sb_printf(why, ")");
    return 1;
}

static int check_threads(const subject *s, const problem *q, strbuf *why)
{
    if (!s->omp.lib) {
        sb_printf(why, "no OpenMP runtime is loaded with the plugin: its step is serial, there is no thread count "
                       "to vary");
        return 1;
    }
    int threads[2] = {1, 2};
    const char *names[2] = {"(1 thread)", "(2 threads)"};
    if (!check_same_runs(s, q, threads, names, why)) return 0;
    sb_printf(why, "1 and 2 OpenMP threads (%s) give bit-identical weights and slots over %d steps (%zu elements)",
              s->omp.lib, TRAJ_STEPS, q->n);
    return 1;
}

static int check_nan(const subject *s, const problem *q, strbuf *why)
{
    pair p;
    if (pair_open(&p, s, q, why) != 0) return 0;
    for (int t = 0; t < NAN_WARMUP; t++) {
        pair_step(&p, 0, s, q);
        pair_step(&p, 1, s, q);
    }
    const size_t k = NAN_INDEX;
    traj_grad(q, &p.r[0], p.g);
    opt_step(s, p.self[0], &p.r[0], p.g, s->lr, s->wd);
    p.g[k] = NAN;
    opt_step(s, p.self[1], &p.r[1], p.g, s->lr, s->wd);
    strbuf d = {0};
    char nan_name[64];
    snprintf(nan_name, sizeof nan_name, "(NaN gradient at %zu)", k);
    int ok = !states_differ(s, p.self[0], &p.r[0], &p.r[1], k, "(finite gradient)", nan_name, &d);
    if (!ok) {
        sb_printf(why, "a NaN gradient at element %zu (step %" PRId64 ") reached other elements: %s", k, p.r[1].step,
                  d.data);
    } else {
        sb_printf(why,
                  "a NaN gradient at element %zu of %zu (step %" PRId64 ") left every other weight and slot "
                  "bit-identical; ",
                  k, q->n, p.r[1].step);
        const run_state *r = &p.r[1];
        strbuf bad = {0};
        for (int j = 0; j < r->n_slots; j++)
            if (!isfinite(r->slot[j][k])) sb_printf(&bad, "%s%s", bad.len ? ", " : "", s->ops->slot_name(p.self[1], j));
        if (!isfinite(r->w[k]))
            sb_printf(why, "it made w[%zu] %s", k, isnan(r->w[k]) ? "NaN" : "infinite");
        else
            sb_printf(why, "w[%zu] stayed finite (%.9g)", k, (double)r->w[k]);
        if (bad.len) sb_printf(why, " and slot%s %s non-finite", strchr(bad.data, ',') ? "s" : "", bad.data);
        if (!isfinite(r->w[k])) sb_printf(why, ", as an element-wise rule does");
        sb_printf(why, ". tftx's training loop does not hand such a gradient on: a non-finite gradient norm or loss "
                       "ends the run as `diverged`");
        sb_free(&bad);
    }
    sb_free(&d);
    pair_close(&p, s);
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
        const tftx_param_spec *spec = find_spec(d, kid->name);
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

static const char *const CHECKS[] = {"schema",  "ops",         "quadratic", "rosenbrock",
                                     "restore", "determinism", "threads",   "nan"};
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
        quad_make(&quad, QUAD_DIM);
        rosen_make(&rosen);
        quad_make(&big, THREAD_DIM);
        char goal[128];
        snprintf(goal, sizeof goal, "loss below %g of its start (%.4g)", QUAD_GOAL,
                 quad_loss_grad(&quad, quad.w0, NULL));

        struct {
            const char *name;
            int (*run)(const subject *, const problem *, strbuf *);
            const problem *q;
        } traj[] = {{"restore", check_restore, &big},
                    {"determinism", check_determinism, &big},
                    {"threads", check_threads, &big},
                    {"nan", check_nan, &big}};

        omp_threads(&s.omp, 1); /* small problems: a team costs more than it saves */
        sb_clear(&why);
        ok = check_converges(&s, &quad, goal, "loss ratio", &why);
        verdict(&rp, "quadratic", ok, why.data);
        sb_clear(&why);
        char rgoal[128];
        snprintf(rgoal, sizeof rgoal, "within %g of (1, 1) from (-1.2, 1)", ROSEN_GOAL);
        ok = check_converges(&s, &rosen, rgoal, "distance", &why);
        verdict(&rp, "rosenbrock", ok, why.data);
        omp_threads(&s.omp, s.threads);
        for (size_t i = 0; i < sizeof traj / sizeof *traj; i++) {
            sb_clear(&why);
            ok = traj[i].run(&s, traj[i].q, &why);
            verdict(&rp, traj[i].name, ok, why.data);
        }
        if (s.omp.lib) s.omp.set_dynamic(dynamic);
        problem_free(&quad);
        problem_free(&rosen);
        problem_free(&big);
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
