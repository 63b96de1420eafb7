/*
 * broken_optimizers.c -- optimizer plugins with one deliberate bug each, for
 * tests/check/test_check_optimizer.c: `tftx check optimizer` must fail the
 * check aimed at that bug. Built once per bug (CMakeLists.txt):
 *
 *   BUG_THREADS  chk_threads: dithered SGD whose noise comes from a stream
 *                keyed by the OpenMP thread number and the position in that
 *                thread's chunk, so an element's update depends on the
 *                thread count (fails `threads`)
 *   BUG_STATE    chk_state: Adam that counts steps itself instead of using
 *                tftx_opt_step.step, so a restored copy restarts its bias
 *                correction (fails `restore`)
 *   BUG_NAN      chk_nan: SGD damped by the RMS of the whole gradient,
 *                w -= lr * g / (1 + rms(g)), so one NaN reaches every
 *                element (fails `nan`)
 *   BUG_ASCENT   chk_ascent: climbs the gradient (fails `quadratic` and
 *                `rosenbrock`)
 *   BUG_LR_INT   chk_lrint: declares `lr` as an int (fails `schema`)
 *   BUG_GROUPS   chk_groups: SGD that steps every range with the first
 *                group's scalars, decaying the no_decay group (fails
 *                `ranges`)
 */
#include <math.h>
#include <omp.h>
#include <tftx/optimizer.h>
#include <tftx/random.h>

#ifndef PLUGIN_NAME
#error "PLUGIN_NAME is set by tests/check/CMakeLists.txt"
#endif

typedef struct chk {
    const tftx_host *host;
    int64_t t; /* BUG_STATE: its own step count */
} chk;

static const tftx_param_spec PARAMS[] = {
#ifdef BUG_LR_INT
    TFTX_P_INT("lr", 1, 0, 10, "learning rate, wrongly an integer"),
#else
    TFTX_P_FLOAT("lr", 1e-2, 0, INFINITY, "learning rate"),
#endif
    TFTX_P_FLOAT("weight_decay", 0, 0, INFINITY, "decoupled weight decay"),
};

/* ------------------------------------------------------------ rules */

/* c[0] = -lr, c[1] = 1 - lr * wd */
TFTX_OPT_RULE sgd_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    (void)s;
    *w = *w * st->c[1] + st->c[0] * g;
}

/* c[0] = lr (climbing), c[1] = 1 - lr * wd */
TFTX_OPT_RULE ascent_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    (void)s;
    *w = *w * st->c[1] + st->c[0] * g;
}

/* Adam; c[0..3] betas, c[4] = -lr / bc1, c[5] = sqrt(bc2), c[1] as above in c[6] */
TFTX_OPT_RULE adam_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    const float *c = st->c;
    float m = c[0] * s[0] + c[1] * g;
    float v = c[2] * s[1] + c[3] * g * g;
    s[0] = m;
    s[1] = v;
    *w = *w * c[6] + c[4] * m / (sqrtf(v) / c[5] + 1e-8f);
}

TFTX_OPT_CPU_STEP(sgd_step, sgd_rule, 0)
TFTX_OPT_CPU_STEP(ascent_step, ascent_rule, 0)
TFTX_OPT_CPU_STEP(adam_step, adam_rule, 2)

static void threads_range(const tftx_opt_step *st, size_t n, float *w, const float *g)
{
#pragma omp parallel
    {
        size_t tid = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = n * tid / nt, hi = n * (tid + 1) / nt;
        for (size_t i = lo; i < hi; i++) {
            float noise = tftx_uniform_at((uint64_t)st->step, tid, i - lo) - 0.5f; /* the bug: tid, i - lo */
            w[i] = w[i] * st->c[1] + st->c[0] * (g[i] + 1e-3f * noise);
        }
    }
}

static void nan_range(const tftx_opt_step *st, size_t n, float *w, const float *g)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    float damp = (float)(1.0 / (1.0 + sqrt(ss / (double)(n ? n : 1)))); /* the bug: one NaN makes it NaN */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) w[i] = w[i] * st->c[1] + st->c[0] * damp * g[i];
}

/* The buggy stateless steps, range by range. */
static void each_range(void (*f)(const tftx_opt_step *, size_t, float *, const float *), const tftx_opt_step *st,
                       const tftx_opt_range *ranges, size_t n_ranges, float *w, const float *g)
{
    for (size_t r = 0; r < n_ranges; r++)
        f(&st[ranges[r].group], ranges[r].n, w + ranges[r].offset, g + ranges[r].offset);
}

/* ------------------------------------------------------------ ops */

static int n_slots(const void *self)
{
    (void)self;
#ifdef BUG_STATE
    return 2;
#else
    return 0;
#endif
}

static const char *slot_name(const void *self, int k)
{
    (void)self;
    return k == 0 ? "exp_avg" : k == 1 ? "exp_avg_sq" : NULL;
}

static float slot_init(const void *self, int k)
{
    (void)self, (void)k;
    return 0.0f;
}

static void prepare(const void *self, tftx_opt_step *st)
{
    st->c[1] = 1.0f - st->lr * st->weight_decay;
#if defined(BUG_STATE)
    chk *o = (chk *)self;
    double t = (double)++o->t; /* the bug: st->step is the step to use */
    st->c[0] = 0.9f, st->c[1] = 0.1f, st->c[2] = 0.999f, st->c[3] = 0.001f;
    st->c[4] = (float)(-st->lr / (1.0 - pow(0.9, t)));
    st->c[5] = (float)sqrt(1.0 - pow(0.999, t));
    st->c[6] = 1.0f - st->lr * st->weight_decay;
#elif defined(BUG_ASCENT)
    (void)self;
    st->c[0] = st->lr;
#else
    (void)self;
    st->c[0] = -st->lr;
#endif
}

static void step(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges, float *w,
                 const float *g, float *const *slots)
{
#if defined(BUG_THREADS)
    each_range(threads_range, st, ranges, n_ranges, w, g);
#elif defined(BUG_STATE)
    adam_step(self, st, ranges, n_ranges, w, g, slots);
#elif defined(BUG_NAN)
    each_range(nan_range, st, ranges, n_ranges, w, g);
#elif defined(BUG_ASCENT)
    ascent_step(self, st, ranges, n_ranges, w, g, slots);
#elif defined(BUG_GROUPS)
    const tftx_opt_step first[TFTX_OPT_GROUPS] = {st[0], st[0]}; /* the bug: st[range.group] is the one */
    sgd_step(self, first, ranges, n_ranges, w, g, slots);
#else
    sgd_step(self, st, ranges, n_ranges, w, g, slots);
#endif
    (void)self, (void)slots, (void)each_range, (void)threads_range, (void)nan_range, (void)sgd_step, (void)ascent_step,
        (void)adam_step;
}

static const tftx_optimizer_ops OPS = {
    .n_slots = n_slots,
    .slot_name = slot_name,
    .slot_init = slot_init,
    .prepare = prepare,
    .step_cpu = step,
};

/* ------------------------------------------------------------ descriptor */

static tftx_status chk_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    (void)v;
    chk *o = host->alloc(sizeof *o, sizeof(void *));
    if (!o) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    o->host = host;
    *instance = o;
    return TFTX_OK;
}

static void chk_destroy(void *instance)
{
    chk *o = instance;
    if (o) o->host->free(o);
}

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_OPTIMIZER,
    .name = PLUGIN_NAME,
    .version = "0.0.1",
    .summary = "an optimizer with a deliberate bug, for the tests of tftx check",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = chk_create,
    .destroy = chk_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

TFTX_PLUGIN(DESC)
