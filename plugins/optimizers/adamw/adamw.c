/*
 * adamw.c -- Adam with decoupled weight decay and optional AMSGrad, with
 * the semantics of torch.optim.AdamW (PyTorch 1.13, maximize=False,
 * single-tensor path). Per element, at step t:
 *
 *   w = w * (1 - lr * wd)                (decoupled decay, before the update;
 *                                         the gradient is left alone)
 *   m = beta1 * m + (1 - beta1) * g      (slot "exp_avg")
 *   v = beta2 * v + (1 - beta2) * g * g  (slot "exp_avg_sq")
 *   amsgrad: vmax = max(vmax, v)         (slot "max_exp_avg_sq"), used for v
 *   bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t
 *   w = w - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
 *
 * For L2 decay added to the gradient see ../adam/adam.c.
 */
#include <math.h>
#include <tftx/optimizer.h>

typedef struct adamw {
    const tftx_host *host;
    double beta1, beta2, eps;
    int amsgrad;
} adamw;

static const double DEFAULT_BETAS[] = {0.9, 0.999};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_FLOAT("lr", 1e-3, 0, INFINITY, "learning rate"),
    {.name = "betas",
     .type = TFTX_PARAM_FLOAT_LIST,
     .doc = "[beta1, beta2]: decay rates of the first and second moment averages, each in [0, 1)",
     .def_floats = DEFAULT_BETAS,
     .def_len = 2,
     .has_min = 1,
     .has_max = 1,
     .min = 0,
     .max = 1,
     .max_len = 2},
    TFTX_P_FLOAT("eps", 1e-8, 0, INFINITY, "added to the denominator sqrt(v_hat) for numerical stability"),
    TFTX_P_FLOAT("weight_decay", 1e-2, 0, INFINITY,
                 "decoupled weight decay: w *= 1 - lr * weight_decay before each update"),
    TFTX_P_BOOL("amsgrad", 0, "AMSGrad: divide by the running maximum of the second moment (one more slot)"),
};

#include "adamw_rules.h"

TFTX_OPT_CPU_STEP(adamw_step_plain, adamw_rule, 2)
TFTX_OPT_CPU_STEP(adamw_step_amsgrad, adamw_amsgrad_rule, 3)

/* The same rules as one CUDA kernel each (adamw.cu), when built with nvcc */
#ifdef TFTX_OPT_HAVE_CUDA
TFTX_OPT_CUDA_DECLARE(adamw_cuda_plain);
TFTX_OPT_CUDA_DECLARE(adamw_cuda_amsgrad);
static tftx_status adamw_step_cuda(const void *self, const tftx_opt_step *st, size_t n, float *w, const float *g,
                                   float *const *slots, void *stream, tftx_error *err)
{
    const adamw *o = self;
    return (o->amsgrad ? adamw_cuda_amsgrad : adamw_cuda_plain)(self, st, n, w, g, slots, stream, err);
}
#endif

/* ------------------------------------------------------------ the ops */

static int adamw_n_slots(const void *self)
{
    const adamw *o = self;
    return o->amsgrad ? 3 : 2;
}

static const char *adamw_slot_name(const void *self, int k)
{
    static const char *const NAMES[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return k >= 0 && k < adamw_n_slots(self) ? NAMES[k] : NULL;
}

static float adamw_slot_init(const void *self, int k)
{
    (void)self, (void)k;
    return 0.0f;
}

static void adamw_prepare(const void *self, tftx_opt_step *st)
{
    const adamw *o = self;
    double t = (double)st->step;
    double bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
    st->c[0] = (float)o->beta1;
    st->c[1] = (float)(1.0 - o->beta1);
    st->c[2] = (float)o->beta2;
    st->c[3] = (float)(1.0 - o->beta2);
    st->c[4] = (float)(-((double)st->lr / bc1));
    st->c[5] = (float)sqrt(bc2);
    st->c[6] = (float)o->eps;
    st->c[7] = (float)(1.0 - (double)st->lr * st->weight_decay);
}

static void adamw_step(const void *self, const tftx_opt_step *st, size_t n, float *w, const float *g,
                       float *const *slots)
{
    const adamw *o = self;
    if (o->amsgrad)
        adamw_step_amsgrad(self, st, n, w, g, slots);
    else
        adamw_step_plain(self, st, n, w, g, slots);
}

static const tftx_optimizer_ops OPS = {
    .n_slots = adamw_n_slots,
    .slot_name = adamw_slot_name,
    .slot_init = adamw_slot_init,
    .prepare = adamw_prepare,
    .step_cpu = adamw_step,
#ifdef TFTX_OPT_HAVE_CUDA
    .step_cuda = adamw_step_cuda,
#endif
};

/* ------------------------------------------------------------ descriptor */

static tftx_status adamw_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err);
static void adamw_destroy(void *instance);

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_OPTIMIZER,
    .name = "adamw",
    .version = "1.0.0",
    .summary = "Adam with decoupled weight decay and optional AMSGrad (torch.optim.AdamW)",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = adamw_create,
    .destroy = adamw_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static tftx_status adamw_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    double lr = tftx_param(&DESC, v, "lr")->f;
    const tftx_value *betas = tftx_param(&DESC, v, "betas");
    double eps = tftx_param(&DESC, v, "eps")->f;
    double wd = tftx_param(&DESC, v, "weight_decay")->f;
    if (!(lr >= 0)) return host->error(err, TFTX_ERR_INVALID, "lr must be >= 0, got %g", lr);
    if (betas->len != 2 || !betas->floats)
        return host->error(err, TFTX_ERR_INVALID, "betas must be a list of 2 numbers [beta1, beta2], got %zu number%s",
                           betas->len, betas->len == 1 ? "" : "s");
    for (int k = 0; k < 2; k++)
        if (!(betas->floats[k] >= 0 && betas->floats[k] < 1))
            return host->error(err, TFTX_ERR_INVALID, "betas[%d] must be in [0, 1), got %g", k, betas->floats[k]);
    if (!(eps >= 0)) return host->error(err, TFTX_ERR_INVALID, "eps must be >= 0, got %g", eps);
    if (!(wd >= 0)) return host->error(err, TFTX_ERR_INVALID, "weight_decay must be >= 0, got %g", wd);
    adamw *o = host->alloc(sizeof *o, sizeof(void *));
    if (!o) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    o->host = host;
    o->beta1 = betas->floats[0];
    o->beta2 = betas->floats[1];
    o->eps = eps;
    o->amsgrad = tftx_param(&DESC, v, "amsgrad")->i != 0;
    *instance = o;
    return TFTX_OK;
}

static void adamw_destroy(void *instance)
{
    adamw *o = instance;
    if (o) o->host->free(o);
}

TFTX_PLUGIN(DESC)
