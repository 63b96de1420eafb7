/*
 * check_optimizer_runs.c -- the checks of `tftx check optimizer NAME` that
 * run the optimizer: convergence on closed-form problems (quadratic,
 * Rosenbrock) and the trajectory checks (restore, determinism, threads,
 * nan); what each check does and why: check_optimizer.h.
 *
 * Defines the problems (chk_quad_make, chk_rosen_make, chk_problem_free)
 * and the checks (chk_converges, chk_restore, chk_determinism, chk_threads,
 * chk_nan, chk_ranges), declared in check_optimizer_int.h, and, privately, one run's
 * optimizer state and its step.
 *
 * The checks drive the plugin the way the host's training loop does: one
 * create() per instance, weights, gradients and slots as host-owned float
 * arrays, and per step prepare() then step_cpu() with the step count
 * (1-based), the learning rate and the weight decay in tftx_opt_step.
 * Gradients come from closed-form problems computed here in double.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/optimizer.h>
#include <tftx/random.h>

#include "check_optimizer_int.h"
#include "util.h"

/* ------------------------------------------------------------ budgets */

#define QUAD_BUDGET 5000   /* steps per learning rate */
#define ROSEN_BUDGET 50000 /* steps per learning rate */
#define RESTORE_BEFORE 7   /* steps before the copy */
#define RESTORE_AFTER 13   /* steps compared after it */
#define TRAJ_STEPS 20      /* determinism, threads */
#define NAN_WARMUP 5       /* steps before the step with a NaN gradient */
#define NAN_INDEX 437      /* the element that gets it */
#define RANGES_GAP 10      /* ranges: elements at the end in no range */

static const double LR_LADDER[] = {1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0};
#define N_LADDER (sizeof LR_LADDER / sizeof *LR_LADDER)

/* Streams of the problems' random numbers (tftx_uniform_at). */
enum { RNG_KEY = 0x746674785f636b31ull };
enum { S_CURVATURE = 1, S_CENTRE = 2, S_START = 3, S_NOISE = 4 };

/* ------------------------------------------------------------ run state */

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

/* The scalars of step r->step + 1 for both groups, prepared as
 * session_optimizer_step prepares them: the decayed group with wd. */
static void opt_prepare(const subject *s, void *self, const run_state *r, double lr, double wd,
                        tftx_opt_step st[TFTX_OPT_GROUPS])
{
    for (int k = 0; k < TFTX_OPT_GROUPS; k++) {
        float decay = k == TFTX_OPT_GROUP_DECAY ? (float)wd : 0;
        st[k] = (tftx_opt_step){.step = r->step + 1, .lr = (float)lr, .weight_decay = decay};
        s->ops->prepare(self, &st[k]);
    }
}

/* One optimizer step over the whole state, every element decayed. */
static void opt_step(const subject *s, void *self, run_state *r, const float *g, double lr, double wd)
{
    tftx_opt_step st[TFTX_OPT_GROUPS];
    opt_prepare(s, self, r, lr, wd, st);
    r->step++;
    const tftx_opt_range all = {0, r->n, TFTX_OPT_GROUP_DECAY};
    s->ops->step_cpu(self, st, &all, 1, r->w, g, r->slot);
}

/* ------------------------------------------------------------ problems */

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
void chk_quad_make(problem *p, size_t n)
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

void chk_rosen_make(problem *p)
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

void chk_problem_free(problem *p)
{
    free(p->w0);
    free(p->a);
    free(p->c);
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
    void *self = chk_instance_new(s, err);
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
    const tftx_param_spec *spec = chk_find_spec(s->d, "lr");
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
int chk_converges(const subject *s, const problem *p, const char *goal, const char *figure_name, strbuf *why)
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
        if (!(p->self[i] = chk_instance_new(s, &err))) {
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

int chk_restore(const subject *s, const problem *q, strbuf *why)
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
            chk_omp_threads(&s->omp, threads[i]);
            pair_step(&p, i, s, q);
        }
        strbuf d = {0};
        if (states_differ(s, p.self[0], &p.r[0], &p.r[1], (size_t)-1, names[0], names[1], &d)) {
            sb_printf(why, "step %d: %s", t + 1, d.data);
            ok = 0;
        }
        sb_free(&d);
    }
    chk_omp_threads(&s->omp, s->threads);
    pair_close(&p, s);
    return ok;
}

