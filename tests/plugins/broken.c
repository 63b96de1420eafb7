/*
 * broken.c -- plugins that must be refused at load time, one per defect:
 * BAD_MAGIC, BAD_MAJOR, NEW_MINOR, NO_ENTRY, BAD_LINK (an unresolved
 * symbol, so dlopen fails), WRONG_NAME (the descriptor's name disagrees with
 * the file name), BAD_SCHEMA (a default outside its own range); and one
 * that loads but whose probe() kills its own process (CRASHING_PROBE): it
 * must show as unavailable, with the signal, while tftx goes on.
 */
#include <tftx/plugin.h>

#ifdef CRASHING_PROBE
#include <signal.h>
#include <unistd.h>
static tftx_status probe(const tftx_host *h, tftx_error *err)
{
    (void)h, (void)err;
    kill(getpid(), SIGKILL);
    return TFTX_OK;
}
#endif

static tftx_status create(const tftx_host *h, const tftx_value *v, void **self, tftx_error *err)
{
    (void)h, (void)v, (void)err;
    *self = 0;
    return TFTX_OK;
}
static void destroy(void *self)
{
    (void)self;
}

static const tftx_param_spec PARAMS[] = {
#ifdef BAD_SCHEMA
    TFTX_P_FLOAT("lr", 5.0, 0, 1, "default out of its range"),
#else
    TFTX_P_FLOAT("lr", 0.5, 0, 1, "learning rate"),
#endif
};

#ifdef BAD_LINK
extern int tftx_symbol_that_does_not_exist(void);
int tftx_broken_uses_missing(void);
TFTX_EXPORT int tftx_broken_uses_missing(void)
{
    return tftx_symbol_that_does_not_exist();
}
#endif

static const tftx_plugin_desc DESC = {
#ifdef BAD_MAGIC
    .magic = 0x12345678u,
#else
    .magic = TFTX_PLUGIN_MAGIC,
#endif
#ifdef BAD_MAJOR
    .abi_major = TFTX_ABI_MAJOR + 1,
#else
    .abi_major = TFTX_ABI_MAJOR,
#endif
#ifdef NEW_MINOR
    .abi_minor = TFTX_ABI_MINOR + 1,
#else
    .abi_minor = TFTX_ABI_MINOR,
#endif
    .kind = TFTX_KIND_OPTIMIZER,
#ifdef WRONG_NAME
    .name = "someone_else",
#else
    .name = PLUGIN_NAME,
#endif
    .version = "0.0.1",
    .summary = "a broken test plugin",
    .params = PARAMS,
    .n_params = 1,
#ifdef CRASHING_PROBE
    .probe = probe,
#endif
    .create = create,
    .destroy = destroy,
};

#ifndef NO_ENTRY
TFTX_PLUGIN(DESC)
#else
/* exported under another name: the loader must not find an entry */
TFTX_EXPORT const tftx_plugin_desc *not_the_entry(void);
TFTX_EXPORT const tftx_plugin_desc *not_the_entry(void)
{
    return &DESC;
}
#endif
