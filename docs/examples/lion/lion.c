/*
 * lion.c -- the Lion optimizer as a tftx plugin, built out of tree against
 * the installed SDK (docs/writing-an-optimizer.md walks through it).
 *
 * Lion ("EvoLved Sign Momentum"; Chen et al. 2023, "Symbolic Discovery of
 * Optimization Algorithms") steps along the sign of an interpolation between
 * the momentum and the gradient, with decoupled weight decay. Per element:
 *
 *   u = sign(beta1 * m + (1 - beta1) * g)
 *   w = w * (1 - lr * wd) - lr * u
 *   m = beta2 * m + (1 - beta2) * g      (slot "exp_avg")
 */
#include <math.h>
#include <tftx/optimizer.h>

typedef struct lion {
    const tftx_host *host;
    double beta1, beta2;
} lion;

static const double DEFAULT_BETAS[] = {0.9, 0.99};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_FLOAT("lr", 1e-4, 0, INFINITY, "learning rate (3-10x smaller than AdamW's, the paper suggests)"),
    TFTX_P_FLOATS("betas", DEFAULT_BETAS, 2, 0, 1, "[beta1, beta2]: interpolation for the update, momentum decay"),
    TFTX_P_FLOAT("weight_decay", 0, 0, INFINITY, "decoupled weight decay: w *= 1 - lr * weight_decay"),
};

/* c[0] = beta1, c[1] = 1 - beta1, c[2] = beta2, c[3] = 1 - beta2,
 * c[4] = lr, c[5] = 1 - lr * wd */
TFTX_OPT_RULE lion_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    const float *c = st->c;
    float u = c[0] * s[0] + c[1] * g;
    float sign = u > 0.0f ? 1.0f : u < 0.0f ? -1.0f : u; /* 0 stays 0, NaN stays NaN */
    *w = *w * c[5] - c[4] * sign;
    s[0] = c[2] * s[0] + c[3] * g;
}

TFTX_OPT_CPU_STEP(lion_step, lion_rule, 1)

static int lion_n_slots(const void *self) { (void)self; return 1; }
static const char *lion_slot_name(const void *self, int k) { (void)self; return k == 0 ? "exp_avg" : NULL; }
static float lion_slot_init(const void *self, int k) { (void)self, (void)k; return 0.0f; }

static void lion_prepare(const void *self, tftx_opt_step *st)
{
    const lion *o = self;
    st->c[0] = (float)o->beta1;
    st->c[1] = (float)(1.0 - o->beta1);
    st->c[2] = (float)o->beta2;
    st->c[3] = (float)(1.0 - o->beta2);
    st->c[4] = st->lr;
    st->c[5] = (float)(1.0 - (double)st->lr * st->weight_decay);
}

static const tftx_optimizer_ops OPS = {
    .n_slots = lion_n_slots, .slot_name = lion_slot_name, .slot_init = lion_slot_init,
    .prepare = lion_prepare, .step_cpu = lion_step,
};

static tftx_status lion_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    const double *b = v[1].floats; /* values come in schema order: lr, betas, weight_decay */
    if (v[1].len != 2) return host->error(err, TFTX_ERR_INVALID, "betas needs 2 numbers, got %zu", v[1].len);
    if (!(b[0] < 1 && b[1] < 1)) return host->error(err, TFTX_ERR_INVALID, "betas must be < 1");
    lion *o = host->alloc(sizeof *o, sizeof(void *));
    if (!o) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    o->host = host;
    o->beta1 = b[0];
    o->beta2 = b[1];
    *instance = o;
    return TFTX_OK;
}

static void lion_destroy(void *instance)
{
    lion *o = instance;
    if (o) o->host->free(o);
}

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC, .abi_major = TFTX_ABI_MAJOR, .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_OPTIMIZER, .name = "lion", .version = "1.0.0",
    .summary = "Lion: sign of interpolated momentum, decoupled weight decay (Chen et al. 2023)",
    .params = PARAMS, .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = lion_create, .destroy = lion_destroy, .ops = &OPS, .ops_size = sizeof OPS,
};

TFTX_PLUGIN(DESC)
