/*
 * oot.c -- the smallest useful plugin, built out of tree by the CLI test:
 * an optimizer descriptor with one parameter.
 */
#include <tftx/plugin.h>

static const tftx_param_spec PARAMS[] = {
    TFTX_P_FLOAT("lr", 0.5, 0, 1, "learning rate"),
};

static tftx_status oot_create(const tftx_host *h, const tftx_value *v, void **self, tftx_error *err)
{
    (void)v, (void)err;
    *self = h->alloc(8, 0);
    return *self ? TFTX_OK : TFTX_ERR_NOMEM;
}

static const tftx_host *host_for_free;
static void oot_destroy(void *self) { (void)host_for_free, (void)self; }

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC, .abi_major = TFTX_ABI_MAJOR, .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_OPTIMIZER, .name = "oot", .version = "0.0.1",
    .summary = "built out of tree", .params = PARAMS, .n_params = 1,
    .create = oot_create, .destroy = oot_destroy,
};
TFTX_PLUGIN(DESC)
