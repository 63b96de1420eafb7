/*
 * toy_optimizers.c -- two test optimizer plugins with different parameter
 * sets (built twice, as `tsgd` and `tadam`, by defining TOY_ADAM), used to
 * test plugin sub-groups and sweeps over plugins.
 */
#include <tftx/plugin.h>

static const tftx_host *host;

#ifdef TOY_ADAM
static const double BETAS[] = {0.9, 0.999};
static const tftx_param_spec PARAMS[] = {
    TFTX_P_FLOAT("lr", 1e-3, 0, 10, "learning rate"),
    TFTX_P_FLOATS("betas", BETAS, 2, 0, 0.999999, "moment decay rates"),
    TFTX_P_FLOAT("eps", 1e-8, 0, 1, "denominator term"),
    TFTX_P_BOOL("amsgrad", 0, "use the maximum of second moments"),
};
#define NAME "tadam"
#else
static const tftx_param_spec PARAMS[] = {
    TFTX_P_FLOAT("lr", 1e-2, 0, 10, "learning rate"),
    TFTX_P_FLOAT("momentum", 0, 0, 1, "momentum factor"),
    TFTX_P_BOOL("nesterov", 0, "Nesterov momentum"),
};
#define NAME "tsgd"
#endif

static tftx_status toy_create(const tftx_host *h, const tftx_value *v, void **self, tftx_error *err)
{
    host = h;
    if (!(v[0].f >= 0)) return h->error(err, TFTX_ERR_INVALID, "lr must be >= 0");
    double *lr = h->alloc(sizeof *lr, 0);
    if (!lr) return h->error(err, TFTX_ERR_NOMEM, "no memory");
    *lr = v[0].f;
    *self = lr;
    return TFTX_OK;
}

static void toy_destroy(void *self) { host->free(self); }

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_OPTIMIZER,
    .name = NAME,
    .version = "0.1.0",
    .summary = "test optimizer descriptor",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = toy_create,
    .destroy = toy_destroy,
};
TFTX_PLUGIN(DESC)
