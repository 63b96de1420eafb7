/*
 * sgd.c -- stochastic gradient descent with momentum, dampening, Nesterov
 * momentum and L2 weight decay, with the semantics of torch.optim.SGD
 * (PyTorch 1.13, maximize=False). Per element, at step t:
 *
 *   d = g + wd * w                          (L2 decay, added to the gradient)
 *   without momentum:   w = w - lr * d
 *   with momentum mu:
 *     t == 1:  buf = d                      (torch clones the first gradient:
 *                                            no dampening on the first step)
 *     t > 1:   buf = mu * buf + (1 - dampening) * d
 *     nesterov: d = d + mu * buf,  else d = buf
 *     w = w - lr * d
 *
 * The first step needs no branch: prepare() sets the coefficients of buf
 * to (0, 1) when t == 1, and the slot starts at 0, so 0*0 + 1*d == d exactly.
 * Slot 0 ("momentum_buffer") exists only when momentum != 0.
 */
#include <math.h>
#include <tftx/optimizer.h>

typedef struct sgd {
    const tftx_host *host;
    double momentum, dampening;
    int nesterov;
} sgd;

static const tftx_param_spec PARAMS[] = {
    TFTX_P_FLOAT("lr", 1e-3, 0, INFINITY, "learning rate (torch.optim.SGD has no default; tftx uses 1e-3)"),
    TFTX_P_FLOAT("momentum", 0, 0, 1, "momentum factor mu; 0 disables momentum (no state)"),
    TFTX_P_FLOAT("dampening", 0, 0, 1,
                 "dampening of the momentum: buf = mu*buf + (1-dampening)*g (not on the first step)"),
    TFTX_P_BOOL("nesterov", 0, "Nesterov momentum: step along g + mu*buf; needs momentum > 0 and dampening 0"),
    TFTX_P_FLOAT("weight_decay", 0, 0, INFINITY, "L2 penalty: weight_decay * w is added to the gradient"),
};

#include "sgd_rules.h"

TFTX_OPT_CPU_STEP(sgd_step_plain, sgd_plain_rule, 0)
TFTX_OPT_CPU_STEP(sgd_step_momentum, sgd_momentum_rule, 1)
TFTX_OPT_CPU_STEP(sgd_step_nesterov, sgd_nesterov_rule, 1)

/* The same rules as one CUDA kernel each (sgd.cu), when built with nvcc */
#ifdef TFTX_OPT_HAVE_CUDA
TFTX_OPT_CUDA_DECLARE(sgd_cuda_plain);
TFTX_OPT_CUDA_DECLARE(sgd_cuda_momentum);
TFTX_OPT_CUDA_DECLARE(sgd_cuda_nesterov);
static tftx_status sgd_step_cuda(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges,
                                 size_t n_ranges, float *w, const float *g, float *const *slots, void *stream,
                                 tftx_error *err)
{
    const sgd *o = self;
    if (o->momentum == 0) return sgd_cuda_plain(self, st, ranges, n_ranges, w, g, slots, stream, err);
    if (o->nesterov) return sgd_cuda_nesterov(self, st, ranges, n_ranges, w, g, slots, stream, err);
    return sgd_cuda_momentum(self, st, ranges, n_ranges, w, g, slots, stream, err);
}
#endif

/* ------------------------------------------------------------ the ops */

static int sgd_n_slots(const void *self)
{
    const sgd *o = self;
    return o->momentum != 0 ? 1 : 0;
}

static const char *sgd_slot_name(const void *self, int k)
{
    return k == 0 && sgd_n_slots(self) == 1 ? "momentum_buffer" : NULL;
}

static float sgd_slot_init(const void *self, int k)
{
    (void)self, (void)k;
    return 0.0f;
}

static void sgd_prepare(const void *self, tftx_opt_step *st)
{
    const sgd *o = self;
    int first = st->step <= 1;
    st->c[0] = -st->lr;
    st->c[1] = st->weight_decay;
    st->c[2] = first ? 0.0f : (float)o->momentum;
    st->c[3] = first ? 1.0f : (float)(1.0 - o->dampening);
    st->c[4] = (float)o->momentum;
}

static void sgd_step(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges, float *w,
                     const float *g, float *const *slots)
{
    const sgd *o = self;
    if (o->momentum == 0)
        sgd_step_plain(self, st, ranges, n_ranges, w, g, slots);
    else if (o->nesterov)
        sgd_step_nesterov(self, st, ranges, n_ranges, w, g, slots);
    else
        sgd_step_momentum(self, st, ranges, n_ranges, w, g, slots);
}

static const tftx_optimizer_ops OPS = {
    .n_slots = sgd_n_slots,
    .slot_name = sgd_slot_name,
    .slot_init = sgd_slot_init,
    .prepare = sgd_prepare,
    .step_cpu = sgd_step,
#ifdef TFTX_OPT_HAVE_CUDA
    .step_cuda = sgd_step_cuda,
#endif
};

/* ------------------------------------------------------------ descriptor */

static tftx_status sgd_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err);
static void sgd_destroy(void *instance);

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_OPTIMIZER,
    .name = "sgd",
    .version = "1.0.0",
    .summary = "SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD)",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = sgd_create,
    .destroy = sgd_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static tftx_status sgd_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    double lr = tftx_param(&DESC, v, "lr")->f;
    double momentum = tftx_param(&DESC, v, "momentum")->f;
    double dampening = tftx_param(&DESC, v, "dampening")->f;
    int nesterov = tftx_param(&DESC, v, "nesterov")->i != 0;
    double wd = tftx_param(&DESC, v, "weight_decay")->f;
    if (!(lr >= 0)) return host->error(err, TFTX_ERR_INVALID, "lr must be >= 0, got %g", lr);
    if (!(momentum >= 0)) return host->error(err, TFTX_ERR_INVALID, "momentum must be >= 0, got %g", momentum);
    if (!(dampening >= 0 && dampening <= 1))
        return host->error(err, TFTX_ERR_INVALID, "dampening must be in [0, 1], got %g", dampening);
    if (!(wd >= 0)) return host->error(err, TFTX_ERR_INVALID, "weight_decay must be >= 0, got %g", wd);
    if (nesterov && (momentum <= 0 || dampening != 0))
        return host->error(err, TFTX_ERR_INVALID,
                           "nesterov needs momentum > 0 and dampening 0 (got momentum %g, dampening %g)", momentum,
                           dampening);
    sgd *o = host->alloc(sizeof *o, sizeof(void *));
    if (!o) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    o->host = host;
    o->momentum = momentum;
    o->dampening = dampening;
    o->nesterov = nesterov;
    *instance = o;
    return TFTX_OK;
}

static void sgd_destroy(void *instance)
{
    sgd *o = instance;
    if (o) o->host->free(o);
}

TFTX_PLUGIN(DESC)
