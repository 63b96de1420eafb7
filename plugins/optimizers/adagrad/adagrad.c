/*
 * adagrad.c -- Adagrad with learning-rate decay and L2 weight decay, with
 * the semantics of torch.optim.Adagrad (PyTorch 1.13, dense gradients,
 * maximize=False). Per element, at step t:
 *
 *   d   = g + wd * w                     (L2: decay is added to the gradient)
 *   clr = lr / (1 + (t - 1) * lr_decay)
 *   sum = sum + d * d                    (slot "sum", starts at
 *                                         initial_accumulator_value)
 *   w   = w - clr * d / (sqrt(sum) + eps)
 */
#include <math.h>
#include <tftx/optimizer.h>

typedef struct adagrad {
    const tftx_host *host;
    double lr_decay, initial_accumulator_value, eps;
} adagrad;

static const tftx_param_spec PARAMS[] = {
    TFTX_P_FLOAT("lr", 1e-2, 0, INFINITY, "learning rate"),
    TFTX_P_FLOAT("lr_decay", 0, 0, INFINITY, "learning-rate decay: step t uses lr / (1 + (t-1) * lr_decay)"),
    TFTX_P_FLOAT("weight_decay", 0, 0, INFINITY, "L2 penalty: weight_decay * w is added to the gradient"),
    TFTX_P_FLOAT("initial_accumulator_value", 0, 0, INFINITY, "starting value of the sum of squared gradients"),
    TFTX_P_FLOAT("eps", 1e-10, 0, INFINITY, "added to the denominator sqrt(sum) for numerical stability"),
};

#include "adagrad_rules.h"

TFTX_OPT_CPU_STEP(adagrad_step, adagrad_rule, 1)

/* The same rules as one CUDA kernel each (adagrad.cu), when built with nvcc */
#ifdef TFTX_OPT_HAVE_CUDA
TFTX_OPT_CUDA_DECLARE(adagrad_cuda);
#endif

/* ------------------------------------------------------------ the ops */

static int adagrad_n_slots(const void *self)
{
    (void)self;
    return 1;
}

static const char *adagrad_slot_name(const void *self, int k)
{
    (void)self;
    return k == 0 ? "sum" : NULL;
}

static float adagrad_slot_init(const void *self, int k)
{
    const adagrad *o = self;
    (void)k;
    return (float)o->initial_accumulator_value;
}

static void adagrad_prepare(const void *self, tftx_opt_step *st)
{
    const adagrad *o = self;
    double clr = (double)st->lr / (1.0 + (double)(st->step - 1) * o->lr_decay);
    st->c[0] = (float)-clr;
    st->c[1] = (float)o->eps;
    st->c[2] = st->weight_decay;
}

static const tftx_optimizer_ops OPS = {
    .n_slots = adagrad_n_slots,
    .slot_name = adagrad_slot_name,
    .slot_init = adagrad_slot_init,
    .prepare = adagrad_prepare,
    .step_cpu = adagrad_step,
#ifdef TFTX_OPT_HAVE_CUDA
    .step_cuda = adagrad_cuda,
#endif
};

/* ------------------------------------------------------------ descriptor */

static tftx_status adagrad_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err);
static void adagrad_destroy(void *instance);

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_OPTIMIZER,
    .name = "adagrad",
    .version = "1.0.0",
    .summary = "Adagrad with learning-rate decay and L2 weight decay (torch.optim.Adagrad)",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = adagrad_create,
    .destroy = adagrad_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static tftx_status adagrad_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    double lr = tftx_param(&DESC, v, "lr")->f;
    double lr_decay = tftx_param(&DESC, v, "lr_decay")->f;
    double wd = tftx_param(&DESC, v, "weight_decay")->f;
    double init = tftx_param(&DESC, v, "initial_accumulator_value")->f;
    double eps = tftx_param(&DESC, v, "eps")->f;
    if (!(lr >= 0)) return host->error(err, TFTX_ERR_INVALID, "lr must be >= 0, got %g", lr);
    if (!(lr_decay >= 0)) return host->error(err, TFTX_ERR_INVALID, "lr_decay must be >= 0, got %g", lr_decay);
    if (!(wd >= 0)) return host->error(err, TFTX_ERR_INVALID, "weight_decay must be >= 0, got %g", wd);
    if (!(init >= 0)) return host->error(err, TFTX_ERR_INVALID, "initial_accumulator_value must be >= 0, got %g", init);
    if (!(eps >= 0)) return host->error(err, TFTX_ERR_INVALID, "eps must be >= 0, got %g", eps);
    adagrad *o = host->alloc(sizeof *o, sizeof(void *));
    if (!o) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    o->host = host;
    o->lr_decay = lr_decay;
    o->initial_accumulator_value = init;
    o->eps = eps;
    *instance = o;
    return TFTX_OK;
}

static void adagrad_destroy(void *instance)
{
    adagrad *o = instance;
    if (o) o->host->free(o);
}

TFTX_PLUGIN(DESC)
