/*
 * probe.c -- a test plugin whose behaviour is chosen by its `mode`
 * parameter: start normally, fail with an error, or misbehave the ways real
 * plugins do (segfault, abort, exit, hang, allocate without bound). The
 * runner tests use it to check that one bad run never takes the sweep down.
 * It is of kind tokenizer, so an experiment with it and no model section
 * runs without data: each run only instantiates its plugins.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/plugin.h>
#include <unistd.h>

static const char *const MODES[] = {"ok", "fail", "segv", "abort", "exit", "hang", "alloc", NULL};
static const char *const ACTS[] = {"gelu", "relu", NULL};
static const double WIDTHS[] = {1.0, 2.0};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_ENUM("mode", "ok", MODES, "what create() does"),
    TFTX_P_INT("layers", 2, 1, 64, "number of layers"),
    TFTX_P_FLOAT("dropout", 0.1, 0, 1, "dropout probability"),
    TFTX_P_BOOL("bias", 1, "use biases"),
    TFTX_P_ENUM("activation", "gelu", ACTS, "activation function"),
    TFTX_P_FLOATS("widths", WIDTHS, 2, 0, 100, "layer widths"),
    TFTX_P_STRINGS("tags", NULL, 0, "free tags"),
    TFTX_P_STRING("label", "", "a free string"),
};

static const tftx_host *host;

static tftx_status probe_create(const tftx_host *h, const tftx_value *v, void **self, tftx_error *err)
{
    host = h;
    const char *mode = v[0].s;
    if (strcmp(mode, "fail") == 0) return h->error(err, TFTX_ERR_INVALID, "asked to fail (mode = \"fail\")");
    if (strcmp(mode, "segv") == 0) raise(SIGSEGV);
    if (strcmp(mode, "abort") == 0) abort();
    if (strcmp(mode, "exit") == 0) exit(7);
    if (strcmp(mode, "hang") == 0)
        for (;;) pause();
    if (strcmp(mode, "alloc") == 0) {
        for (size_t i = 0;; i++) {
            void *p = h->alloc((size_t)64 << 20, 64);
            if (!p) return h->error(err, TFTX_ERR_NOMEM, "out of memory after %zu MiB", i * 64);
        }
    }
    int *layers = h->alloc(sizeof *layers, 0);
    if (!layers) return h->error(err, TFTX_ERR_NOMEM, "no memory");
    *layers = (int)v[1].i;
    *self = layers;
    return TFTX_OK;
}

static void probe_destroy(void *self) { host->free(self); }

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_TOKENIZER,
    .name = "probe",
    .version = "1.0.0",
    .summary = "test plugin that can crash on request",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = probe_create,
    .destroy = probe_destroy,
};
TFTX_PLUGIN(DESC)
