/*
 * adam_family.h -- what the adam and adamw optimizer plugins share: the
 * instance (betas, eps, amsgrad), the parameter table but for
 * weight_decay's default and meaning, the slots, the moment and
 * bias-correction scalars of prepare(), and create() with its checks.
 * Each plugin keeps its update rule (<name>_rules.h), how weight decay
 * enters the rule (c[7]), and its descriptor. Header-only, every function
 * static: each plugin compiles its own copy.
 */
#ifndef TFTX_ADAM_FAMILY_H
#define TFTX_ADAM_FAMILY_H

#include <math.h>
#include <tftx/optimizer.h>

typedef struct adam_family {
    const tftx_host *host;
    double beta1, beta2, eps;
    int amsgrad;
} adam_family;

static const double ADAM_FAMILY_BETAS[] = {0.9, 0.999};

/* The parameters: lr, betas, eps, weight_decay (default and doc given by
 * the plugin), amsgrad. */
#define ADAM_FAMILY_PARAMS(wd_default, wd_doc)                                                                         \
    TFTX_P_FLOAT("lr", 1e-3, 0, INFINITY, "learning rate"),                                                            \
        {.name = "betas",                                                                                              \
         .type = TFTX_PARAM_FLOAT_LIST,                                                                                \
         .doc = "[beta1, beta2]: decay rates of the first and second moment averages, each in [0, 1)",                 \
         .def_floats = ADAM_FAMILY_BETAS,                                                                              \
         .def_len = 2,                                                                                                 \
         .has_min = 1,                                                                                                 \
         .has_max = 1,                                                                                                 \
         .min = 0,                                                                                                     \
         .max = 1,                                                                                                     \
         .max_len = 2},                                                                                                \
        TFTX_P_FLOAT("eps", 1e-8, 0, INFINITY, "added to the denominator sqrt(v_hat) for numerical stability"),        \
        TFTX_P_FLOAT("weight_decay", wd_default, 0, INFINITY, wd_doc),                                                 \
        TFTX_P_BOOL("amsgrad", 0, "AMSGrad: divide by the running maximum of the second moment (one more slot)")

/* Slots: exp_avg, exp_avg_sq, and with AMSGrad max_exp_avg_sq; all start at 0. */
static int adam_family_n_slots(const void *self)
{
    const adam_family *o = self;
    return o->amsgrad ? 3 : 2;
}

static const char *adam_family_slot_name(const void *self, int k)
{
    static const char *const NAMES[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return k >= 0 && k < adam_family_n_slots(self) ? NAMES[k] : NULL;
}

static float adam_family_slot_init(const void *self, int k)
{
    (void)self, (void)k;
    return 0.0f;
}

/* The rule's scalars but c[7] (the plugin's weight decay term): c[0..3]
 * beta1, 1-beta1, beta2, 1-beta2; c[4] = -lr/bc1; c[5] = sqrt(bc2); c[6]
 * eps, with the bias corrections bc = 1 - beta^t computed in double and
 * handed over as floats, as torch does with its Python scalars. */
static void adam_family_prepare(const adam_family *o, tftx_opt_step *st)
{
    double t = (double)st->step;
    double bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
    st->c[0] = (float)o->beta1;
    st->c[1] = (float)(1.0 - o->beta1);
    st->c[2] = (float)o->beta2;
    st->c[3] = (float)(1.0 - o->beta2);
    st->c[4] = (float)(-((double)st->lr / bc1));
    st->c[5] = (float)sqrt(bc2);
    st->c[6] = (float)o->eps;
}

/* create(): the parameters of `desc` checked, an instance on success. */
static tftx_status adam_family_create(const tftx_plugin_desc *desc, const tftx_host *host, const tftx_value *v,
                                      void **instance, tftx_error *err)
{
    double lr = tftx_param(desc, v, "lr")->f;
    const tftx_value *betas = tftx_param(desc, v, "betas");
    double eps = tftx_param(desc, v, "eps")->f;
    double wd = tftx_param(desc, v, "weight_decay")->f;
    if (!(lr >= 0)) return host->error(err, TFTX_ERR_INVALID, "lr must be >= 0, got %g", lr);
    if (betas->len != 2 || !betas->floats)
        return host->error(err, TFTX_ERR_INVALID, "betas must be a list of 2 numbers [beta1, beta2], got %zu number%s",
                           betas->len, betas->len == 1 ? "" : "s");
    for (int k = 0; k < 2; k++)
        if (!(betas->floats[k] >= 0 && betas->floats[k] < 1))
            return host->error(err, TFTX_ERR_INVALID, "betas[%d] must be in [0, 1), got %g", k, betas->floats[k]);
    if (!(eps >= 0)) return host->error(err, TFTX_ERR_INVALID, "eps must be >= 0, got %g", eps);
    if (!(wd >= 0)) return host->error(err, TFTX_ERR_INVALID, "weight_decay must be >= 0, got %g", wd);
    adam_family *o = host->alloc(sizeof *o, sizeof(void *));
    if (!o) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    o->host = host;
    o->beta1 = betas->floats[0];
    o->beta2 = betas->floats[1];
    o->eps = eps;
    o->amsgrad = tftx_param(desc, v, "amsgrad")->i != 0;
    *instance = o;
    return TFTX_OK;
}

static void adam_family_destroy(void *instance)
{
    adam_family *o = instance;
    if (o) o->host->free(o);
}

#endif /* TFTX_ADAM_FAMILY_H */
