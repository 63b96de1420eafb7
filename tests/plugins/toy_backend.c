/*
 * toy_backend.c -- a test backend plugin (`tback`, always available) and,
 * with TOY_UNAVAILABLE, one whose probe says it cannot run here (`tgpu`).
 */
#include <tftx/plugin.h>

static const tftx_host *host;
static const char *const PRECISIONS[] = {"fp32", "bf16", NULL};
static const tftx_param_spec PARAMS[] = {
    TFTX_P_ENUM("precision", "fp32", PRECISIONS, "arithmetic precision"),
};

#ifdef TOY_UNAVAILABLE
static tftx_status toy_probe(const tftx_host *h, tftx_error *err)
{
    return h->error(err, TFTX_ERR_UNSUPPORTED, "no device found (test backend)");
}
#define NAME "tgpu"
#define PROBE toy_probe
#else
#define NAME "tback"
#define PROBE NULL
#endif

static tftx_status toy_create(const tftx_host *h, const tftx_value *v, void **self, tftx_error *err)
{
    (void)v, (void)err;
    host = h;
    *self = h->alloc(16, 0);
    return TFTX_OK;
}

static void toy_destroy(void *self) { host->free(self); }

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_BACKEND,
    .name = NAME,
    .version = "0.1.0",
    .summary = "test backend",
    .params = PARAMS,
    .n_params = 1,
    .probe = PROBE,
    .create = toy_create,
    .destroy = toy_destroy,
};
TFTX_PLUGIN(DESC)