int chk_determinism(const subject *s, const problem *q, strbuf *why)
{
    int threads[2] = {s->threads, s->threads};
    const char *names[2] = {"(run 1)", "(run 2)"};
    if (!check_same_runs(s, q, threads, names, why)) return 0;
    sb_printf(why, "two fresh runs of %d steps are bit-identical (weights and slots, %zu elements", TRAJ_STEPS, q->n);
    if (s->omp.lib) sb_printf(why, ", %d OpenMP thread%s", s->threads, s->threads == 1 ? "" : "s");
    sb_printf(why, ")");
    return 1;
}

int chk_threads(const subject *s, const problem *q, strbuf *why)
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

int chk_nan(const subject *s, const problem *q, strbuf *why)
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

int chk_ranges(const subject *s, const problem *q, strbuf *why)
{
    pair p;
    if (pair_open(&p, s, q, why) != 0) return 0;
    /* A decay that shows: the plugin's, or 0.1 when that is 0 */
    const double wd = s->wd > 0 ? s->wd : 0.1;
    const size_t n = q->n - RANGES_GAP, third = n / 3;
    const tftx_opt_range ranges[3] = {{0, third, TFTX_OPT_GROUP_DECAY},
                                      {third, third, TFTX_OPT_GROUP_NO_DECAY},
                                      {2 * third, n - 2 * third, TFTX_OPT_GROUP_DECAY}};
    float *gap = xmalloc(RANGES_GAP * sizeof *gap);
    memcpy(gap, p.r[0].w + n, RANGES_GAP * sizeof *gap);
    int ok = 1;
    for (int t = 0; t < TRAJ_STEPS && ok; t++) {
        tftx_opt_step st[TFTX_OPT_GROUPS];
        /* instance 0: the three ranges in one call */
        traj_grad(q, &p.r[0], p.g);
        opt_prepare(s, p.self[0], &p.r[0], s->lr, wd, st);
        p.r[0].step++;
        s->ops->step_cpu(p.self[0], st, ranges, 3, p.r[0].w, p.g, p.r[0].slot);
        /* instance 1: one call per range, its group's scalars in group 0 */
        traj_grad(q, &p.r[1], p.g);
        opt_prepare(s, p.self[1], &p.r[1], s->lr, wd, st);
        p.r[1].step++;
        for (int j = 0; j < 3; j++) {
            const tftx_opt_step one[TFTX_OPT_GROUPS] = {st[ranges[j].group], st[ranges[j].group]};
            const tftx_opt_range r = {ranges[j].offset, ranges[j].n, 0};
            s->ops->step_cpu(p.self[1], one, &r, 1, p.r[1].w, p.g, p.r[1].slot);
        }
        strbuf d = {0};
        if (states_differ(s, p.self[0], &p.r[0], &p.r[1], (size_t)-1, "(three ranges, one call)", "(one range a call)",
                          &d)) {
            sb_printf(why, "step %d: %s", t + 1, d.data);
            ok = 0;
        } else if (memcmp(gap, p.r[0].w + n, RANGES_GAP * sizeof *gap) != 0) {
            sb_printf(why, "step %d: a weight outside every range changed", t + 1);
            ok = 0;
        }
        sb_free(&d);
    }
    if (ok)
        sb_printf(why,
                  "a step over three ranges (decay %g, no_decay, decay) in one call equals one call per range with "
                  "its group's scalars, bit for bit over %d steps; the %d weights in no range stay as they were",
                  wd, TRAJ_STEPS, RANGES_GAP);
    free(gap);
    pair_close(&p, s);
    return ok;
}
