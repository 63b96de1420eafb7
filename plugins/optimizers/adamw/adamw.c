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
 * For L2 decay added to the gradient see ../adam/adam.c. What the two
 * share (instance, parameters, slots, moment scalars, create): ../common/adam_family.h.
 */
#include <tftx/optimizer.h>

#include "../common/adam_family.h"

static const tftx_param_spec PARAMS[] = {
    ADAM_FAMILY_PARAMS(1e-2, "decoupled weight decay: w *= 1 - lr * weight_decay before each update"),
};

#include "adamw_rules.h"

TFTX_OPT_CPU_STEP(adamw_step_plain, adamw_rule, 2)
TFTX_OPT_CPU_STEP(adamw_step_amsgrad, adamw_amsgrad_rule, 3)

/* The same rules as one CUDA kernel each (adamw.cu), when built with nvcc */
#ifdef TFTX_OPT_HAVE_CUDA
TFTX_OPT_CUDA_DECLARE(adamw_cuda_plain);
TFTX_OPT_CUDA_DECLARE(adamw_cuda_amsgrad);
static tftx_status adamw_step_cuda(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges,
                                   size_t n_ranges, float *w, const float *g, float *const *slots, void *stream,
                                   tftx_error *err)
{
    const adam_family *o = self;
    return (o->amsgrad ? adamw_cuda_amsgrad : adamw_cuda_plain)(self, st, ranges, n_ranges, w, g, slots, stream, err);
}
#endif

/* ------------------------------------------------------------ the ops */

static void adamw_prepare(const void *self, tftx_opt_step *st)
{
    adam_family_prepare(self, st);
    st->c[7] = (float)(1.0 - (double)st->lr * st->weight_decay);
}

static void adamw_step(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges,
                       float *w, const float *g, float *const *slots)
{
    const adam_family *o = self;
    if (o->amsgrad)
        adamw_step_amsgrad(self, st, ranges, n_ranges, w, g, slots);
    else
        adamw_step_plain(self, st, ranges, n_ranges, w, g, slots);
}

static const tftx_optimizer_ops OPS = {
    .n_slots = adam_family_n_slots,
    .slot_name = adam_family_slot_name,
    .slot_init = adam_family_slot_init,
    .prepare = adamw_prepare,
    .step_cpu = adamw_step,
#ifdef TFTX_OPT_HAVE_CUDA
    .step_cuda = adamw_step_cuda,
#endif
};

/* ------------------------------------------------------------ descriptor */

static tftx_status adamw_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err);

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
    .destroy = adam_family_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static tftx_status adamw_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    return adam_family_create(&DESC, host, v, instance, err);
}

TFTX_PLUGIN(DESC)
