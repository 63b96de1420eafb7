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
 * scalars (../common/adam_family.h, shared with adamw). For decoupled weight
 * decay see ../adamw/adamw.c.
 */
#include <tftx/optimizer.h>

#include "../common/adam_family.h"

static const tftx_param_spec PARAMS[] = {
    ADAM_FAMILY_PARAMS(0, "L2 penalty: weight_decay * w is added to the gradient (for decoupled decay use adamw)"),
};

#include "adam_rules.h"

TFTX_OPT_CPU_STEP(adam_step_plain, adam_rule, 2)
TFTX_OPT_CPU_STEP(adam_step_amsgrad, adam_amsgrad_rule, 3)

/* The same rules as one CUDA kernel each (adam.cu), when built with nvcc */
#ifdef TFTX_OPT_HAVE_CUDA
TFTX_OPT_CUDA_DECLARE(adam_cuda_plain);
TFTX_OPT_CUDA_DECLARE(adam_cuda_amsgrad);
static tftx_status adam_step_cuda(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges,
                                  size_t n_ranges, float *w, const float *g, float *const *slots, void *stream,
                                  tftx_error *err)
{
    const adam_family *o = self;
    return (o->amsgrad ? adam_cuda_amsgrad : adam_cuda_plain)(self, st, ranges, n_ranges, w, g, slots, stream, err);
}
#endif

/* ------------------------------------------------------------ the ops */

static void adam_prepare(const void *self, tftx_opt_step *st)
{
    adam_family_prepare(self, st);
    st->c[7] = st->weight_decay;
}

static void adam_step(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges,
                      float *w, const float *g, float *const *slots)
{
    const adam_family *o = self;
    if (o->amsgrad)
        adam_step_amsgrad(self, st, ranges, n_ranges, w, g, slots);
    else
        adam_step_plain(self, st, ranges, n_ranges, w, g, slots);
}

static const tftx_optimizer_ops OPS = {
    .n_slots = adam_family_n_slots,
    .slot_name = adam_family_slot_name,
    .slot_init = adam_family_slot_init,
    .prepare = adam_prepare,
    .step_cpu = adam_step,
#ifdef TFTX_OPT_HAVE_CUDA
    .step_cuda = adam_step_cuda,
#endif
};

/* ------------------------------------------------------------ descriptor */

static tftx_status adam_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err);

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
    .destroy = adam_family_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static tftx_status adam_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    return adam_family_create(&DESC, host, v, instance, err);
}

TFTX_PLUGIN(DESC)
