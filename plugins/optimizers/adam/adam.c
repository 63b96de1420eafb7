/*
 * adam.c -- Adam with L2 weight decay and optional AMSGrad, with the
 * semantics of torch.optim.Adam (PyTorch 1.13, maximize=False,
 * single-tensor path). Per element, at step t:
 *
 *   d = g + wd * w                       (L2: decay is added to the gradient)
 *   m = beta1 * m + (1 - beta1) * d      (slot "exp_avg")
 *   v = beta2 * v + (1 - beta2) * d * d  (slot "exp_avg_sq")
 *   amsgrad: vmax = max(vmax, v)         (slot "max_exp_avg_sq"), used for v
 *   bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t
 *   w = w - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
 *
 * The bias corrections are scalars of the step, computed in double by
 * prepare() and handed to the rule as floats, as torch does with its Python
 * scalars. For decoupled weight decay see ../adamw/adamw.c.
 */
#include <math.h>
#include <tftx/optimizer.h>

typedef struct adam {
    const tftx_host *host;
    double beta1, beta2, eps;
    int amsgrad;
} adam;

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
    TFTX_P_FLOAT("weight_decay", 0, 0, INFINITY,
                 "L2 penalty: weight_decay * w is added to the gradient (for decoupled decay use adamw)"),
    TFTX_P_BOOL("amsgrad", 0, "AMSGrad: divide by the running maximum of the second moment (one more slot)"),
};

#include "adam_rules.h"

TFTX_OPT_CPU_STEP(adam_step_plain, adam_rule, 2)
TFTX_OPT_CPU_STEP(adam_step_amsgrad, adam_amsgrad_rule, 3)

/* The same rules as one CUDA kernel each (adam.cu), when built with nvcc */
#ifdef TFTX_OPT_HAVE_CUDA
TFTX_OPT_CUDA_DECLARE(adam_cuda_plain);
TFTX_OPT_CUDA_DECLARE(adam_cuda_amsgrad);
static tftx_status adam_step_cuda(const void *self, const tftx_opt_step *st, size_t n, float *w, const float *g,
                                  float *const *slots, void *stream, tftx_error *err)
{
    const adam *o = self;
    return (o->amsgrad ? adam_cuda_amsgrad : adam_cuda_plain)(self, st, n, w, g, slots, stream, err);
}
#endif

/* ------------------------------------------------------------ the ops */

static int adam_n_slots(const void *self)
{
    const adam *o = self;
    return o->amsgrad ? 3 : 2;
}

static const char *adam_slot_name(const void *self, int k)
{
    static const char *const NAMES[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return k >= 0 && k < adam_n_slots(self) ? NAMES[k] : NULL;
}

static float adam_slot_init(const void *self, int k)
{
    (void)self, (void)k;
    return 0.0f;
}

static void adam_prepare(const void *self, tftx_opt_step *st)
{
    const adam *o = self;
    double t = (double)st->step;
    double bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
    st->c[0] = (float)o->beta1;
    st->c[1] = (float)(1.0 - o->beta1);
    st->c[2] = (float)o->beta2;
    st->c[3] = (float)(1.0 - o->beta2);
    st->c[4] = (float)(-((double)st->lr / bc1));
    st->c[5] = (float)sqrt(bc2);
    st->c[6] = (float)o->eps;
    st->c[7] = st->weight_decay;
}

static void adam_step(const void *self, const tftx_opt_step *st, size_t n, float *w, const float *g,
                      float *const *slots)
{
    const adam *o = self;
    if (o->amsgrad)
        adam_step_amsgrad(self, st, n, w, g, slots);
    else
        adam_step_plain(self, st, n, w, g, slots);
}

static const tftx_optimizer_ops OPS = {
    .n_slots = adam_n_slots,
    .slot_name = adam_slot_name,
    .slot_init = adam_slot_init,
    .prepare = adam_prepare,
    .step_cpu = adam_step,
#ifdef TFTX_OPT_HAVE_CUDA
    .step_cuda = adam_step_cuda,
#endif
};

/* ------------------------------------------------------------ descriptor */

static tftx_status adam_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err);
static void adam_destroy(void *instance);

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_OPTIMIZER,
    .name = "adam",
    .version = "1.0.0",
    .summary = "Adam with L2 weight decay and optional AMSGrad (torch.optim.Adam)",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = adam_create,
    .destroy = adam_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static tftx_status adam_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
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
    adam *o = host->alloc(sizeof *o, sizeof(void *));
    if (!o) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    o->host = host;
    o->beta1 = betas->floats[0];
    o->beta2 = betas->floats[1];
    o->eps = eps;
    o->amsgrad = tftx_param(&DESC, v, "amsgrad")->i != 0;
    *instance = o;
    return TFTX_OK;
}

static void adam_destroy(void *instance)
{
    adam *o = instance;
    if (o) o->host->free(o);
}

TFTX_PLUGIN(DESC)
